"""Score images people already made (any tool) against their prompts, rank them, and summarise like a bench.

Each PATH is one setting, so two folders from two tools compare like two bench settings. Work is cut
into batches of one prompt each, in a fixed order; under `accelerate launch` process r takes batches
r, r+N, ..., so every batch holds the same images as in one process and the rows come out identical.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..errors import InputError
from ..images import load_image
from .. import scorers
from ..scoring import SCORE_KINDS
from .results import ResultRow, write_rows
from .sources import Found, ImageInput, PromptsTable, describe, find_images, read_prompts
from .report import write_summary
from .stats import Summary, summarize

if TYPE_CHECKING:
    from ..models import ModelRegistry

BATCH_SIZE = 16
_SYNTHETIC_SEED = -(2**62)  # keys for images the summary must not pair (see summary_rows)


@dataclass(frozen=True)
class ScoredRow(ResultRow):
    """A bench row plus where the image ranks among the images of its prompt (1 = best)."""

    rank: int = 0  # within its PATH
    rank_all: int = 0  # across every PATH given
    scorer: str = ""  # the CLIP model behind the clip score (the Chinese one for Chinese prompts)


@dataclass
class ScoreRun:
    rows: list[ScoredRow]  # in input order: PATHs as given, files in name order
    notices: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # files with no prompt, under skip_unprompted
    summary: Summary | None = None
    paths: dict[str, Path] = field(default_factory=dict)  # results, json, markdown, plots; main process only


@dataclass
class _Item:
    image: ImageInput
    setting: str
    found: Found


def score_images(models: ModelRegistry, paths: list[str], prompts_file: str | None = None, out: str | Path | None = None,
                 accelerator: Any = None, progress: Callable[[int, int], None] | None = None,
                 scorer: str = "auto", skip_unprompted: bool = False, batch_size: int = BATCH_SIZE) -> ScoreRun:
    """Score every image under `paths`; write results.jsonl and the summary to `out` when given."""
    # 1. Inputs and prompts, before any model loads: bad input fails fast, the same way in every process.
    items, skipped, notices = collect(paths, read_prompts(prompts_file) if prompts_file else None, skip_unprompted)
    # 2. This process's share of the batches, scored.
    batches = plan_batches(items, batch_size)
    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator is not None else (0, 1)
    mine = batches[rank::world]
    records, total = [], sum(len(b) for b in mine)
    for batch in mine:
        records += score_batch(models, [items[i] for i in batch], batch, scorer, notices)
        if progress is not None:
            progress(len(records), total)
    # 3. Every process gets every record, so an unreadable image fails all of them alike.
    if accelerator is not None:
        from accelerate.utils import gather_object

        gathered = gather_object([(records, notices)])
        records, notices = [r for rs, _ in gathered for r in rs], [n for _, ns in gathered for n in ns]
    problems = [r["problem"] for r in records if r.get("problem")]
    if problems:
        raise InputError(_listed(problems, "image(s) could not be scored"))
    # 4. Ranks, then the files (main process only).
    if world > 1:
        notices.append(f"{world} processes shared the {len(items)} images.")
    run = ScoreRun(rank_rows(items, records, models.settings.rank_by), list(dict.fromkeys(notices)), skipped)
    if out is not None and (accelerator is None or accelerator.is_main_process):
        run.paths, run.summary = write_outputs(run.rows, out, setting_names(paths))
    return run


def collect(paths: list[str], table: PromptsTable | None, skip_unprompted: bool
            ) -> tuple[list[_Item], list[str], list[str]]:
    """Each image with its setting and prompt; every image without a prompt named in one error."""
    images = find_images(paths)
    names = setting_names(paths)
    items, missing, unreadable = [], [], []
    for image in images:
        try:
            found = describe(image, table)
        except InputError as exc:
            unreadable.append(str(exc))
            continue
        if found is None:
            missing.append(image.file)
        else:
            items.append(_Item(image, names[image.root], found))
    if unreadable:
        raise InputError(_listed(unreadable, "image(s) could not be read"))
    notices = [f"{table.name}: {len(unmatched)} row(s) match no image: {', '.join(unmatched[:5])}."
               for unmatched in [table.unmatched(images) if table else []] if unmatched]
    if missing and not skip_unprompted or missing and not items:
        raise InputError(_listed(missing, "image(s) have no prompt (no clipdemo, A1111 or ComfyUI metadata; give it with --prompts FILE, a file,prompt CSV)"))
    if missing:
        notices.append(_listed(missing, "image(s) have no prompt and were skipped"))
    return items, missing, notices


def setting_names(paths: list[str]) -> dict[str, str]:
    """Each PATH's display name: its last part, or the whole path where two PATHs share a last part."""
    short = {p: Path(p).name or Path(p).resolve().name or p for p in paths}
    clash = {n for n in short.values() if list(short.values()).count(n) > 1}
    return {p: (Path(p).as_posix() if n in clash else n) for p, n in short.items()}


def prompt_id(prompt: str) -> str:
    """A stable id of the prompt text, the same in every run and every process."""
    return "p-" + hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:12]


def plan_batches(items: list[_Item], batch_size: int) -> list[list[int]]:
    """Indices of items, cut into batches of one prompt each, in the order prompts first appear."""
    by_prompt: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        by_prompt.setdefault(item.found.prompt, []).append(i)
    return [group[s : s + batch_size] for group in by_prompt.values() for s in range(0, len(group), batch_size)]


def score_batch(models: ModelRegistry, items: list[_Item], indices: list[int], choice: str, notices: list[str]) -> list[dict]:
    """One record per image: every score kind, the raw cosines that order them, or the problem."""
    prompt = items[0].found.prompt
    clip, scorer_notices = scorers.scorer_for(models, [prompt], choice)
    kinds, kind_notices = scorers.ranking_scorers(models, clip)
    notices += scorer_notices + kind_notices + scorers.prompt_notices(clip, prompt)
    images, ok, records = [], [], []
    for index, item in zip(indices, items):
        try:
            images.append(load_image(item.image.file, name=item.image.file))
            ok.append(index)
        except InputError as exc:
            records.append({"index": index, "problem": str(exc)})
    if not images:
        return records
    cosines = {kind: model.cosine(images, [prompt])[:, 0] for kind, model in kinds}
    values = {kind: SCORE_KINDS[kind].value(cosines[kind], model.logit_scale).tolist() for kind, model in kinds}
    for j, index in enumerate(ok):
        records.append({"index": index, "scorer": clip.name, "scores": {k: float(v[j]) for k, v in values.items()},
                        "cosine": {k: float(c[j]) for k, c in cosines.items()}})
    return records


def rank_rows(items: list[_Item], records: list[dict], rank_by: str) -> list[ScoredRow]:
    """Rows in input order; ranks by the raw cosine of `rank_by` (CLIPScore's clamp at 0 would tie them)."""
    by_index = {r["index"]: r for r in records}

    def order(i: int) -> tuple[float, int]:  # best first; ties keep input order
        cosine = by_index[i]["cosine"]
        return -cosine.get(rank_by, cosine["clip"]), i

    in_setting: dict[tuple[str, str], list[int]] = {}
    in_all: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        in_setting.setdefault((item.found.prompt, item.setting), []).append(i)
        in_all.setdefault(item.found.prompt, []).append(i)
    rank = {i: n for group in in_setting.values() for n, i in enumerate(sorted(group, key=order), start=1)}
    rank_all = {i: n for group in in_all.values() for n, i in enumerate(sorted(group, key=order), start=1)}
    return [ScoredRow(item.setting, prompt_id(item.found.prompt), item.found.prompt, item.found.seed,
                      by_index[i]["scores"], item.image.file, source=item.found.source,
                      rank=rank[i], rank_all=rank_all[i], scorer=by_index[i]["scorer"])
            for i, item in enumerate(items)]


def summary_rows(rows: list[ScoredRow]) -> list[ResultRow]:
    """Rows for bench's summarize, which keys images by (prompt, seed): images whose seed is unknown or
    repeated (a ComfyUI batch shares one seed) get keys of their own, so none is dropped or wrongly paired."""
    seen: set[tuple[str, str, int | None]] = set()
    out = []
    for i, row in enumerate(rows):
        seed = row.seed if row.seed is not None and row.key not in seen else _SYNTHETIC_SEED - i
        seen.add(row.key)
        out.append(ResultRow(row.setting, row.prompt_id, row.prompt, seed, row.scores, row.file, row.category,
                             row.source))
    return out


def write_outputs(rows: list[ScoredRow], out: str | Path, names: dict[str, str]) -> tuple[dict[str, Path], Summary]:
    """results.jsonl (rows with their ranks), then summary.json, report.md and the plots."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_rows(out / "results.jsonl", rows)
    scored = {r.setting for r in rows}
    params = {name: {"path": path} for path, name in names.items() if name in scored}
    seeds = len({r.seed for r in rows if r.seed is not None})
    summary = summarize(summary_rows(rows), seeds=seeds, params=params)
    return {"results": out / "results.jsonl", **write_summary(summary, out)}, summary


def _listed(items: list[str], what: str, shown: int = 10) -> str:
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return f"{len(items)} {what}: {'; '.join(items[:shown])}{more}."
