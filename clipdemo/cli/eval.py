"""`python -m clipdemo eval PATH`: zero-shot top-1/top-5 of a labelled image folder, zip, CSV or CIFAR archive.

Parsing and printing only; the work is Studio.evaluate. Imports of cli.main happen inside the
functions: main imports this module to register the subcommand.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    from .common import add_option_flags

    e = sub.add_parser("eval", help="zero-shot evaluation of a labelled image folder, zip, CSV or CIFAR archive")
    e.add_argument("path", help="class folders (+labels.json/labels.txt), a zip of them, a path,label CSV, "
                                "or a CIFAR-10/100 python archive folder")
    e.add_argument("--classes", help="comma-separated subset of classes to evaluate on (label ablation)")
    e.add_argument("--templates", default="single",
                   help="single (in the labels' language), cifar (18), imagenet (80), zh, a FILE, or one template")
    e.add_argument("--batch-size", type=int, default=64)
    e.add_argument("--limit", type=int, default=None, help="evaluate at most this many images (a fixed sample)")
    e.add_argument("--workers", type=int, default=2, help="DataLoader worker processes (default 2)")
    e.add_argument("--out", default="eval-report", help="folder for eval.json, report.md and confusion.png")
    e.add_argument("--json", action="store_true", help="print the metrics as JSON")
    e.add_argument("--drop", action="append", metavar="CLASS",
                   help="leave out this class and its images (folder name or label; repeat it)")
    e.add_argument("--merge", action="append", metavar="A=B",
                   help="count class A's images as class B, A's label gone (repeat it); applied after --drop")
    e.add_argument("--sample", action="append", metavar="CLASS=N",
                   help="keep at most N images of this class, chosen with a fixed seed (repeat it); after --merge")
    e.add_argument("--ablate", action="store_true",
                   help="also report the full set, each single drop and each merge into every other class, "
                        "from the same logits (on the set as --drop/--merge/--sample left it)")
    e.add_argument("--probe", metavar="LABELS",
                   help='attribute labels to classify each image against too, e.g. "man, woman": a per-class '
                        "table of the top probe label's share and the mean probe probability")
    add_option_flags(e)


def cmd_eval(args: argparse.Namespace, studio) -> int:
    from ..studio import ClassEdits, EvalSource
    from .common import finish_launched, launched_work, print_notices

    edits = ClassEdits.parse(args.drop, args.merge, args.sample)  # a malformed A=B fails before any work
    accelerator, main_process, bar, progress = launched_work(studio, "evaluating")
    classes = [c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else None
    try:
        run = studio.evaluate_source(EvalSource(args.path, classes, args.limit, edits), args.out, args.templates,
                                     args.batch_size, args.workers, progress, accelerator, scorer=args.scorer,
                                     probe=args.probe, ablate=args.ablate)
    finally:
        finish_launched(accelerator, bar)
    result = run.result
    print_notices(result.notices)
    if not main_process:
        return 0
    if accelerator is not None:
        print(f"{accelerator.num_processes} processes shared the {len(run.image_set)} images.", file=sys.stderr)
    paths = run.report
    data = result.as_json()
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        print(f"logits {data['logits_shape']}  top-1 {result.top1:.2%}  top-5 {result.top5:.2%}  "
              f"({data['n_images']} images, {data['n_classes']} classes, templates {result.templates})")
        for pair in result.most_confused(5):
            print(f"  confused: {pair['true']} -> {pair['predicted']} ({pair['count']})")
        if result.probes is not None:
            print(f"\nprobes (share of each class's images whose top probe label is each, mean probability), "
                  f"scored by {result.probes.scorer}:")
            print(result.probes.text())
        if result.ablations is not None:
            print("\nablations:")
            print(result.ablations.text())
        print(f"wrote {paths['json']}, {paths['markdown']}, {paths['confusion']}")
    return 0
