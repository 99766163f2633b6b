"""Figures rendered on the server (matplotlib), with a CJK-capable font when the machine has one."""

from __future__ import annotations

import os
import warnings
from functools import lru_cache

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
from matplotlib import font_manager  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

CJK_FONT_NAMES = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Serif CJK SC", "WenQuanYi Zen Hei", "Source Han Sans SC")


@lru_cache(maxsize=1)
def cjk_font() -> str | None:
    """The family name of an installed CJK font, or None (then CJK text would draw as boxes).

    CLIPDEMO_CJK_FONT=none skips the search: the plots then draw as on a machine without one (tests use it).
    """
    if os.environ.get("CLIPDEMO_CJK_FONT", "").strip().lower() == "none":
        return None
    for attempt in range(2):
        installed = {f.name for f in font_manager.fontManager.ttflist}
        for name in CJK_FONT_NAMES:
            if name in installed:
                return name
        if attempt == 0:  # matplotlib's font cache may predate the font package: register the files directly
            import glob

            for path in sorted(glob.glob("/usr/share/fonts/**/*CJK*.tt[cf]", recursive=True)
                               + glob.glob("/usr/share/fonts/**/*CJK*.otf", recursive=True)):
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):
                    continue
    return None


MISSING_CJK_FONT = ("No CJK font found on the server (install fonts-noto-cjk): Chinese labels in the figure "
                    "draw as boxes.")


def missing_font_notice(texts) -> str | None:
    """The notice to show the user when these labels need a CJK font the machine lacks; None when all is well."""
    from .text import has_cjk

    return MISSING_CJK_FONT if any(has_cjk(t) for t in texts) and cjk_font() is None else None


def use_cjk_font_if_needed(texts) -> None:
    from .text import has_cjk

    if not any(has_cjk(t) for t in texts):
        return
    font = cjk_font()
    if font is None:
        warnings.warn(MISSING_CJK_FONT)  # the server log; the tabs show missing_font_notice to the user
        return
    matplotlib.rcParams["font.sans-serif"] = [font, "DejaVu Sans"]


def similarity_heatmap(cosine: np.ndarray, row_names: list[str], col_names: list[str], title: str = ""):
    """A heatmap with each cell's value written in; rows are images, columns texts."""
    use_cjk_font_if_needed(row_names + col_names)
    n_rows, n_cols = cosine.shape
    fig = Figure(figsize=(max(4.0, 1.1 * n_cols + 2.5), max(3.0, 0.6 * n_rows + 2.0)))  # not pyplot: no global figure manager on a server
    ax = fig.subplots()
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
    return fig


def _short(text: str, limit: int = 28) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def confusion_figure(matrix: np.ndarray, labels: list[str], title: str = "confusion matrix"):
    """Rows are true classes, columns predictions; counts written in when the matrix is small."""
    use_cjk_font_if_needed(labels)
    n = len(labels)
    side = min(24.0, max(5.0, 0.35 * n + 3))
    fig = Figure(figsize=(side, side * 0.9))  # not pyplot: no global figure manager on a server
    ax = fig.subplots()
    im = ax.imshow(matrix, cmap="Blues")
    shown = [_short(t, 20) for t in labels]
    if n <= 60:
        ax.set_xticks(range(n), shown, rotation=60, ha="right", fontsize=max(5, 10 - n // 10))
        ax.set_yticks(range(n), shown, fontsize=max(5, 10 - n // 10))
    if n <= 20:
        top = matrix.max() or 1
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8,
                            color="white" if matrix[i, j] > top / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def score_distributions(a_scores: list[float], b_scores: list[float], labels: tuple[str, str], score_name: str):
    """Box plots of two settings' scores with each seed's points, lines joining the same seed."""
    fig = Figure(figsize=(5.5, 4))  # not pyplot: no global figure manager on a server
    ax = fig.subplots()
    ax.boxplot([a_scores, b_scores], widths=0.5)
    ax.set_xticks([1, 2], [_short(labels[0], 30), _short(labels[1], 30)])
    for a, b in zip(a_scores, b_scores):
        ax.plot([1, 2], [a, b], color="grey", alpha=0.4, linewidth=1)
    ax.scatter([1] * len(a_scores), a_scores, color="tab:blue", zorder=3)
    ax.scatter([2] * len(b_scores), b_scores, color="tab:orange", zorder=3)
    ax.set_ylabel(score_name)
    ax.set_title("scores per setting (lines join the same seed)")
    fig.tight_layout()
    return fig


def history_chart(history_rows: list[list], mean_index: int = 10, best_index: int = 11):
    """Mean and best score of each run in the session, in run order."""
    fig = Figure(figsize=(6, 3))  # not pyplot: no global figure manager on a server
    ax = fig.subplots()
    numbers = [r[0] for r in history_rows]
    ax.plot(numbers, [r[mean_index] for r in history_rows], marker="o", label="mean")
    ax.plot(numbers, [r[best_index] for r in history_rows], marker="^", label="best")
    ax.set_xlabel("run")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # runs are numbered 1, 2, 3 ...
    ax.set_ylabel("score")
    ax.legend()
    ax.set_title("scores over this page's runs")
    fig.tight_layout()
    return fig
