"""The numbers of a benchmark: per-setting means with bootstrap CIs, paired comparisons, per-category means.

Every comparison is paired: two settings are compared only on the (prompt, seed) pairs both scored, so a
difference comes from the settings, not the starting noise. Prompts are the unit of resampling (seeds of
one prompt are not independent draws of the prompt population): the CIs bootstrap over prompts and the
p-value flips the sign of per-prompt mean differences. Both use fixed RNG seeds, so a summary is
reproducible bit for bit from its rows.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .results import ResultRow

BOOTSTRAP_RESAMPLES = 2000
PERMUTATIONS = 20000  # Monte Carlo sign flips when exact enumeration is too big
EXACT_MAX_PROMPTS = 16  # 2**16 sign patterns are cheap to enumerate
RNG_SEED = 0
METRIC_ORDER = ("clip", "pickscore")
UNCATEGORISED = "uncategorised"


@dataclass
class SettingStats:
    name: str
    params: dict[str, Any]
    n_images: int
    mean: dict[str, float]  # metric -> mean over the setting's scored images
    ci95: dict[str, list[float]]  # metric -> [lo, hi], bootstrap over prompts


@dataclass
class PairStats:
    a: str
    b: str
    metric: str
    n_pairs: int  # (prompt, seed) pairs scored on both sides
    win_rate_a: float | None  # share of pairs where a scores higher; ties count half
    mean_diff: float | None  # mean of a - b over the pairs
    ci95: list[float] | None  # bootstrap over prompts of mean_diff
    p_value: float | None  # two-sided paired sign-flip permutation test on per-prompt mean differences
    test: str  # "exact sign-flip (2^P)" or "Monte Carlo sign-flip (N draws)"

    @property
    def tie(self) -> bool:
        """The CI of the difference contains 0: the data cannot tell the two apart."""
        return self.ci95 is not None and self.ci95[0] <= 0 <= self.ci95[1]


@dataclass
class Summary:
    prompts: int
    seeds: int
    scorers: list[str]
    settings: list[SettingStats]
    pairwise: list[PairStats]
    categories: dict[str, dict[str, dict[str, float]]]  # setting -> category -> metric -> mean
    scores: dict[str, dict[str, list[float]]] = field(default_factory=dict, repr=False)  # for plots, not JSON

    def as_json(self) -> dict[str, Any]:
        return {"prompts": self.prompts, "seeds": self.seeds, "scorers": list(self.scorers),
                "settings": [asdict(s) for s in self.settings], "pairwise": [asdict(p) for p in self.pairwise],
                "categories": self.categories}

    def setting(self, name: str) -> SettingStats:
        return next(s for s in self.settings if s.name == name)


def summarize(rows: list[ResultRow], seeds: int | None = None,
              params: dict[str, dict[str, Any]] | None = None) -> Summary:
    """The summary of a run's rows. `params` gives each setting's parameters and their order."""
    # 1. What was measured: settings in the given order (else first seen), metrics clip first.
    names = list(params or {}) + [r.setting for r in rows if r.setting not in (params or {})]
    names = list(dict.fromkeys(names))
    metrics = ordered_metrics(rows)
    # 2. Each setting's scores keyed by (prompt, seed), so comparisons can pair them.
    table = {name: {m: {} for m in metrics} for name in names}
    for row in rows:
        for metric, value in row.scores.items():
            table[row.setting][metric][(row.prompt_id, row.seed)] = float(value)
    # 3. Per-setting stats, pairwise comparisons and per-category means.
    settings = [setting_stats(name, (params or {}).get(name, {}), rows, table[name], metrics) for name in names]
    pairwise = [pair_stats(a, b, m, table[a][m], table[b][m])
                for a, b in itertools.combinations(names, 2) for m in metrics]
    n_seeds = seeds if seeds is not None else len({r.seed for r in rows})
    scores = {name: {m: [table[name][m][k] for k in sorted(table[name][m], key=_key_order)] for m in metrics}
              for name in names}
    return Summary(len({r.prompt_id for r in rows}), n_seeds, metrics, settings, pairwise,
                   category_means(rows, names, metrics), scores)


def ordered_metrics(rows: list[ResultRow]) -> list[str]:
    seen = {m for r in rows for m in r.scores}
    return [m for m in METRIC_ORDER if m in seen] + sorted(seen - set(METRIC_ORDER))


def setting_stats(name: str, params: dict[str, Any], rows: list[ResultRow], scores: dict[str, dict],
                  metrics: list[str]) -> SettingStats:
    n_images = sum(1 for r in rows if r.setting == name)
    mean, ci = {}, {}
    for metric in metrics:
        values = scores[metric]
        if not values:
            continue
        mean[metric] = float(np.mean(list(values.values())))
        ci[metric] = bootstrap_ci(*per_prompt_sums(values))
    return SettingStats(name, dict(params), n_images, mean, ci)


def pair_stats(a: str, b: str, metric: str, scores_a: dict, scores_b: dict) -> PairStats:
    keys = sorted(set(scores_a) & set(scores_b), key=_key_order)
    if not keys:
        return PairStats(a, b, metric, 0, None, None, None, None, "none: no pairs")
    diffs = {k: scores_a[k] - scores_b[k] for k in keys}
    d = np.array(list(diffs.values()))
    win_rate = float((np.sum(d > 0) + 0.5 * np.sum(d == 0)) / len(d))
    sums, counts = per_prompt_sums(diffs)
    p_value, test = sign_flip_p_value(sums / counts)
    return PairStats(a, b, metric, len(keys), win_rate, float(d.mean()), bootstrap_ci(sums, counts), p_value, test)


def per_prompt_sums(values: dict[tuple[str, int | None], float]) -> tuple[np.ndarray, np.ndarray]:
    """(sum, count) of the values of each prompt, prompts in sorted order."""
    by_prompt: dict[str, list[float]] = {}
    for (prompt_id, _seed), value in sorted(values.items(), key=lambda kv: _key_order(kv[0])):
        by_prompt.setdefault(prompt_id, []).append(value)
    groups = list(by_prompt.values())
    return np.array([sum(g) for g in groups], dtype=np.float64), np.array([len(g) for g in groups], dtype=np.float64)


def bootstrap_ci(sums: np.ndarray, counts: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES,
                 seed: int = RNG_SEED) -> list[float]:
    """95% percentile CI of the image-weighted mean, resampling prompts with replacement."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(sums), size=(resamples, len(sums)))
    means = sums[picks].sum(axis=1) / counts[picks].sum(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return [float(lo), float(hi)]


def sign_flip_p_value(diffs: np.ndarray, draws: int = PERMUTATIONS, seed: int = RNG_SEED) -> tuple[float, str]:
    """Two-sided p-value of mean(diffs) under H0 "each prompt's difference is as likely + as -"."""
    n = len(diffs)
    observed = abs(diffs.mean())
    if n <= EXACT_MAX_PROMPTS:
        signs = 1 - 2 * ((np.arange(2**n)[:, None] >> np.arange(n)) & 1)  # every sign pattern once
        test, extra = f"exact sign-flip (2^{n})", 0
    else:
        signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(draws, n))
        test, extra = f"Monte Carlo sign-flip ({draws} draws)", 1  # +1: the observed pattern counts itself
    flipped = np.abs((signs * diffs).mean(axis=1))
    hits = int(np.sum(flipped >= observed - 1e-12 * max(1.0, observed)))  # float noise must not drop a tie
    return float((hits + extra) / (len(signs) + extra)), test


def category_means(rows: list[ResultRow], names: list[str], metrics: list[str]) -> dict:
    groups: dict[tuple[str, str, str], list[float]] = {}
    for row in rows:
        for metric, value in row.scores.items():
            groups.setdefault((row.setting, row.category or UNCATEGORISED, metric), []).append(value)
    categories = sorted({c for _, c, _ in groups})
    return {name: {c: {m: float(np.mean(groups[(name, c, m)])) for m in metrics if (name, c, m) in groups}
                   for c in categories if any((name, c, m) in groups for m in metrics)}
            for name in names}


def _key_order(key: tuple[str, int | None]) -> tuple[str, int]:
    return key[0], -1 if key[1] is None else key[1]
