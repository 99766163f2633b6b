"""Measure the demo models' quality gates and write them to assets/models/QUALITY.json.

    python scripts/quality_gates.py                  # both worlds at the preset's defaults, writes QUALITY.json
    python scripts/quality_gates.py --table          # print the quality table of assets/models/README.md
    python scripts/quality_gates.py --guidance 1 --steps 20 --no-write   # a cheaper generator, printed only
    python scripts/quality_gates.py --grid docs/demo-top1-grid.png        # the README's grid of top-1 images

Animals (demo_world/quality.py): per language, the 20 animal x accessory prompts twice (held-out seeds) x 4
candidates, moderation off, judged by demo_world.judge (never the ranking CLIP); zero-shot top-1 over the 25
animal x accessory classes on 300 held-out renders. Shapes: the gates of the shapes world, as before.
"""

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python scripts/...` from anywhere
    sys.path.insert(0, str(ROOT))

from clipdemo import Studio, resolve_settings  # noqa: E402
from clipdemo.config import DEMO_MODELS_DIR  # noqa: E402
from demo_world.judge import Judge  # noqa: E402
from demo_world.quality import measure_all, top1_grid  # noqa: E402

QUALITY_FILE = DEMO_MODELS_DIR / "QUALITY.json"


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def table(quality: dict) -> str:
    """README's quality table, from QUALITY.json."""
    a, s = quality["animals"], quality["shapes"]
    en, zh = a["en"], a["zh"]
    rows = [
        "| measure | English | Chinese | gate |",
        "|---|---|---|---|",
        f"| animals: zero-shot top-1, 25 animal × accessory classes | **{pct(en['zero_shot_top1'])}** | "
        f"**{pct(zh['zero_shot_top1'])}** | ≥ 85% |",
        f"| animals: re-ranked top-1 shows the asked animal | **{pct(en['top1_animal'])}** | "
        f"**{pct(zh['top1_animal'])}** | ≥ 85% |",
        f"| animals: re-ranked top-1 shows the asked accessory | **{pct(en['top1_accessory'])}** | "
        f"**{pct(zh['top1_accessory'])}** | ≥ 75% |",
        f"| animals: animal and accessory both right, random candidate → re-ranked top-1 | "
        f"{pct(en['random_both'])} → **{pct(en['top1_both'])}** | {pct(zh['random_both'])} → "
        f"**{pct(zh['top1_both'])}** | + 10 points |",
        f"| animals: some candidate of 4 has both right | {pct(en['any_both'])} | {pct(zh['any_both'])} | |",
        f"| shapes: zero-shot top-1, 30 classes | **{pct(s['zero_shot_top1_en'])}** | "
        f"**{pct(s['zero_shot_top1_zh'])}** | ≥ 90% / ≥ 80% |",
        f"| shapes: colour of the re-ranked top-1 of 4 | **{pct(s['colour_match_top1_en'])}** | "
        f"**{pct(s['colour_match_top1_zh'])}** | ≥ 85% and ≥ random |",
        f"| shapes: colour of a random candidate | {pct(s['colour_match_random_en'])} | "
        f"{pct(s['colour_match_random_zh'])} | |",
        f"| shapes: colour and shape both, random → top-1 | {pct(s['class_match_random_en'])} → "
        f"{pct(s['class_match_top1_en'])} | {pct(s['class_match_random_zh'])} → {pct(s['class_match_top1_zh'])} | |",
    ]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=300, help="held-out renders for each zero-shot gate")
    parser.add_argument("--per-pair", type=int, default=2, help="seeds per animal x accessory prompt")
    parser.add_argument("--steps", type=int, help="sampling steps (default: the demo preset's)")
    parser.add_argument("--guidance", type=float, help="guidance scale (default: the demo preset's)")
    parser.add_argument("--table", action="store_true", help="print README's table from QUALITY.json and stop")
    parser.add_argument("--no-write", action="store_true", help="print the measures, leave QUALITY.json")
    parser.add_argument("--grid", type=Path, help="save the re-ranked top-1 of ten held-out prompts per "
                                                  "language (each animal wearing glasses) as a PNG and stop")
    args = parser.parse_args()
    if args.table:
        print(table(json.loads(QUALITY_FILE.read_text(encoding="utf-8"))))
        return
    started = time.time()
    # Moderation off: the demo preset blurs purple stars on purpose; the judges must see what was drawn.
    studio = Studio(resolve_settings(preset="demo", moderation="off"))
    if args.grid:
        top1_grid(studio).save(args.grid)
        print(f"wrote {args.grid}")
        return
    quality = measure_all(studio, Judge(), args.per_pair, args.images, args.steps, args.guidance)
    quality["seconds"] = round(time.time() - started, 1)
    summary = {lang: {k: v for k, v in quality["animals"][lang].items() if k != "records"} for lang in ("en", "zh")}
    print(json.dumps({"animals": summary, "shapes": quality["shapes"]}, indent=2))
    if not args.no_write:
        QUALITY_FILE.write_text(json.dumps(quality, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {QUALITY_FILE}")


if __name__ == "__main__":
    main()
