"""Compare two generation settings on the same prompt and seeds, by score.

Both settings generate with the same seeds, so a difference in scores comes from the settings, not
from the starting noise. Per seed, the higher score wins. A broken image (NaN or all black, see
`Candidate.problem`) has no score: it is left out of its side's stats, and its seed is not compared.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from .errors import InputError
from .generation import GenerationRequest, ProgressFn
from .models.pipeline import SCHEDULERS
from .generation.run import generate
from .generation.ranking import RankResult

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
    scores: list[float]  # the scored images', by seed order; broken ones are left out
    broken: int = 0  # images of this side that have no score

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.scores) if self.scores else None

    @property
    def max(self) -> float | None:
        return max(self.scores) if self.scores else None

    @property
    def spread(self) -> float | None:
        """Population standard deviation of the scores."""
        return statistics.pstdev(self.scores) if self.scores else None


@dataclass
class Comparison:
    a: RankResult
    b: RankResult
    key: str  # the score compared ("clip" or "pickscore")
    seeds: list[int]

    def scores(self, side: RankResult) -> list[float]:
        """The scores by seed order, NaN where the image has none (see `problem`)."""
        by_seed = {item.seed: item.scores.get(self.key) for item in side.images}
        return [float("nan") if by_seed.get(s) is None else by_seed[s] for s in self.seeds]

    def problem(self, side: RankResult, seed: int) -> str | None:
        """Why this seed's image of `side` has no score, or None when it has one."""
        item = next((i for i in side.images if i.seed == seed), None)
        if item is None:
            return "no image was generated"
        if item.scores.get(self.key) is None:
            return item.problem or f"it has no {self.key} score"
        return None

    @property
    def stats(self) -> tuple[SideStats, SideStats]:
        def side_stats(side: RankResult) -> SideStats:
            scores = self.scores(side)
            kept = [x for x in scores if not math.isnan(x)]
            return SideStats(kept, len(scores) - len(kept))

        return side_stats(self.a), side_stats(self.b)

    @property
    def unscored(self) -> list[int]:
        """The seeds where A's or B's image has no score: neither a win nor a tie."""
        return [s for s, x, y in zip(self.seeds, self.scores(self.a), self.scores(self.b))
                if math.isnan(x) or math.isnan(y)]

    @property
    def wins(self) -> tuple[int, int, int]:
        """(A wins, B wins, ties) over the seeds scored on both sides."""
        a_wins = b_wins = ties = 0
        for x, y in zip(self.scores(self.a), self.scores(self.b)):
            if math.isnan(x) or math.isnan(y):
                continue
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
