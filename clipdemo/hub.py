"""Where a model's files are: a local folder or the Hub cache, and which weights a load reads.

Weights load the way transformers and diffusers do by default: safetensors when the repository has them,
otherwise its PyTorch checkpoint through torch's weights-only unpickler (tensors only, no code runs). An
offline cache whose weights sit only on the Hub's safetensors-conversion revision (refs/pr/N, what
`use_safetensors=True` downloads for a repository without safetensors on main) loads from that revision.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def is_local(model_id: str) -> bool:
    return Path(model_id).expanduser().is_dir()


def looks_like_path(model_id: str) -> bool:
    return model_id.startswith(("/", "./", "../", "~")) or model_id.count("/") > 1 or "\\" in model_id


SAFETENSORS_FILES = ("model.safetensors", "model.safetensors.index.json",
                     "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.safetensors.index.json")
PYTORCH_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json",
                 "diffusion_pytorch_model.bin", "diffusion_pytorch_model.bin.index.json")
SAFETENSORS = "safetensors"
PYTORCH_CHECKPOINT = "PyTorch checkpoint (weights-only loader: tensors only, no code runs)"


def weights_format(model_id: str, subfolder: str = "") -> str:
    """Which weights from_pretrained read: safetensors if present (both libraries prefer them), else .bin.

    Looked up in the local folder or, for a Hub id, in the Hub cache (where a finished load has put them).
    """
    from huggingface_hub import try_to_load_from_cache

    def present(name: str) -> bool:
        path = f"{subfolder}/{name}" if subfolder else name
        if is_local(model_id):
            return (Path(model_id).expanduser() / path).is_file()
        return isinstance(try_to_load_from_cache(model_id, path), str)

    if any(present(name) for name in SAFETENSORS_FILES):
        return SAFETENSORS
    return PYTORCH_CHECKPOINT if any(present(name) for name in PYTORCH_FILES) else "unknown"


def cached_conversion(model_id: str) -> tuple[str, Path, Path] | None:
    """(refs/pr/N, main's snapshot, the revision's snapshot) when the Hub cache holds config files on main
    and safetensors weights on a conversion revision."""
    from huggingface_hub import constants

    repo = Path(constants.HF_HUB_CACHE) / ("models--" + model_id.replace("/", "--"))
    main_ref = repo / "refs" / "main"
    if not main_ref.is_file():
        return None
    main = repo / "snapshots" / main_ref.read_text().strip()
    for ref in sorted((repo / "refs" / "refs" / "pr").glob("*")):
        snapshot = repo / "snapshots" / ref.read_text().strip()
        if any((snapshot / name).is_file() for name in SAFETENSORS_FILES[:2]):
            return f"refs/pr/{ref.name}", main, snapshot
    return None


def load_pretrained(cls, model_id: str, **kwargs) -> tuple[Any, str]:
    """(cls.from_pretrained(model_id), which weights it read), with transformers' default weights choice.

    Offline, a repository without weights on main in the cache (config on main, safetensors only on the
    conversion revision) loads main's files with that revision's weights, as the online load that filled
    the cache did.
    """
    local = is_local(model_id)
    try:
        model = cls.from_pretrained(model_id, local_files_only=local, **kwargs)
    except OSError:
        conversion = None if local else cached_conversion(model_id)
        if conversion is None:
            raise
        import tempfile

        revision, main, converted = conversion
        with tempfile.TemporaryDirectory(prefix="clipdemo-conversion-") as view:
            for snapshot in (main, converted):  # a folder of links: main's files, then the revision's weights
                for path in snapshot.iterdir():
                    link = Path(view) / path.name
                    link.unlink(missing_ok=True)
                    link.symlink_to(path.resolve())
            model = cls.from_pretrained(view, local_files_only=True, use_safetensors=True, **kwargs)
        return model, f"{SAFETENSORS} from the Hub's conversion revision {revision}"
    return model, weights_format(model_id)


def hub_model_reachable(model_id: str, timeout: float = 2.0) -> bool:
    """Can this model be loaded without a long wait? Local folders and cached Hub models: yes.

    Otherwise the Hub must answer a TCP connection within `timeout` seconds, unless HF_HUB_OFFLINE is
    set, in which case the answer is no at once. This keeps an air-gapped start fast.
    """
    import os
    import socket
    from urllib.parse import urlparse

    if is_local(model_id):
        return True
    if looks_like_path(model_id):
        return False
    try:
        from huggingface_hub import try_to_load_from_cache

        for filename in ("model_index.json", "config.json"):
            if isinstance(try_to_load_from_cache(model_id, filename), str):
                return True
    except Exception:  # a malformed id, say: treat as not cached
        pass
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    from huggingface_hub import constants

    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False
