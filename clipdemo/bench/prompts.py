"""The prompts of a benchmark: a text file, a CSV or JSONL with a `prompt` column, a bundled set, or a list."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..config import ASSETS_DIR
from ..errors import InputError
from ..text import check_prompt

BUNDLED_SETS: dict[str, Path] = {
    "bilingual": ASSETS_DIR / "prompts" / "bilingual.jsonl",  # 50 prompts in English and Chinese, 5 categories
    "shapes": ASSETS_DIR / "prompts" / "shapes.jsonl",  # colour + shape prompts the demo models can draw
}
MAX_PROMPTS = 100_000


@dataclass(frozen=True)
class Prompt:
    id: str
    prompt: str
    category: str = ""
    language: str = ""
    source: str = ""  # the file or set it came from


def load_prompts(spec: str | Path | Sequence[str]) -> list[Prompt]:
    """Prompts from a bundled set's name, a .txt/.csv/.jsonl path, or a list of prompt strings."""
    # 1. A list of strings: ids are their 1-based positions.
    if not isinstance(spec, (str, Path)):
        return check_all([Prompt(str(i), text) for i, text in enumerate(spec, start=1)], "the prompt list")
    # 2. A bundled set by name, else a file by its suffix.
    path = BUNDLED_SETS.get(str(spec).strip(), Path(spec).expanduser())
    if not path.is_file():
        raise InputError(f"Prompts '{spec}': no such file and not a bundled set ({', '.join(BUNDLED_SETS)}).")
    reader = {".csv": read_csv, ".jsonl": read_jsonl}.get(path.suffix.lower(), read_text)
    source = str(spec) if str(spec) in BUNDLED_SETS else path.name
    try:
        records = reader(path)
    except UnicodeDecodeError:
        raise InputError(f"{path.name}: not UTF-8 text.") from None
    # 3. Ids default to the row number; the source is recorded with each prompt.
    prompts = [Prompt(str(r.get("id") or n).strip(), r["prompt"], str(r.get("category") or "").strip(),
                      str(r.get("language") or "").strip(), source) for n, r in records]
    return check_all(prompts, path.name)


def read_text(path: Path) -> list[tuple[int, dict]]:
    """One prompt per line; blank lines are skipped (ids still follow the line numbers)."""
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    return [(n, {"prompt": line.strip()}) for n, line in enumerate(lines, start=1) if line.strip()]


def read_csv(path: Path) -> list[tuple[int, dict]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if "prompt" not in (reader.fieldnames or []):
            raise InputError(f"{path.name}: the CSV needs a 'prompt' column (it has: {', '.join(reader.fieldnames or [])}).")
        return [(n, row) for n, row in enumerate(reader, start=1)]


def read_jsonl(path: Path) -> list[tuple[int, dict]]:
    records = []
    for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise InputError(f"{path.name}, line {n}: not JSON.") from None
        if not isinstance(record, dict) or not isinstance(record.get("prompt"), str):
            raise InputError(f"{path.name}, line {n}: needs a \"prompt\" string.")
        records.append((n, record))
    return records


def check_all(prompts: list[Prompt], where: str) -> list[Prompt]:
    """Every prompt usable, ids unique and safe in a file name; one InputError naming the first problem."""
    if not prompts:
        raise InputError(f"{where}: there are no prompts.")
    if len(prompts) > MAX_PROMPTS:
        raise InputError(f"{where}: {len(prompts)} prompts; the limit is {MAX_PROMPTS}.")
    seen: set[str] = set()
    checked = []
    for p in prompts:
        try:
            text = check_prompt(p.prompt)
        except InputError as exc:
            raise InputError(f"{where}, prompt '{p.id}': {exc}") from None
        if not p.id or p.id in seen:
            raise InputError(f"{where}: prompt id '{p.id}' is {'empty' if not p.id else 'used twice'}.")
        seen.add(p.id)
        checked.append(Prompt(p.id, text, p.category, p.language, p.source))
    return checked


def file_stem(prompt_id: str) -> str:
    """A file-name-safe form of a prompt id; ids that needed changing get a hash so two never collide."""
    import hashlib

    safe = re.sub(r"[^\w.-]", "_", prompt_id)[:60].lstrip(".") or "_"
    return safe if safe == prompt_id else f"{safe}-{hashlib.sha1(prompt_id.encode()).hexdigest()[:8]}"
