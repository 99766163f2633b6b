"""`index`, `search` and `describe`: CLIP both ways over image folders, and images described in words.

Parsing and printing only; the work is clipdemo.retrieval and clipdemo.describe. Imports of cli.main
happen inside the functions: main imports this module to register the subcommands.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..studio import LANGUAGES
from ..text import display_name


def add_parsers(sub: argparse._SubParsersAction) -> None:
    from .common import add_option_flags

    i = sub.add_parser("index", help="embed every image of a folder once, into an index that search reads")
    i.add_argument("folder", help="a folder of images (searched recursively)")
    i.add_argument("--out", required=True, metavar="INDEX", help="the index folder; rerunning embeds only new or "
                                                                 "changed images and drops deleted ones")
    i.add_argument("--rebuild", action="store_true", help="embed everything again (e.g. with another model)")
    i.add_argument("--batch-size", type=int, default=32)
    i.add_argument("--workers", type=int, default=2, help="DataLoader worker processes (default 2)")
    i.add_argument("--json", action="store_true", help="print what was done as JSON")
    add_option_flags(i)

    s = sub.add_parser("search", help="the images of an index or folder closest to a text or an image")
    s.add_argument("target", metavar="INDEX_OR_FOLDER",
                   help="an index from `clipdemo index`, or a folder (indexed on the fly into ~/.cache/clipdemo)")
    query = s.add_mutually_exclusive_group(required=True)
    query.add_argument("--text", help='a text query, e.g. "a red circle" or "一只狗"')
    query.add_argument("--image", metavar="FILE", help="an image query: the images most like it")
    s.add_argument("-k", type=int, default=10, help="how many results (default 10)")
    s.add_argument("--json", action="store_true", help='print [{"file", "score"}] as JSON')
    add_option_flags(s)

    d = sub.add_parser("describe", help="rank phrases that describe each image, and compose a prompt from them")
    d.add_argument("images", nargs="+", metavar="IMAGE")
    d.add_argument("--language", choices=LANGUAGES, default="en", help="the built-in bank's language (default en)")
    d.add_argument("-k", type=int, default=5, help="phrases per image (default 5)")
    d.add_argument("--json", action="store_true", help='print [{"image", "phrases": [{"text", "score"}], "prompt"}]')
    add_option_flags(d, "describe")


def cmd_index(args: argparse.Namespace, studio) -> int:
    from .common import finish_launched, launched_work, print_notices

    accelerator, main_process, bar, progress = launched_work(studio, "indexing")
    try:
        update = studio.index(args.folder, args.out, rebuild=args.rebuild, batch_size=args.batch_size,
                              num_workers=args.workers, progress=progress, accelerator=accelerator,
                              scorer=args.scorer)
    finally:
        finish_launched(accelerator, bar)
    if not main_process:
        return 0
    print_notices(update.notices)
    if accelerator is not None:
        print(f"{accelerator.num_processes} processes shared the {len(update.embedded) + len(update.skipped)} "
              "images to embed.",
              file=sys.stderr)
    summary = {"index": str(update.out), "images": len(update.index), "embedded": len(update.embedded),
               "kept": update.kept, "removed": len(update.removed), "skipped": update.skipped,
               "model": update.index.model, "dim": update.index.dim}
    if args.json:
        print(json.dumps(summary, ensure_ascii=False, indent=2))
    else:
        print(f"{len(update.index)} images in {update.out}: embedded {len(update.embedded)}, kept {update.kept}, "
              f"removed {len(update.removed)}" + (f", skipped {len(update.skipped)}" if update.skipped else ""))
    return 0


def cmd_search(args: argparse.Namespace, studio) -> int:
    from .common import finish_launched, launched_work, print_notices

    accelerator, _, bar, progress = launched_work(studio, "indexing")
    try:
        result = studio.search(args.target, text=args.text, image=args.image, k=args.k, scorer=args.scorer,
                               progress=progress)
    finally:
        finish_launched(accelerator, bar)
    print_notices(result.notices)
    if result.update is not None and result.update.embedded:
        print(f"note: indexed {len(result.update.embedded)} new or changed images into {result.update.out}",
              file=sys.stderr)
    if args.json:
        print(json.dumps(result.as_json(), ensure_ascii=False, indent=2))
    else:
        print(f"{len(result.hits)} of {result.n_images} images closest to {result.kind} '{result.query}' "
              f"(cosine, {display_name(result.scorer)}):")
        for hit in result.hits:
            print(f"{hit.score:.4f}  {hit.file}")
    return 0


def cmd_describe(args: argparse.Namespace, studio) -> int:
    from .common import print_notices, read_images

    result = studio.describe(read_images(args.images), language=args.language, k=args.k, names=args.images,
                             scorer=args.scorer)
    print_notices(result.notices)
    if args.json:
        print(json.dumps(result.as_json(), ensure_ascii=False, indent=2))
    else:
        for d in result.images:
            print(f"{d.image}: " + ", ".join(f"{p.text} ({p.score:.3f})" for p in d.phrases))
            print(f"  prompt: {d.prompt}")
    return 0


COMMANDS = {"index": cmd_index, "search": cmd_search, "describe": cmd_describe}
