"""Compare two generation settings on the same prompt and seeds, by score.

Both settings generate with the same seeds, so a difference in scores comes from the settings, not
from the starting noise. Per seed, the higher score wins.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from .errors import InputError
from .generation import GenerationRequest, ProgressFn
from .generation.pipeline import SCHEDULERS
from .generation.run import generate
from .ranking import RankResult

if TYPE_CHECKING:
    from .models import ModelRegistry


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

    def applied_to(self, request: GenerationRequest) -> GenerationRequest:
        """`request` with this side's steps, guidance and negative prompt."""
        return replace(request, negative_prompt=self.negative_prompt, steps=self.steps, guidance=self.guidance)


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


def compare(models: ModelRegistry, prompt: str, seed: int | None, n: int, a: Setting, b: Setting,
            width: int | None = None, height: int | None = None, progress: ProgressFn | None = None,
            scorer: str | None = "auto") -> Comparison:
    """Generate with settings A and B on the same seeds and compare their scores."""
    d = models.settings.defaults
    a, b = a.check(), b.check()
    base = GenerationRequest(prompt, n=n, width=width or d.width, height=height or d.height, seed=seed)
    first = a.applied_to(base).validated()
    second = b.applied_to(first).validated()  # first's seed, even when none was given
    result_a = generate(models, first, progress, scorer, a.model, a.scheduler)
    result_b = generate(models, second, progress, scorer, b.model, b.scheduler)
    return Comparison(result_a, result_b, result_a.rank_by, [first.seed + i for i in range(first.n)])
