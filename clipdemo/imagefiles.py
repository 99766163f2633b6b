"""Image files on disk: which names are images, a folder's images, and zips unpacked safely."""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path, PurePosixPath, PureWindowsPath

from .errors import InputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


MAX_ZIP_FILES = 20_000


MAX_ZIP_BYTES = 1 << 30  # 1 GiB uncompressed


MAX_COMPRESSION_RATIO = 200  # a larger ratio for a big member looks like a zip bomb


def safe_extract_zip(archive: str | Path, dest: str | Path, max_files: int = MAX_ZIP_FILES,
                     max_bytes: int = MAX_ZIP_BYTES) -> Path:
    """Extract a zip, refusing absolute paths, '..', symlinks, too many files and zip bombs."""
    dest = Path(dest).resolve()
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError):
        raise InputError("The upload is not a readable zip file.") from None
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        if len(members) > max_files:
            raise InputError(f"The zip holds {len(members)} files; the limit is {max_files}.")
        total = 0
        for m in members:
            name = m.filename.replace("\\", "/")
            parts = PurePosixPath(name).parts
            # a drive ("C:", "c:evil.png", "//host/share") escapes dest once the zip is opened on Windows
            drive = PureWindowsPath(name).drive or (parts and parts[0].endswith(":"))
            if name.startswith("/") or drive or ".." in parts:
                raise InputError(f"The zip entry '{m.filename}' points outside the archive; refusing it.")
            if stat.S_ISLNK(m.external_attr >> 16):
                raise InputError(f"The zip entry '{m.filename}' is a symbolic link; refusing it.")
            total += m.file_size
            if total > max_bytes:
                raise InputError(f"The zip unpacks to more than {max_bytes // 2**20} MB; refusing it.")
            if m.file_size > 10 * 2**20 and m.file_size > MAX_COMPRESSION_RATIO * max(m.compress_size, 1):
                raise InputError(f"The zip entry '{m.filename}' is compressed suspiciously well (a zip bomb?).")
        for m in members:
            target = (dest / m.filename.replace("\\", "/")).resolve()
            if dest not in target.parents:
                raise InputError(f"The zip entry '{m.filename}' points outside the archive; refusing it.")
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(m) as src, open(target, "wb") as out:
                written = 0
                while chunk := src.read(1 << 20):
                    written += len(chunk)
                    if written > m.file_size:  # the header lied about the size
                        raise InputError(f"The zip entry '{m.filename}' is larger than it claims; refusing it.")
                    out.write(chunk)
    return dest


def image_files(folder: Path, follow_symlinks: bool) -> list[Path]:
    """Regular image files under folder, sorted. Each real folder is walked once, so symlink loops end."""
    found, seen = [], set()
    for root, dirs, files in os.walk(folder, followlinks=follow_symlinks):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []  # reached again through a symlink: already walked
            continue
        seen.add(real)
        for name in files:
            p = Path(root, name)
            if p.suffix.lower() in IMAGE_SUFFIXES and (follow_symlinks or not p.is_symlink()) and p.is_file():
                found.append(p)  # is_file: no devices, fifos or dangling links
    return sorted(found)
