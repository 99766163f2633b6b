"""How benchmark figures read: score names, numbers, intervals, and the settings best first."""

from __future__ import annotations

from ..scoring import SCORE_KINDS
from .stats import Summary


def label(metric: str) -> str:
    kind = SCORE_KINDS.get(metric)
    return kind.label if kind is not None else metric


def _num(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _ci(ci: list[float] | None) -> str:
    return "—" if not ci else f"[{ci[0]:.2f}, {ci[1]:.2f}]"


def leaderboard(summary: Summary) -> list:
    """Settings best first by the first metric (CLIPScore when it ran)."""
    first = summary.scorers[0] if summary.scorers else None
    return sorted(summary.settings, key=lambda s: -s.mean.get(first, float("-inf")))
