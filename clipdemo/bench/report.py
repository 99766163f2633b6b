"""A benchmark summary as people read it: a Markdown report and two figures."""

from __future__ import annotations

import json
from pathlib import Path

from matplotlib.figure import Figure

from ..plots import _short, use_cjk_font_if_needed
from .format import _ci, _num, label, leaderboard
from .stats import Summary


def markdown_report(summary: Summary) -> str:
    metrics = summary.scorers
    lines = ["# Benchmark", "",
             f"{summary.prompts} prompts × {summary.seeds} seeds per setting; scorers: "
             f"{', '.join(label(m) for m in metrics) or 'none'}. CIs: 95% bootstrap over prompts.", "",
             "## Leaderboard", "",
             "| rank | setting | params | images | " + " | ".join(f"{label(m)} mean [95% CI]" for m in metrics) + " |",
             "|---|---|---|---|" + "---|" * len(metrics)]
    for rank, s in enumerate(leaderboard(summary), start=1):
        params = ", ".join(f"{k}={v}" for k, v in s.params.items()) or "—"
        cells = [f"{_num(s.mean.get(m))} {_ci(s.ci95.get(m))}" for m in metrics]
        lines.append(f"| {rank} | {s.name} | {params} | {s.n_images} | " + " | ".join(cells) + " |")
    if summary.pairwise:
        lines += ["", "## Pairwise (paired by prompt and seed)", "",
                  "| a | b | score | pairs | win rate a | mean a − b [95% CI] | p | test |", "|---|---|---|---|---|---|---|---|"]
        for p in summary.pairwise:
            win = "—" if p.win_rate_a is None else f"{p.win_rate_a:.1%}"
            lines.append(f"| {p.a} | {p.b} | {label(p.metric)} | {p.n_pairs} | {win} | {_num(p.mean_diff)} "
                         f"{_ci(p.ci95)} | {_num(p.p_value, 4)} | {p.test} |")
        ties = [p for p in summary.pairwise if p.tie]
        lines.append("")
        lines += [f"- **{p.a} and {p.b} tie on {label(p.metric)}**: the 95% CI of their difference "
                  f"{_ci(p.ci95)} contains 0." for p in ties] or ["- No pair ties: every difference's CI excludes 0."]
    lines += ["", "## Per category (means)", ""]
    categories = sorted({c for by_cat in summary.categories.values() for c in by_cat})
    lines += ["| setting | score | " + " | ".join(categories) + " |", "|---|---|" + "---|" * len(categories)]
    for name, by_cat in summary.categories.items():
        for m in metrics:
            lines.append(f"| {name} | {label(m)} | " + " | ".join(_num(by_cat.get(c, {}).get(m)) for c in categories)
                         + " |")
    return "\n".join(lines) + "\n"


def scores_figure(summary: Summary):
    """Box plots of each setting's scores, one panel per scorer."""
    names = [s.name for s in summary.settings]
    use_cjk_font_if_needed(names)
    metrics = summary.scorers or ["clip"]
    fig = Figure(figsize=(max(4.5, 1.2 * len(names) + 2.5) * len(metrics), 4))
    axes = fig.subplots(1, len(metrics), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        data = [summary.scores.get(n, {}).get(metric, []) for n in names]
        ax.boxplot([d or [float("nan")] for d in data], widths=0.5)
        ax.set_xticks(range(1, len(names) + 1), [_short(n, 24) for n in names], rotation=20, ha="right")
        ax.set_ylabel(label(metric))
        ax.set_title(f"{label(metric)} per setting")
    fig.tight_layout()
    return fig


def categories_figure(summary: Summary):
    """Grouped bars: each category's mean score (first scorer), one bar per setting."""
    metric = summary.scorers[0] if summary.scorers else "clip"
    categories = sorted({c for by_cat in summary.categories.values() for c in by_cat})
    names = list(summary.categories)
    use_cjk_font_if_needed(names + categories)
    fig = Figure(figsize=(max(5.0, 0.9 * len(categories) * max(1, len(names)) + 2), 4))
    ax = fig.subplots()
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        values = [summary.categories[name].get(c, {}).get(metric, float("nan")) for c in categories]
        ax.bar([j + i * width for j in range(len(categories))], values, width, label=_short(name, 24))
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(categories))], [_short(c, 16) for c in categories])
    ax.set_ylabel(f"mean {label(metric)}")
    ax.set_title(f"mean {label(metric)} per category")
    if names:
        ax.legend()
    fig.tight_layout()
    return fig


def write_summary(summary: Summary, out_dir: str | Path) -> dict[str, Path]:
    """summary.json, report.md, scores.png and categories.png in `out_dir`; their paths by kind."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "summary.json", "markdown": out / "report.md", "scores": out / "scores.png",
             "categories": out / "categories.png"}
    paths["json"].write_text(json.dumps(summary.as_json(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    paths["markdown"].write_text(markdown_report(summary), encoding="utf-8")
    scores_figure(summary).savefig(paths["scores"], dpi=110)
    categories_figure(summary).savefig(paths["categories"], dpi=110)
    return paths
