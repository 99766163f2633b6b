"""Measure the demo models' quality gates and print them as JSON.

    python scripts/quality_gates.py [--prompts-per-class 1] [--images 300]   (the same sample the tests use)
    python scripts/quality_gates.py --guidance 1 --steps 20    (a cheaper generator: what re-ranking buys)

Gates (issue #3): zero-shot top-1 >= 0.90 (English) and >= 0.80 (Chinese) over the 30 classes;
re-ranked top-1 colour match >= 0.85 and above the random-candidate rate. Also reported: how often
colour and shape both match (world.judge_shape), for a random candidate and for the re-ranked top-1.
"""

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python scripts/...` from anywhere
    sys.path.insert(0, str(ROOT))

from clipdemo import Studio, resolve_settings
from demo_world.quality import measure


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--prompts-per-class", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, help="sampling steps (default: the demo preset's)")
    parser.add_argument("--guidance", type=float, help="guidance scale (default: the demo preset's)")
    args = parser.parse_args()
    started = time.time()
    # Moderation off: the demo preset blurs purple stars on purpose; the judges must see what was drawn.
    studio = Studio(resolve_settings(preset="demo", moderation="off"))
    report = measure(studio, args.images, args.prompts_per_class, args.seed, args.steps, args.guidance).as_dict()
    report["seconds"] = round(time.time() - started, 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
