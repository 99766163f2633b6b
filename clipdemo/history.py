"""The runs of one browser session: what was asked, with which settings, and how it scored."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

MAX_RUNS = 50  # older runs drop off: a page's history stays small


@dataclass(frozen=True)
class Run:
    number: int
    kind: str  # "generate" or "compare A" / "compare B"
    prompt: str
    model: str
    steps: int
    guidance: float
    scheduler: str
    seed: int
    n: int
    mean_score: float | None
    best_score: float | None
    score_key: str
    time: str = field(default_factory=lambda: time.strftime("%H:%M:%S"))
    files: tuple[str, ...] = ()  # the run's image files on the server, which the Search tab can search

    def row(self) -> list:
        return [self.number, self.time, self.kind, self.prompt, self.model, self.steps, self.guidance,
                self.scheduler, self.seed, self.n,
                None if self.mean_score is None else round(self.mean_score, 3),
                None if self.best_score is None else round(self.best_score, 3), self.score_key]


HEADERS = ["#", "time", "kind", "prompt", "model", "steps", "guidance", "scheduler", "seed", "n", "mean score",
           "best score", "score"]


def run_from_result(number: int, kind: str, result, scheduler: str = "default", model_label: str | None = None,
                    files: list[str] | None = None) -> Run:
    key = result.rank_by
    values = [item.scores[key] for item in result.images if key in item.scores]
    req = result.request
    return Run(number, kind, req.prompt, model_label or result.sd_model, req.steps, req.guidance, scheduler, req.seed,
               req.n, sum(values) / len(values) if values else None, max(values) if values else None, key,
               files=tuple(files or ()))


def append(history: list[dict], run: Run) -> list[dict]:
    """A new list with the run added and the oldest dropped beyond MAX_RUNS (gr.State keeps plain data)."""
    return (history + [asdict(run)])[-MAX_RUNS:]


def next_number(history: list[dict]) -> int:
    return (history[-1]["number"] + 1) if history else 1


def rows(history: list[dict]) -> list[list]:
    return [Run(**entry).row() for entry in history]
