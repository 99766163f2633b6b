"""Where a model's files are: a local folder or the Hub cache, and which weights a load reads.

Weights load the way transformers and diffusers do by default: safetensors when the repository has them,
otherwise its PyTorch checkpoint through torch's weights-only unpickler (tensors only, no code runs). An
offline cache whose weights sit only on the Hub's safetensors-conversion revision (refs/pr/N, what
`use_safetensors=True` downloads for a repository without safetensors on main) loads from that revision.
"""

from __future__ import annotations

from pathlib import Path


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


def offline() -> bool:
    import os

    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def unreachable_reason(model_id: str, timeout: float = 2.0) -> str | None:
    """Why this model cannot be loaded without a long wait, or None when it can.

    Local folders and models in the Hub cache: None at once. HF_HUB_OFFLINE: a reason at once. Otherwise
    huggingface_hub's own HTTP client asks the configured endpoint (HF_ENDPOINT: its scheme and port, and the
    proxies of HTTPS_PROXY/HTTP_PROXY) for the model's file list; any answer within `timeout` seconds counts.
    """
    if is_local(model_id):
        return None
    if looks_like_path(model_id):
        return "no such folder"
    try:
        from huggingface_hub import try_to_load_from_cache

        for filename in ("model_index.json", "config.json"):
            if isinstance(try_to_load_from_cache(model_id, filename), str):
                return None
    except Exception:  # a malformed id, say: treat as not cached
        pass
    if offline():
        return "HF_HUB_OFFLINE is set"
    from huggingface_hub import constants
    from huggingface_hub.utils import build_hf_headers, get_session

    url = f"{constants.ENDPOINT.rstrip('/')}/api/models/{model_id}"
    try:
        get_session().head(url, headers=build_hf_headers(), timeout=timeout, follow_redirects=False)
    except Exception as exc:  # timeouts, refused connections, proxy and TLS errors alike
        if "timeout" in type(exc).__name__.lower() or "timed out" in str(exc):
            return f"{constants.ENDPOINT} did not answer within {timeout:g} s"
        detail = " ".join(str(exc).split())[:160] or type(exc).__name__
        return f"{constants.ENDPOINT} could not be reached: {detail}"
    return None

