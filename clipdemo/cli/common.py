"""What the subcommands share: their option flags, notices on stderr, images from paths, launched work.

The subcommand modules and main import this module; it imports none of them.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..options import OPTIONS, in_scope
from ..studio import SCORER_CHOICES, Studio


def add_option_flags(p: argparse.ArgumentParser, scope: str = "all") -> None:
    """The server settings this command takes, each from its one declaration in clipdemo.options."""
    p.add_argument("--scorer", choices=SCORER_CHOICES, default="auto",
                   help="auto: Chinese text goes to --zh-clip-model, the rest to --clip-model")
    for option in OPTIONS:
        if not in_scope(option, scope):
            continue
        help_text = f"{option.help} (env {option.env})"
        if option.kind == "bool":
            action = "store_false" if option.flag.startswith("--no-") else "store_true"
            p.add_argument(option.flag, dest=option.name, action=action, default=None, help=help_text)
        elif option.kind == "list":
            p.add_argument(option.flag, dest=option.name, nargs="+", help=help_text)
        else:
            p.add_argument(option.flag, dest=option.name, choices=option.choices or None, help=help_text,
                           type=float if option.kind == "float" else str)


def print_notices(notices: list[str]) -> None:
    for notice in notices:
        print(f"note: {notice}", file=sys.stderr)


def read_images(paths: list[str]):
    return [Studio.open_image(p) for p in paths]


def launched_accelerator(studio: Studio):
    """The Accelerator of a run started by `accelerate launch` or torchrun (WORLD_SIZE > 1), else None."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    from accelerate import Accelerator

    # cpu: without it a CPU-only launch gives each process a world of one, and every process all the work
    return Accelerator(cpu=studio.device.type == "cpu")


def launched_work(studio: Studio, desc: str):
    """(accelerator or None, whether this is the main process, a tqdm bar on stderr, a progress callback)."""
    from tqdm import tqdm

    accelerator = launched_accelerator(studio)
    main_process = accelerator is None or accelerator.is_main_process
    bar = tqdm(unit="img", desc=desc, disable=not main_process or None, file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    return accelerator, main_process, bar, progress


def finish_launched(accelerator, bar) -> None:
    """Close the bar and, under a launcher, the process group: left open, a rank can abort at exit."""
    bar.close()
    if accelerator is not None:
        accelerator.end_training()
