"""`python -m clipdemo score PATH...`: score images made elsewhere (A1111, ComfyUI, clipdemo) by CLIP.

Parsing and printing only; the work is clipdemo.bench.score. Imports of cli.main happen inside the
functions: main imports this module to register the subcommand.
"""

from __future__ import annotations

import argparse
import json

from ..options import OPTIONS

SCORING_OPTIONS = ("pick_model", "pickscore", "rank_by")


def add_parser(sub: argparse._SubParsersAction) -> None:
    from .common import add_option_flags

    p = sub.add_parser("score", help="score existing images against their prompts, rank and summarise them")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="image files or folders (searched recursively for png, jpg, jpeg, webp); each is a setting")
    p.add_argument("--prompts", metavar="CSV", default=None,
                   help="a CSV with columns file,prompt (file relative to its PATH, or a file name); beats metadata")
    p.add_argument("--out", required=True, help="folder for results.jsonl, summary.json, report.md and plots")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.add_argument("--skip-unprompted", action="store_true",
                   help="leave out images with no prompt (with a note) instead of stopping with an error")
    add_option_flags(p)
    for option in OPTIONS:  # the scoring settings that clipdemo.options files under generation
        if option.name in SCORING_OPTIONS:
            p.add_argument(option.flag, dest=option.name, choices=option.choices or None,
                           help=f"{option.help} (env {option.env})")


def cmd_score(args: argparse.Namespace, studio) -> int:
    from .common import finish_launched, launched_work, print_notices

    accelerator, main_process, bar, progress = launched_work(studio, "scoring")

    try:
        run = studio.score_images(args.paths, prompts_file=args.prompts, out=args.out, accelerator=accelerator,
                                  progress=progress, scorer=args.scorer, skip_unprompted=args.skip_unprompted)
    finally:
        finish_launched(accelerator, bar)
    if not main_process:
        return 0
    print_notices(run.notices)
    if args.json:
        print(json.dumps([r.as_json() for r in run.rows], ensure_ascii=False, indent=2))
    else:
        for r in sorted(run.rows, key=lambda r: (r.setting, r.prompt, r.rank)):
            scores = "  ".join(f"{k} {v:.2f}" for k, v in r.scores.items())
            prompt = " ".join(r.prompt.split())[:60]
            print(f"{r.setting}  #{r.rank}  {scores}  {r.file}  ({r.source}: {prompt})")
        print(f"wrote {', '.join(str(p) for p in run.paths.values())}")
    return 0
