"""Figures rendered on the server (matplotlib), with a CJK-capable font when the machine has one."""

from __future__ import annotations

import warnings
from functools import lru_cache

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import font_manager  # noqa: E402

CJK_FONT_NAMES = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Serif CJK SC", "WenQuanYi Zen Hei", "Source Han Sans SC")


@lru_cache(maxsize=1)
def cjk_font() -> str | None:
    """The family name of an installed CJK font, or None (then CJK text would draw as boxes)."""
    installed = {f.name for f in font_manager.fontManager.ttflist}
    for name in CJK_FONT_NAMES:
        if name in installed:
            return name
    return None


def use_cjk_font_if_needed(texts) -> None:
    from .text import has_cjk

    if not any(has_cjk(t) for t in texts):
        return
    font = cjk_font()
    if font is None:
        warnings.warn("No CJK font found (install fonts-noto-cjk); Chinese labels may draw as boxes.")
        return
    plt.rcParams["font.sans-serif"] = [font, "DejaVu Sans"]


def similarity_heatmap(cosine: np.ndarray, row_names: list[str], col_names: list[str], title: str = ""):
    """A heatmap with each cell's value written in; rows are images, columns texts."""
    use_cjk_font_if_needed(row_names + col_names)
    n_rows, n_cols = cosine.shape
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * n_cols + 2.5), max(3.0, 0.6 * n_rows + 2.0)))
    im = ax.imshow(cosine, cmap="viridis", aspect="auto")
    ax.set_xticks(range(n_cols), [_short(t) for t in col_names], rotation=30, ha="right")
    ax.set_yticks(range(n_rows), [_short(t) for t in row_names])
    middle = (cosine.max() + cosine.min()) / 2
    for i in range(n_rows):
        for j in range(n_cols):
            color = "black" if cosine[i, j] > middle else "white"
            ax.text(j, i, f"{cosine[i, j]:.3f}", ha="center", va="center", color=color, fontsize=9)
    fig.colorbar(im, ax=ax, label="cosine similarity")
    ax.set_title(title or "image × text cosine similarity")
    fig.tight_layout()
    plt.close(fig)
    return fig


def _short(text: str, limit: int = 28) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
