"""Measure the demo models' quality gates and print them as JSON.

    python scripts/quality_gates.py [--prompts-per-class 1] [--images 300]   (the same sample the tests use)

Gates (issue #3): zero-shot top-1 >= 0.90 (English) and >= 0.80 (Chinese) over the 30 classes;
re-ranked top-1 colour match >= 0.85 and above the random-candidate rate.
"""

import argparse
import json
import time

from clipdemo import Studio, resolve_settings
from clipdemo.demo_quality import measure


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--prompts-per-class", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.time()
    studio = Studio(resolve_settings(preset="demo"))
    report = measure(studio, args.images, args.prompts_per_class, args.seed).as_dict()
    report["seconds"] = round(time.time() - started, 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
