"""Load each model once per process: lazily, thread-safely, Hub-faithfully (clipdemo.hub), with clear errors.

Which weights each model read is recorded in `MODELS.weights` and shown to the user.

Device order is cuda, then mps, then cpu. The dtype follows the hardware: fp16 on CUDA, bf16 on a CPU
with native bf16 instructions, fp32 otherwise (emulated bf16 is 10-30x slower than fp32).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import torch

from .downloads import DOWNLOADS, MODEL, PIPELINE, PROCESSOR, Need
from .errors import ModelLoadError
from .hub import SAFETENSORS, cached_conversion, is_local, looks_like_path, weights_format


def load_pretrained(cls, model_id: str, role: str = "model", kind: str = "model", **kwargs) -> tuple[Any, str]:
    """(cls.from_pretrained(model_id), which weights it read), with transformers' default weights choice.

    A Hub id is fetched first (clipdemo.downloads: only the files the loader reads, with progress) and loaded
    from its cache folder. Offline, a repository without weights on main in the cache (config on main,
    safetensors only on the conversion revision) loads main's files with that revision's weights, as the
    online load that filled the cache did.
    """
    local = is_local(model_id)
    folder = DOWNLOADS.ensure(Need(role, model_id, kind))
    try:
        model = cls.from_pretrained(folder, local_files_only=True, **kwargs)
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


QUIET = threading.Event()  # set by a server: pipelines run without their tqdm bar


def quiet_progress_bars() -> None:
    """No tqdm bars from diffusers, transformers or the Hub client: a server's log keeps one line per request."""
    import diffusers

    QUIET.set()
    import transformers
    from huggingface_hub.utils import disable_progress_bars

    diffusers.DiffusionPipeline._progress_bar_config = {"disable": True}  # what pipelines start from
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    disable_progress_bars()


def pick_device(requested: str = "auto") -> torch.device:
    if requested != "auto":
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when the CPU advertises bf16 instructions. torch's own capability string cannot tell."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def pick_dtype(device: torch.device, requested: str = "auto") -> torch.dtype:
    named = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if requested != "auto":
        return named[requested]
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return torch.float32


@dataclass(frozen=True)
class ModelSpec:
    """What to load and how to tell the user to fix it when it fails."""

    kind: str  # "CLIP", "Stable Diffusion", ...
    model_id: str  # hub id or local folder
    flag: str  # e.g. "--clip-model"
    env_var: str  # e.g. "CLIPDEMO_CLIP_MODEL"


def describe_failure(spec: ModelSpec, exc: BaseException | None = None) -> ModelLoadError:
    if looks_like_path(spec.model_id) and not is_local(spec.model_id):
        reason = "no such folder"
    elif exc is None:
        reason = "unknown error"
    else:
        reason = " ".join(str(exc).split())[:240] or type(exc).__name__
    return ModelLoadError(
        f"Could not load the {spec.kind} model '{spec.model_id}' ({reason}). "
        f"Fix: pass a local folder in diffusers/transformers format with {spec.flag} PATH "
        f"(or set {spec.env_var}=PATH), or download the model once with network access; "
        f"set HF_HUB_OFFLINE=1 to use only local folders and cached models."
    )


class ModelCache:
    """One instance of each model per process. Concurrent callers of the same key wait for one load.

    Failures are remembered too, so a missing model costs one attempt, not one per request. Loads of
    different models run one at a time: the libraries' empty-weights initialisation patches torch globally.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loading = threading.RLock()
        self._key_locks: dict[tuple, threading.Lock] = {}
        self._models: dict[tuple, Any] = {}
        self._errors: dict[tuple, ModelLoadError] = {}
        self.weights: dict[str, str] = {}  # model id -> which weights file it was loaded from, for the user

    def get(self, key: tuple, spec: ModelSpec, load: Callable[[], Any]) -> Any:
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            if key in self._models:
                return self._models[key]
            if key in self._errors:
                raise self._errors[key]
            if looks_like_path(spec.model_id) and not is_local(spec.model_id):
                error = describe_failure(spec)
                self._errors[key] = error
                raise error
            try:
                with self._loading:
                    model = load()
            except Exception as exc:  # any loader failure becomes one clear message
                error = describe_failure(spec, exc)
                self._errors[key] = error
                raise error from exc
            self._models[key] = model
            return model

    def clear(self) -> None:
        with self._lock:
            self._models.clear()
            self._errors.clear()
            self.weights.clear()
            self._key_locks.clear()


MODELS = ModelCache()


def from_pretrained(cls, spec: ModelSpec, kind: str = MODEL, **kwargs) -> Any:
    """cls.from_pretrained for this spec (clipdemo.hub.load_pretrained), recording which weights it read."""
    model, MODELS.weights[spec.model_id] = load_pretrained(cls, spec.model_id, spec.kind, kind, **kwargs)
    return model


def fetched(model_id: str, role: str, kind: str = MODEL) -> str:
    """The folder to load a model's processor or tokenizer from: a local folder, or its fetched Hub snapshot."""
    return DOWNLOADS.ensure(Need(role, model_id, kind))


def load_clip(spec: ModelSpec, device: torch.device, dtype: torch.dtype,
              processor_id: str | None = None) -> tuple[Any, Any]:
    """(model, processor) for any CLIP-family checkpoint that transformers' Auto classes know.

    `processor_id` names another repo for the processor, as PickScore needs (its repo has none);
    a local folder that holds its own processor files uses them.
    """
    from transformers import AutoModel, AutoProcessor

    def load():
        local = is_local(spec.model_id)
        model = from_pretrained(AutoModel, spec, dtype=dtype)
        source = spec.model_id
        if processor_id and not (local and (Path(spec.model_id) / "preprocessor_config.json").exists()
                                 or local and (Path(spec.model_id) / "processor_config.json").exists()):
            source = processor_id
        kind = MODEL if source == spec.model_id else PROCESSOR  # PickScore's processor repo: its processor files only
        processor = AutoProcessor.from_pretrained(fetched(source, spec.kind, kind), local_files_only=True)
        return model.to(device).eval(), processor

    return MODELS.get(("clip", spec.model_id, str(device), str(dtype)), spec, load)


def load_safety_checker(spec: ModelSpec, device: torch.device, dtype: torch.dtype) -> tuple[Any, Any]:
    """diffusers' StableDiffusionSafetyChecker and its CLIP image processor."""
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPImageProcessor

    def load():
        model = from_pretrained(StableDiffusionSafetyChecker, spec, dtype=dtype)
        processor = CLIPImageProcessor.from_pretrained(fetched(spec.model_id, spec.kind), local_files_only=True)
        return model.to(device).eval(), processor

    return MODELS.get(("safety", spec.model_id, str(device), str(dtype)), spec, load)


def load_text2image(spec: ModelSpec, device: torch.device, dtype: torch.dtype) -> Any:
    """A diffusers text-to-image pipeline, moved to the device, with its progress bar left on."""
    from diffusers import AutoPipelineForText2Image

    def load():
        # use_safetensors=None: diffusers' default, safetensors when every component has them, else .bin
        # through torch's weights-only unpickler.
        pipe = AutoPipelineForText2Image.from_pretrained(
            fetched(spec.model_id, spec.kind, PIPELINE), dtype=dtype, use_safetensors=None, local_files_only=True,
        )
        MODELS.weights[spec.model_id] = weights_format(spec.model_id, "unet")
        return pipe.to(device)

    return MODELS.get(("sd", spec.model_id, str(device), str(dtype)), spec, load)


def load_translator(spec: ModelSpec, device: torch.device) -> tuple[Any, Any]:
    """A seq2seq translation model (MarianMT zh->en by default) and its tokenizer, in fp32."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    def load():
        model = from_pretrained(AutoModelForSeq2SeqLM, spec)
        tokenizer = AutoTokenizer.from_pretrained(fetched(spec.model_id, spec.kind), local_files_only=True)
        return model.to(device).eval(), tokenizer

    return MODELS.get(("translator", spec.model_id, str(device)), spec, load)


def load_tiny_decoder(spec: ModelSpec, device: torch.device, dtype: torch.dtype) -> Any:
    """TAESD (AutoencoderTiny): decodes SD latents in a fraction of the full VAE's time."""
    from diffusers import AutoencoderTiny

    def load():
        vae = AutoencoderTiny.from_pretrained(
            fetched(spec.model_id, spec.kind), dtype=dtype, use_safetensors=None, local_files_only=True
        )
        MODELS.weights[spec.model_id] = weights_format(spec.model_id)
        return vae.to(device).eval()

    return MODELS.get(("taesd", spec.model_id, str(device), str(dtype)), spec, load)


def has_sd_latents(vae: Any) -> bool:
    """True when a pipeline's VAE speaks SD 1.x/2.x latents, the ones TAESD was trained to decode."""
    config = vae.config
    return config.get("latent_channels") == 4 and abs(config.get("scaling_factor", 0) - 0.18215) < 1e-4
