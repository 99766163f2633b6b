"""Writing files whole: a reader (or a killed process) never sees half a file under its real name."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable


def write_atomic(path: str | Path, data: bytes | str | Callable[[Path], None]) -> Path:
    """Write bytes, text (UTF-8) or whatever `data(tmp_path)` writes to a hidden file, then rename it into place."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")  # its own: writers of one path may race
    try:
        if callable(data):
            data(tmp)
        else:
            tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
