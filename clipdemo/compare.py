"""Compare two generation settings on the same prompt and seeds, by score.

Both settings generate with the same seeds, so a difference in scores comes from the settings, not
from the starting noise. Per seed, the higher score wins.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from .errors import InputError
from .ranking import RankResult

SCHEDULERS = {
    "default": None,
    "euler": "EulerDiscreteScheduler",
    "euler_a": "EulerAncestralDiscreteScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
    "ddim": "DDIMScheduler",
    "unipc": "UniPCMultistepScheduler",
}


@dataclass(frozen=True)
class Setting:
    """One side of a comparison. `model` is a configured model id, never a path typed by a web user."""

    model: str
    steps: int
    guidance: float
    scheduler: str = "default"
    negative_prompt: str = ""

    def check(self) -> "Setting":
        if self.scheduler not in SCHEDULERS:
            raise InputError(f"Unknown scheduler '{self.scheduler}'. Choose one of: {', '.join(SCHEDULERS)}.")
        return self


@dataclass
class SideStats:
    scores: list[float]  # by seed order

    @property
    def mean(self) -> float:
        return statistics.fmean(self.scores)

    @property
    def max(self) -> float:
        return max(self.scores)

    @property
    def spread(self) -> float:
        """Population standard deviation of the scores."""
        return statistics.pstdev(self.scores)


@dataclass
class Comparison:
    a: RankResult
    b: RankResult
    key: str  # the score compared ("clip" or "pickscore")
    seeds: list[int]

    def scores(self, side: RankResult) -> list[float]:
        by_seed = {item.seed: item.scores.get(self.key) for item in side.images}
        return [by_seed[s] if by_seed[s] is not None else float("nan") for s in self.seeds]

    @property
    def stats(self) -> tuple[SideStats, SideStats]:
        return SideStats(self.scores(self.a)), SideStats(self.scores(self.b))

    @property
    def wins(self) -> tuple[int, int, int]:
        """(A wins, B wins, ties) over the seeds."""
        a_wins = b_wins = ties = 0
        for x, y in zip(self.scores(self.a), self.scores(self.b)):
            if x > y:
                a_wins += 1
            elif y > x:
                b_wins += 1
            else:
                ties += 1
        return a_wins, b_wins, ties


def scheduler_class(name: str):
    import diffusers

    return None if SCHEDULERS[name] is None else getattr(diffusers, SCHEDULERS[name])
