"""One benchmark row per scored image, kept as JSON lines: appended one at a time, read back tolerantly.

A row is flushed and fsynced as soon as its image is written, so a killed run loses at most the image in
progress; a half-written last line (the kill came mid-write) is ignored when the file is read back.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..files import write_atomic
from ..errors import InputError


@dataclass(frozen=True)
class ResultRow:
    setting: str  # the setting's name, e.g. "a"
    prompt_id: str
    prompt: str
    seed: int | None  # None for images that were not generated here (`clipdemo score`)
    scores: dict[str, float] = field(default_factory=dict)  # scorer kind -> value, e.g. {"clip": 31.4}
    file: str = ""  # the PNG, relative to the run's folder
    category: str = ""
    source: str = ""  # where the prompt came from (a prompts file, a manifest, ...)

    @property
    def key(self) -> tuple[str, str, int | None]:
        """What identifies a row in a run: one image per (setting, prompt, seed)."""
        return self.setting, self.prompt_id, self.seed

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ResultRow":
        seed = data.get("seed")
        return cls(setting=str(data["setting"]), prompt_id=str(data["prompt_id"]), prompt=str(data["prompt"]),
                   seed=None if seed is None else int(seed),
                   scores={str(k): float(v) for k, v in (data.get("scores") or {}).items()},
                   file=str(data.get("file", "")), category=str(data.get("category", "") or ""),
                   source=str(data.get("source", "") or ""))


def append_row(path: str | Path, row: ResultRow) -> None:
    """Append one row as one line, flushed to disk before returning."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(row.as_json(), ensure_ascii=False, sort_keys=True) + "\n"
    drop_partial_line(path)  # a killed writer left half a line: ours replaces it
    with open(path, "ab") as f:
        f.write(line.encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())


def read_rows(path: str | Path) -> list[ResultRow]:
    """The rows of a results file, in file order; [] when it does not exist.

    A line that does not parse is ignored only when it is the last one (a write cut short); one in the
    middle means the file was edited or damaged, which is an InputError naming the line.
    """
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(ResultRow.from_json(json.loads(line)))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            if any(rest.strip() for rest in lines[number:]):
                raise InputError(f"{path.name}, line {number}: not a result row.") from None
    return rows


def write_rows(path: str | Path, rows: list[ResultRow]) -> None:
    """Replace the file with these rows, written whole and then renamed into place."""
    write_atomic(path, "".join(json.dumps(r.as_json(), ensure_ascii=False, sort_keys=True) + "\n" for r in rows))


def drop_partial_line(path: Path) -> None:
    """Cut a last line that has no newline (a write cut short) off the file."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as f:
        data = f.read()
        if not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)
