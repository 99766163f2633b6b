"""Argument parsing and printing only; the work is done by clipdemo.Studio.

Bad input and models that will not load end with exit code 2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..config import DTYPES, PRESETS, resolve_settings
from ..errors import InputError, ModelLoadError
from ..generation import GenerationRequest
from ..images import load_image
from ..ranking import manifest, write_run
from ..studio import Studio
from ..text import DEFAULT_TEMPLATE

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """argparse that reports usage errors on one line with exit code 2."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def add_model_flags(p: argparse.ArgumentParser, generation: bool = True) -> None:
    p.add_argument("--preset", choices=sorted(PRESETS), help="model set and defaults (env CLIPDEMO_PRESET)")
    p.add_argument("--clip-model", help="CLIP hub id or local folder (env CLIPDEMO_CLIP_MODEL)")
    if generation:
        p.add_argument("--sd-model", help="diffusers text-to-image hub id or local folder (env CLIPDEMO_SD_MODEL)")
        p.add_argument("--decoder", help="auto (TAESD on CPU), taesd, full, or an AutoencoderTiny folder "
                       "(env CLIPDEMO_DECODER)")
        p.add_argument("--compile", action="store_true", default=None,
                       help="torch.compile the UNet; slow first call (env CLIPDEMO_COMPILE=1)")
        p.add_argument("--cpu-offload", action="store_true", default=None,
                       help="move idle models to the CPU, for small GPUs (env CLIPDEMO_CPU_OFFLOAD=1)")
    p.add_argument("--dtype", choices=DTYPES, help="weights dtype; auto picks by hardware (env CLIPDEMO_DTYPE)")
    p.add_argument("--device", help="cuda, mps or cpu; auto picks the first available (env CLIPDEMO_DEVICE)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="clipdemo", description="Generate images, rank them with CLIP, and explore CLIP.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    g = sub.add_parser("generate", help="generate N candidates and rank them by CLIPScore")
    g.add_argument("prompt")
    g.add_argument("-n", type=int, default=None, help="number of candidates, 1-8 (default 4)")
    g.add_argument("--seed", type=int, default=None, help="seed of candidate 1; candidate i uses seed+i (default random)")
    g.add_argument("--steps", type=int, default=None)
    g.add_argument("--guidance", type=float, default=None)
    g.add_argument("--width", type=int, default=None)
    g.add_argument("--height", type=int, default=None)
    g.add_argument("--negative", default="", help="negative prompt")
    g.add_argument("--out", default="outputs", help="folder for the ranked PNGs and manifest.json")
    g.add_argument("--json", action="store_true", help="print the manifest as JSON")
    add_model_flags(g)

    c = sub.add_parser("classify", help="zero-shot classify images against labels")
    c.add_argument("images", nargs="+")
    c.add_argument("--labels", required=True, help='labels separated by commas or new lines, e.g. "cat,dog"')
    c.add_argument("--template", default=DEFAULT_TEMPLATE)
    c.add_argument("--top-k", type=int, default=None)
    c.add_argument("--json", action="store_true")
    add_model_flags(c, generation=False)

    s = sub.add_parser("similarity", help="image x text cosine similarity and CLIPScore")
    s.add_argument("images", nargs="+")
    s.add_argument("--texts", nargs="+", required=True)
    s.add_argument("--json", action="store_true")
    add_model_flags(s, generation=False)

    v = sub.add_parser("serve", help="start the web app")
    v.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                   help="address to listen on (default 127.0.0.1; Spaces set GRADIO_SERVER_NAME)")
    v.add_argument("--port", type=int, default=7860)
    v.add_argument("--share", action="store_true", help="ask gradio for a public link (off by default)")
    add_model_flags(v)
    return parser


def settings_from(args: argparse.Namespace):
    return resolve_settings(
        sd_model=getattr(args, "sd_model", None),
        clip_model=args.clip_model,
        dtype=args.dtype,
        device=args.device,
        preset=args.preset,
        decoder=getattr(args, "decoder", None),
        compile=getattr(args, "compile", None),
        cpu_offload=getattr(args, "cpu_offload", None),
    )


def cmd_generate(args, studio: Studio) -> int:
    d = studio.settings.defaults
    request = GenerationRequest(
        prompt=args.prompt,
        negative_prompt=args.negative,
        n=d.n if args.n is None else args.n,
        steps=d.steps if args.steps is None else args.steps,
        guidance=d.guidance if args.guidance is None else args.guidance,
        width=d.width if args.width is None else args.width,
        height=d.height if args.height is None else args.height,
        seed=args.seed,
    )
    result = studio.generate(request.validated())
    path = write_run(result, args.out)
    for notice in result.notices:
        print(f"note: {notice}", file=sys.stderr)
    if args.json:
        print(json.dumps(manifest(result), ensure_ascii=False, indent=2))
    else:
        for item in result.images:
            print(item.caption())
        print(f"wrote {len(result.images)} images and {path}")
    return 0


def read_images(paths: list[str]):
    return [load_image(p) for p in paths]


def cmd_classify(args, studio: Studio) -> int:
    images = read_images(args.images)
    results = studio.classify(images, args.labels, args.template, args.top_k, names=args.images)
    if args.json:
        out = [{"image": r.name, "predictions": [{"label": p.label, "prob": p.prob} for p in r.predictions]} for r in results]
        print(json.dumps(out, ensure_ascii=False, indent=2))
    else:
        for r in results:
            print(r.name + ": " + ", ".join(f"{p.label} {p.prob:.1%}" for p in r.predictions))
    return 0


def cmd_similarity(args, studio: Studio) -> int:
    result = studio.similarity(read_images(args.images), args.texts, names=args.images)
    if args.json:
        out = {"images": result.image_names, "texts": result.texts,
               "cosine": result.cosine.tolist(), "clip_score": result.clip_score.tolist()}
        print(json.dumps(out, ensure_ascii=False, indent=2))
    else:
        width = max(len(t) for t in result.image_names)
        print(" " * width + "  " + "  ".join(result.texts))
        for name, row in zip(result.image_names, result.cosine):
            print(name.ljust(width) + "  " + "  ".join(f"{v:.3f}" for v in row))
    return 0


def cmd_serve(args, studio: Studio) -> int:
    from ..ui import launch

    launch(studio, host=args.host, port=args.port, share=args.share)
    return 0


COMMANDS = {"generate": cmd_generate, "classify": cmd_classify, "similarity": cmd_similarity, "serve": cmd_serve}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        studio = Studio(settings_from(args))
        for notice in studio.notices:
            print(f"note: {notice}", file=sys.stderr)
        return COMMANDS[args.command](args, studio)
    except (InputError, ModelLoadError) as exc:
        print(f"clipdemo {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"clipdemo {args.command}: interrupted", file=sys.stderr)
        return 130
