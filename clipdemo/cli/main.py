"""Argument parsing and printing only; the work is done by clipdemo.Studio.

Bad input and models that will not load end with exit code 2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

from ..config import resolve_settings
from ..errors import InputError, ModelLoadError
from ..generation import MAX_CANDIDATES, GenerationRequest
from ..generation.request import SD_TURBO
from ..options import OPTIONS
from ..studio import Studio
from .common import add_option_flags, print_notices, read_images
from ..text import DEFAULT_TEMPLATE, ZH_DEFAULT_TEMPLATE
from .score import add_parser as add_score_parser, cmd_score
from .bench import add_parser as add_bench_parser, cmd_bench
from .eval import add_parser as add_eval_parser, cmd_eval
from . import retrieval

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """argparse that reports usage errors on one line with exit code 2."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="clipdemo", description="Generate images, rank them with CLIP, and explore CLIP.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    g = sub.add_parser("generate", help="generate N candidates and rank them by CLIPScore")
    g.add_argument("prompt")
    g.add_argument("-n", type=int, default=None, help=f"number of candidates, 1-{MAX_CANDIDATES} (default: the "
                   f"preset's, {SD_TURBO.n} for the default models)")
    g.add_argument("--seed", type=int, default=None, help="seed of candidate 1; candidate i uses seed+i (default random)")
    g.add_argument("--steps", type=int, default=None)
    g.add_argument("--guidance", type=float, default=None)
    g.add_argument("--width", type=int, default=None)
    g.add_argument("--height", type=int, default=None)
    g.add_argument("--negative", default="", help="negative prompt")
    g.add_argument("--out", default="outputs", help="folder for the ranked PNGs and manifest.json")
    g.add_argument("--json", action="store_true", help="print the manifest as JSON")
    add_option_flags(g, "generation")

    c = sub.add_parser("classify", help="zero-shot classify images against labels")
    c.add_argument("images", nargs="+")
    c.add_argument("--labels", required=True, help='labels separated by commas or new lines, e.g. "cat,dog"')
    c.add_argument("--template", default=None,
                   help=f"default: '{DEFAULT_TEMPLATE}', or '{ZH_DEFAULT_TEMPLATE}' for Chinese labels")
    c.add_argument("--top-k", type=int, default=None)
    c.add_argument("--json", action="store_true")
    add_option_flags(c)

    s = sub.add_parser("similarity", help="image x text cosine similarity and CLIPScore")
    s.add_argument("images", nargs="+")
    s.add_argument("--texts", nargs="+", required=True)
    s.add_argument("--json", action="store_true")
    add_option_flags(s)

    add_eval_parser(sub)

    v = sub.add_parser("serve", help="start the web app")
    v.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                   help="address to listen on (default 127.0.0.1; Spaces set GRADIO_SERVER_NAME)")
    v.add_argument("--port", type=int, default=os.environ.get("GRADIO_SERVER_PORT", "7860"),
                   help="port to listen on (default 7860; Spaces set GRADIO_SERVER_PORT)")
    v.add_argument("--share", action="store_true", help="ask gradio for a public link (off by default)")
    v.add_argument("--mcp", action="store_true",
                   help="also serve the endpoints as MCP tools at /gradio_api/mcp/ (as GRADIO_MCP_SERVER=True does)")
    add_option_flags(v, "serve")
    add_score_parser(sub)
    add_bench_parser(sub)
    retrieval.add_parsers(sub)
    return parser


def settings_from(args: argparse.Namespace):
    return resolve_settings(**{o.name: getattr(args, o.name, None) for o in OPTIONS})


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
    request = request.validated()
    studio.await_models(request.prompt)  # each model's download as a bar on stderr, before anything loads
    result = studio.generate(request, scorer=args.scorer, out_dir=args.out)
    path = result.files.manifest
    print_notices(result.notices)
    if args.json:
        print(json.dumps(result.manifest(), ensure_ascii=False, indent=2))
    else:
        for item in result.images:
            print(item.caption())
        print(f"wrote {len(result.images)} images and {path}")
    return 0


def cmd_classify(args, studio: Studio) -> int:
    images = read_images(args.images)
    result = studio.classify(images, args.labels, args.template, args.top_k, names=args.images, scorer=args.scorer)
    print_notices(result.notices)
    if args.json:
        out = [{"image": r.name, "predictions": [{"label": p.label, "prob": p.prob} for p in r.predictions],
                "scorer": result.scorer} for r in result.images]
        print(json.dumps(out, ensure_ascii=False, indent=2))
    else:
        print(f"scored by {result.scorer}, template '{result.template}'")
        for r in result.images:
            print(r.name + ": " + ", ".join(f"{p.label} {p.prob:.1%}" for p in r.predictions))
    return 0


def cmd_similarity(args, studio: Studio) -> int:
    result = studio.similarity(read_images(args.images), args.texts, names=args.images, scorer=args.scorer)
    print_notices(result.notices)
    if args.json:
        out = {"images": result.image_names, "texts": result.texts, "cosine": result.cosine.tolist(),
               "clip_score": result.clip_score.tolist(), "scorer": result.scorer}
        print(json.dumps(out, ensure_ascii=False, indent=2))
    else:
        width = max(len(t) for t in result.image_names)
        print(" " * width + "  " + "  ".join(result.texts))
        for name, row in zip(result.image_names, result.cosine):
            print(name.ljust(width) + "  " + "  ".join(f"{v:.3f}" for v in row))
    return 0


def cmd_serve(args, studio: Studio) -> int:
    import importlib.util

    from ..ui import launch

    if args.mcp and importlib.util.find_spec("mcp") is None:
        raise InputError("--mcp needs the MCP extra: pip install 'gradio[mcp]'.")
    studio.follow_downloads(log=lambda line: print(f"clipdemo: {line}", file=sys.stderr, flush=True))

    launch(studio, host=args.host, port=args.port, share=args.share, mcp_server=True if args.mcp else None)
    return 0


COMMANDS = {"generate": cmd_generate, "classify": cmd_classify, "similarity": cmd_similarity, "eval": cmd_eval,
            "serve": cmd_serve}
COMMANDS["score"] = cmd_score
COMMANDS["bench"] = cmd_bench
COMMANDS.update(retrieval.COMMANDS)


class _NoTorchvisionAdvice(logging.Filter):
    """Drops transformers' "requires torchvision ... falling back to ...Pil" notes: clipdemo never installs
    torchvision on purpose (it pulls a multi-GB CUDA torch), and the PIL processors it falls back to are
    the ones clipdemo wants. Every other transformers message still shows."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "requires torchvision (not installed)" not in record.getMessage()


def quiet_loading_bars() -> None:
    """Model-loading progress bars would break the one-line error contract; denoising bars stay."""
    logging.getLogger("transformers.utils.import_utils").addFilter(_NoTorchvisionAdvice())
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    diffusers_logging.disable_progress_bar()


class DownloadBars:
    """One byte-counting bar per model on stderr while it downloads; nothing for models already cached."""

    def __init__(self) -> None:
        self._bars: dict[str, Any] = {}

    def __call__(self, status) -> None:
        from tqdm import tqdm

        status.refresh()
        bar = self._bars.get(status.repo_id)
        if bar is None:
            if status.state != "downloading" or not status.total or status.done >= status.total:
                return
            bar = self._bars[status.repo_id] = tqdm(total=status.total, unit="B", unit_scale=True, file=sys.stderr,
                                                   desc=f"downloading {status.repo_id}")
        bar.total = status.total
        bar.update(status.done - bar.n)
        if status.state in ("ready", "failed"):
            bar.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet_loading_bars()
    try:
        if args.command == "serve":
            from ..ui.common import auth_from_env

            auth_from_env(os.environ.get("CLIPDEMO_AUTH"))  # a malformed value is told before models load
        studio = Studio(settings_from(args))
        if args.command != "serve":  # the page shows the server's downloads; a command shows them on stderr
            studio.follow_downloads(report=DownloadBars())
        print_notices(studio.notices)
        return COMMANDS[args.command](args, studio)
    except (InputError, ModelLoadError) as exc:
        print(f"clipdemo {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"clipdemo {args.command}: interrupted", file=sys.stderr)
        return 130
