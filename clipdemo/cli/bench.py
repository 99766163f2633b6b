"""`python -m clipdemo bench PROMPTS --setting "a: steps=4" ...`: compare generation settings by score.

Parsing and printing only; the work is clipdemo.bench.run. Imports of cli.main happen inside the
functions: main imports this module to register the subcommand.
"""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..studio import BUNDLED_SETS
    from .common import add_option_flags

    p = sub.add_parser("bench", help="generate prompts × seeds × settings, score every image, summarise with CIs")
    p.add_argument("prompts", metavar="PROMPTS",
                   help=f"a .txt (one prompt a line), a .csv or .jsonl with a prompt column, or a bundled set: "
                        f"{', '.join(BUNDLED_SETS)}")
    p.add_argument("--setting", action="append", required=True, metavar='"NAME: key=value, ..."',
                   help="a setting to compare (repeat it); keys: model (a configured model or a folder), steps, "
                        "guidance, scheduler, negative, width, height; unset keys take the defaults")
    p.add_argument("--seeds", type=int, default=4, help="seeds per prompt, the same for every setting (default 4)")
    p.add_argument("--seed-base", type=int, default=0, help="the first seed (default 0)")
    p.add_argument("--out", required=True, help="folder for results.jsonl, summary.json, report.md, plots and PNGs; "
                                                "rerun with the same folder to resume")
    p.add_argument("--json", action="store_true", help="print summary.json")
    add_option_flags(p, "generation")


def cmd_bench(args: argparse.Namespace, studio) -> int:
    from .common import finish_launched, launched_work, print_notices

    settings = studio.bench_settings(args.setting, model_folders=True)  # bad input fails before any model loads
    accelerator, main_process, bar, progress = launched_work(studio, "bench")

    try:
        run = studio.bench(args.prompts, settings, args.seeds, args.out, args.seed_base, progress, accelerator,
                           args.scorer)
    finally:
        finish_launched(accelerator, bar)
    if not main_process:
        return 0
    print_notices(run.notices)
    if args.json:
        print(json.dumps(run.summary.as_json(), ensure_ascii=False, indent=2))
    else:
        print_leaderboard(run)
    return 0


def print_leaderboard(run) -> None:
    from ..bench.format import label, leaderboard

    summary = run.summary
    for rank, s in enumerate(leaderboard(summary), start=1):
        means = "  ".join(f"{label(m)} {s.mean[m]:.2f} [{s.ci95[m][0]:.2f}, {s.ci95[m][1]:.2f}]" for m in s.mean)
        print(f"#{rank} {s.name}: {means}  ({s.n_images} images)")
    for p in summary.pairwise:
        if p.win_rate_a is not None:
            tie = "  (tie within the CI)" if p.tie else ""
            print(f"{p.a} vs {p.b} ({label(p.metric)}): win rate {p.win_rate_a:.1%}, mean diff {p.mean_diff:+.2f} "
                  f"[{p.ci95[0]:.2f}, {p.ci95[1]:.2f}], p={p.p_value:.4f}{tie}")
    print(f"wrote {run.out / 'results.jsonl'}, summary.json, report.md, scores.png, categories.png")
