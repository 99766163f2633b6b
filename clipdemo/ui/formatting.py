"""What the page shows, as plain strings and table rows: no gradio here, so each piece is testable alone."""

from __future__ import annotations

import math
from typing import Any

from ..text import display_name

shown = display_name  # a model's name for the page: no server paths
MISTAKES_SHOWN = 24  # misclassified images in the Evaluate tab's gallery


def notice_lines(notices: list[str]) -> str:
    """The notices under a result's summary, one paragraph each."""
    return "".join(f"\n\n⚠️ {n}" for n in notices)


def header(sd_model: str, clip_model: str, device: str, dtype: Any, notices: list[str]) -> str:
    """Above the tabs: the title, one line naming the models and the device, and each notice's first sentence."""
    line = f"**{shown(sd_model)}** draws · **{shown(clip_model)}** ranks · {device}, {str(dtype).replace('torch.', '')}"
    return "# clipdemo\n" + line + "".join(f"\n\n⚠️ {first_sentence(n)}" for n in notices)


def first_sentence(text: str) -> str:
    head, dot, rest = text.partition(". ")
    return head + "." if dot else text


def details(rank_by: str, helpers: dict[str, str], notices: list[str]) -> str:
    """The collapsed Details panel: how ranking works, each helper's state and how to change it, notices in full."""
    return (f"Ranking: CLIPScore, sorted by {rank_by}; models load on first use.\n\n"
            + "\n".join(f"- **{name}**: {state}" for name, state in helpers.items())
            + "".join(f"\n\n> ⚠️ {notice}" for notice in notices))


def downloads_markdown(statuses) -> str:
    """One line per Hub model: ready, or downloading with bytes, percent and time left, or why it is not."""
    if not statuses:
        return ""
    marks = {"ready": "✅", "failed": "⚠️", "downloading": "⬇️", "waiting": "⏳"}
    return "**Models**\n\n" + "\n".join(f"- {marks.get(s.state, '')} {s.line()}" for s in statuses)


def scorer_info(zh_clip_model: str, clip_model: str) -> str:
    return f"auto: text with Chinese characters is scored by {shown(zh_clip_model)}, other text by {shown(clip_model)}"


def ranking_table(result) -> dict:
    """The Ranking table of a RankResult.

    It has a PickScore column only when the run was scored by PickScore: an always-empty column reads as a fault.
    """
    kinds = ["clip"] + (["pickscore"] if any("pickscore" in item.scores for item in result.images) else [])
    rows = [[item.rank, item.seed,
             *(None if k not in item.scores else round(item.scores[k], 3) for k in kinds),
             "flagged, blurred" if item.moderation and item.moderation["flagged"] else
             ("ok" if item.moderation else "unchecked")]
            for item in result.images]
    below = result.reduced_precision()
    pick = "PickScore" + (f" ({below['pickscore']})" if "pickscore" in below else "")
    headers = ["rank", "seed", "CLIP score"] + ([pick] if "pickscore" in kinds else []) + ["moderation"]
    return {"headers": headers, "data": rows}


def describe_run(result) -> str:
    """The details under a generated run: models, seeds, translation, weights and notices."""
    req = result.request
    info = (
        f"Ranked by {result.rank_by} with **{shown(result.clip_model)}**; generated with "
        f"**{shown(result.sd_model)}**. Seeds {req.seed}–{req.seed + req.n - 1}."
    )
    if result.translated_prompt:
        info += f"\n\nTranslated for the pipeline: *{result.translated_prompt}* (ranked against the prompt as typed)."
    if result.models:
        info += "\n\nWeights: " + " · ".join(f"{role.replace('_', ' ')} {m['model']} ({m['weights']})"
                                            for role, m in result.models.items())
    if result.notices:
        info += "\n\n" + "\n".join(f"- ⚠️ {n}" for n in result.notices)
    return info


def label_scores(classification) -> dict[str, float]:
    """One image's predictions as gr.Label takes them."""
    return {p.label: p.prob for p in classification.predictions}


def classify_rows(result) -> list[list]:
    return [[r.name, p.label, round(p.prob, 4)] for r in result.images for p in r.predictions]


def classify_captions(result) -> list[str]:
    return [f"{r.name}: {r.top.label} ({r.top.prob:.0%})" for r in result.images]


def classify_info(result) -> str:
    return f"Scored by **{shown(result.scorer)}** with template `{result.template}`" + notice_lines(result.notices)


def similarity_rows(result) -> list[list]:
    return [
        [name, text, round(float(result.cosine[i, j]), 4), round(float(result.clip_score[i, j]), 2)]
        for i, name in enumerate(result.image_names)
        for j, text in enumerate(result.texts)
    ]


def similarity_title(result) -> str:
    return f"cosine similarity · scored by {shown(result.scorer)}"


def similarity_info(result) -> str:
    return f"Scored by **{shown(result.scorer)}**" + notice_lines(result.notices)


def moderation_summary(names: list[str], verdicts: list, checker: str) -> str:
    lines = [f"Checker: **{shown(checker)}** · threshold {verdicts[0].threshold:g}"]
    for name, verdict in zip(names, verdicts):
        concept, score = verdict.top
        lines.append(f"- {name}: " + (f"⚠️ **flagged** ({concept}, {score:.3f})" if verdict.flagged
                                      else f"ok (highest: {concept}, {score:.3f})"))
    return "\n".join(lines)


def moderation_rows(names: list[str], verdicts: list) -> list[list]:
    return [[name, c, round(v, 4), v > verdict.threshold] for name, verdict in zip(names, verdicts)
            for c, v in verdict.scores.items()]


def moderation_captions(names: list[str], verdicts: list) -> list[str]:
    return [f"{name}: {'flagged' if verdict.flagged else 'ok'}" for name, verdict in zip(names, verdicts)]


def eval_summary(result) -> str:
    skipped = f" ({len(result.skipped)} unreadable, skipped)" if result.skipped else ""
    return (f"**top-1 {result.top1:.1%}** · top-5 {result.top5:.1%} · {len(result.targets)} images{skipped}, "
            f"{len(result.labels)} classes · logits `torch.Size([{result.logits.shape[0]}, "
            f"{result.logits.shape[1]}])` · templates {result.templates} ({result.n_templates}) · "
            f"CLIP {shown(result.clip_model)}")


def eval_rows(result) -> list[list]:
    return [[label, None if acc is None else round(acc, 4)] for label, acc in result.per_class.items()]


def eval_mistakes(result, limit: int = MISTAKES_SHOWN) -> list[tuple[int, str]]:
    """(row, "true → predicted") for the first misclassified images."""
    predictions = result.predictions
    return [(i, f"{result.labels[result.targets[i]]} → {result.labels[predictions[i]]}")
            for i in result.misclassified(limit)]


def score_name(key: str) -> str:
    return "CLIPScore" if key == "clip" else "PickScore"


def compare_summary(result) -> str:
    """The A-against-B table of a Comparison and who won; seeds with a broken image are named, not counted."""
    stats_a, stats_b = result.stats
    wins_a, wins_b, ties = result.wins
    unscored = result.unscored

    def cell(value: float | None) -> str:
        return "—" if value is None else f"{value:.3f}"

    table = (
        f"| {score_name(result.key)} | A | B |\n|---|---|---|\n"
        f"| mean | {cell(stats_a.mean)} | {cell(stats_b.mean)} |\n"
        f"| max | {cell(stats_a.max)} | {cell(stats_b.max)} |\n"
        f"| spread (std) | {cell(stats_a.spread)} | {cell(stats_b.spread)} |\n"
        f"| seeds won | {wins_a} | {wins_b} |\n"
        + (f"| not scored | {stats_a.broken} | {stats_b.broken} |\n" if unscored else "")
    )
    footer = f"\nSame seeds {result.seeds[0]}–{result.seeds[-1]}; ties: {ties}"
    if unscored:
        footer += "; not compared: " + ", ".join(
            f"seed {seed} ({'; '.join(f'{name}: {why}' for name, why in problems)})"
            for seed in unscored
            for problems in [[(name, result.problem(side, seed)) for name, side in (("A", result.a), ("B", result.b))
                              if result.problem(side, seed)]])
    empty = [(name, side) for name, side, stats in (("A", result.a, stats_a), ("B", result.b, stats_b))
             if not stats.scores]
    if empty:
        name, side = empty[0]
        names = " or ".join(n for n, _ in empty)
        verdict = (f"**No image of {names} could be scored ({result.problem(side, result.seeds[0])}), "
                   "so there is no comparison.**")
    elif len(unscored) == len(result.seeds):
        verdict = "**No seed was scored on both sides, so there is no comparison.**"
    else:
        verdict = "**A wins.**" if wins_a > wins_b else "**B wins.**" if wins_b > wins_a else "**A draw.**"
    return table + footer + ". " + verdict


def compare_rows(result) -> list[list]:
    """Per seed: the seed and both scores; None (an empty cell) where an image was not scored."""
    def shown_score(x: float) -> float | None:
        return None if math.isnan(x) else round(x, 3)

    return [[s, shown_score(x), shown_score(y)] for s, x, y in
            zip(result.seeds, result.scores(result.a), result.scores(result.b))]


def setting_title(side: str, model: str, setting) -> str:
    """A side's name in the score-distribution plot."""
    return f"{side}: {model}, {setting.steps} steps, g {setting.guidance:g}, {setting.scheduler}"


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def bench_params(params: dict) -> str:
    """A setting's parameters for the page: the model by its shown name, never a server path."""
    return ", ".join(f"{k}={shown(str(v)) if k == 'model' else v}" for k, v in params.items()) or "—"


def bench_leaderboard(summary) -> dict:
    """Settings best first (as in report.md); each scorer's mean and the bounds of its 95% CI."""
    from ..bench.format import label, leaderboard

    metrics = summary.scorers
    headers = ["rank", "setting", "params", "images"] + [f"{label(m)} {part}" for m in metrics
                                                         for part in ("mean", "CI low", "CI high")]
    rows = [[rank, s.name, bench_params(s.params), s.n_images,
             *(v for m in metrics for v in (_r(s.mean.get(m)), *(_r(x) for x in s.ci95.get(m) or [None, None])))]
            for rank, s in enumerate(leaderboard(summary), start=1)]
    return {"headers": headers, "data": rows}


def bench_pairwise(summary) -> dict:
    from ..bench.format import label

    headers = ["a", "b", "score", "pairs", "win rate a", "mean a − b", "CI low", "CI high", "p", "test"]
    rows = [[p.a, p.b, label(p.metric), p.n_pairs, _r(p.win_rate_a), _r(p.mean_diff),
             *(_r(x) for x in p.ci95 or [None, None]), _r(p.p_value, 4), p.test] for p in summary.pairwise]
    return {"headers": headers, "data": rows}


def bench_summary(summary) -> str:
    """Who leads on the first scorer, and each pair's verdict; a tie (the CI of a difference holds 0) is said."""
    from ..bench.format import _ci, label, leaderboard

    head = (f"{summary.prompts} prompts × {summary.seeds} seeds × {len(summary.settings)} settings; "
            "CIs: 95% bootstrap over prompts.")
    if not summary.scorers:
        return head + "\n\n**No image was scored, so there is no leaderboard.**"
    metric, best = summary.scorers[0], leaderboard(summary)[0]
    tied = [p.b if p.a == best.name else p.a for p in summary.pairwise
            if p.metric == metric and p.tie and best.name in (p.a, p.b)]
    mean = f"mean {best.mean[metric]:.2f} {_ci(best.ci95.get(metric))}"
    lead = (f"**{best.name}** has the highest {label(metric)} ({mean}), but ties with {', '.join(tied)} within "
            "the 95% CI: no setting is shown to lead." if tied
            else f"**{best.name} leads** on {label(metric)}: {mean}.")
    lines = [head, "", lead, ""]
    for p in summary.pairwise:
        if p.win_rate_a is None:
            lines.append(f"- {p.a} and {p.b} share no scored image on {label(p.metric)}: not compared.")
        elif p.tie:  # report.md's wording
            lines.append(f"- **{p.a} and {p.b} tie on {label(p.metric)}**: the 95% CI of their difference "
                         f"{_ci(p.ci95)} contains 0.")
        else:
            better, worse = (p.a, p.b) if p.mean_diff > 0 else (p.b, p.a)
            lines.append(f"- **{better}** beats {worse} on {label(p.metric)}: mean {p.a} − {p.b} "
                         f"{p.mean_diff:+.2f} {_ci(p.ci95)}, p = {p.p_value:.4f} ({p.test}).")
    return "\n".join(lines).rstrip()
