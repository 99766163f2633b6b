"""Which models and defaults a run uses, resolved once from flags, environment variables and presets.

Order of precedence for every setting: command-line flag, then environment variable, then preset,
then the built-in default. A model that came from a flag or an environment variable is "explicit":
it is used as given or the run fails with a clear message, never silently replaced.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

from .errors import InputError

PACKAGE_DIR = Path(__file__).resolve().parent
ASSETS_DIR = PACKAGE_DIR.parent / "assets"
TOKENIZER_DIR = ASSETS_DIR / "tokenizer"
DEMO_MODELS_DIR = ASSETS_DIR / "models"

DEFAULT_SD_MODEL = "stabilityai/sd-turbo"
DEFAULT_CLIP_MODEL = "openai/clip-vit-base-patch32"
DTYPES = ("auto", "fp32", "bf16", "fp16")
DEFAULT_TAESD = "madebyollin/taesd"
TRUE_WORDS = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class GenerationDefaults:
    """What the Generate form and the CLI start from; sd-turbo's own recommended settings."""

    n: int = 4
    steps: int = 1
    guidance: float = 0.0
    width: int = 512
    height: int = 512


@dataclass(frozen=True)
class Preset:
    sd_model: str
    clip_model: str
    defaults: GenerationDefaults = field(default_factory=GenerationDefaults)
    description: str = ""


PRESETS: dict[str, Preset] = {
    "default": Preset(DEFAULT_SD_MODEL, DEFAULT_CLIP_MODEL, description="sd-turbo + OpenAI CLIP ViT-B/32 from the Hub"),
    # Tiny models trained here on the shapes world (scripts/train_demo_models.py): they work offline.
    "demo": Preset(
        str(DEMO_MODELS_DIR / "demo-sd"),
        str(DEMO_MODELS_DIR / "demo-clip"),
        GenerationDefaults(n=4, steps=20, guidance=4.0, width=64, height=64),
        description="tiny bilingual shapes models shipped in assets/models, offline",
    ),
}


@dataclass(frozen=True)
class Settings:
    sd_model: str = DEFAULT_SD_MODEL
    clip_model: str = DEFAULT_CLIP_MODEL
    sd_model_explicit: bool = False
    clip_model_explicit: bool = False
    dtype: str = "auto"
    device: str = "auto"
    preset: str = "default"
    preset_explicit: bool = False
    decoder: str = "auto"  # auto | taesd | full | PATH to an AutoencoderTiny folder
    compile: bool = False  # torch.compile the UNet (opt-in: slow first call)
    cpu_offload: bool = False  # enable_model_cpu_offload, for small GPUs
    defaults: GenerationDefaults = field(default_factory=GenerationDefaults)

    @property
    def uses_builtin_defaults(self) -> bool:
        """True when the user chose no model and no preset: only then may the app fall back to the demo."""
        return not (self.sd_model_explicit or self.clip_model_explicit or self.preset_explicit)

    def with_preset(self, name: str) -> "Settings":
        """The same settings with another preset's models, keeping any model the user named."""
        preset = get_preset(name)
        return replace(
            self,
            preset=name,
            sd_model=self.sd_model if self.sd_model_explicit else preset.sd_model,
            clip_model=self.clip_model if self.clip_model_explicit else preset.clip_model,
            defaults=preset.defaults,
        )


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise InputError(f"Unknown preset '{name}'. Choose one of: {', '.join(PRESETS)}.")
    return PRESETS[name]


def resolve_settings(
    sd_model: str | None = None,
    clip_model: str | None = None,
    dtype: str | None = None,
    device: str | None = None,
    preset: str | None = None,
    decoder: str | None = None,
    compile: bool | None = None,
    cpu_offload: bool | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Combine flags (the arguments), environment variables and the chosen preset into Settings."""
    env = os.environ if env is None else env
    named_preset = preset or env.get("CLIPDEMO_PRESET")
    preset_name = named_preset or "default"
    chosen = get_preset(preset_name)
    sd = sd_model or env.get("CLIPDEMO_SD_MODEL")
    clip = clip_model or env.get("CLIPDEMO_CLIP_MODEL")
    dtype = dtype or env.get("CLIPDEMO_DTYPE") or "auto"
    if dtype not in DTYPES:
        raise InputError(f"Unknown dtype '{dtype}'. Choose one of: {', '.join(DTYPES)}.")
    return Settings(
        sd_model=sd or chosen.sd_model,
        clip_model=clip or chosen.clip_model,
        sd_model_explicit=bool(sd),
        clip_model_explicit=bool(clip),
        dtype=dtype,
        device=device or env.get("CLIPDEMO_DEVICE") or "auto",
        preset=preset_name,
        preset_explicit=bool(named_preset),
        decoder=decoder or env.get("CLIPDEMO_DECODER") or "auto",
        compile=compile if compile else env.get("CLIPDEMO_COMPILE", "").lower() in TRUE_WORDS,
        cpu_offload=cpu_offload if cpu_offload else env.get("CLIPDEMO_CPU_OFFLOAD", "").lower() in TRUE_WORDS,
        defaults=chosen.defaults,
    )
