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
DEFAULT_ZH_CLIP_MODEL = "OFA-Sys/chinese-clip-vit-base-patch16"
DEFAULT_ZH_SD_MODEL = "IDEA-CCNL/Taiyi-Stable-Diffusion-1B-Chinese-v0.1"
DEFAULT_TRANSLATOR = "Helsinki-NLP/opus-mt-zh-en"
ZH_MODES = ("translate", "native")
DEFAULT_PICK_MODEL = "yuvalkirstain/PickScore_v1"
DEFAULT_PICK_PROCESSOR = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
DEFAULT_SAFETY_MODEL = "CompVis/stable-diffusion-safety-checker"
MODERATION_MODES = ("auto", "on", "off")
RANK_KEYS = ("clip", "pickscore")
PICKSCORE_MODES = ("auto", "on", "off")  # auto: on with a GPU; one click away on the CPU, where ViT-H/14 is costly
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


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
    zh_clip_model: str = DEFAULT_ZH_CLIP_MODEL  # scores text with CJK characters
    zh_sd_model: str = DEFAULT_ZH_SD_MODEL  # generates from Chinese prompts in zh-mode "native"
    zh_mode: str = "translate"
    pick_model: str = DEFAULT_PICK_MODEL  # "none" turns PickScore off
    safety_model: str = DEFAULT_SAFETY_MODEL  # or "concepts": a CLIP zero-shot concept check
    moderation_concepts: tuple[str, ...] = ()  # for "concepts"; empty means the built-in list
    moderation_neutral: tuple[str, ...] = ()


# setting -> (what it is, in errors; its flag; its environment variable)
MODEL_ROLES = {
    "sd_model": ("Stable Diffusion", "--sd-model", "CLIPDEMO_SD_MODEL"),
    "clip_model": ("CLIP", "--clip-model", "CLIPDEMO_CLIP_MODEL"),
    "zh_clip_model": ("Chinese CLIP", "--zh-clip-model", "CLIPDEMO_ZH_CLIP_MODEL"),
    "zh_sd_model": ("Chinese Stable Diffusion", "--zh-sd-model", "CLIPDEMO_ZH_SD_MODEL"),
    "translator": ("translator", "--translator", "CLIPDEMO_TRANSLATOR"),
    "pick_model": ("PickScore", "--pick-model", "CLIPDEMO_PICK_MODEL"),
    "safety_model": ("safety checker", "--safety-model", "CLIPDEMO_SAFETY_MODEL"),
    "decoder": ("tiny decoder (TAESD)", "--decoder", "CLIPDEMO_DECODER"),
}

DEMO_MODERATION_CONCEPT = "purple star"

PRESETS: dict[str, Preset] = {
    "default": Preset(DEFAULT_SD_MODEL, DEFAULT_CLIP_MODEL, description="sd-turbo + OpenAI CLIP ViT-B/32 from the Hub"),
    # Tiny models trained here on the shapes world (scripts/train_demo_models.py): they work offline.
    "demo": Preset(
        str(DEMO_MODELS_DIR / "demo-sd"),
        str(DEMO_MODELS_DIR / "demo-clip"),
        GenerationDefaults(n=4, steps=40, guidance=4.0, width=64, height=64),
        description="tiny bilingual shapes models shipped in assets/models, offline",
        # The demo CLIP and SD were trained on English and Chinese captions: they serve both languages.
        zh_clip_model=str(DEMO_MODELS_DIR / "demo-clip"),
        zh_sd_model=str(DEMO_MODELS_DIR / "demo-sd"),
        zh_mode="native",
        pick_model="none",  # no preference model was trained for the shapes world
        # A demo concept so the moderation flow can be tried offline: purple stars get blurred. The demo
        # CLIP reads many of the demo SD's blobs as crosses, so a "red cross" concept blurred 7 of 8 images
        # of "红色的圆形" and 4 of 8 of "a dog wearing glasses". "Purple star" flagged 31 of 32 images of
        # its own prompt and none of 160 of the page's examples; the demo SD's weak shapes mean other
        # purple shapes are flagged too (31 of 32 purple triangles), as was 1 of 32 red stars.
        safety_model="concepts",
        moderation_concepts=(DEMO_MODERATION_CONCEPT,),
        moderation_neutral=tuple(f"{c} {s}" for c in ("red", "green", "blue", "yellow", "purple", "orange")
                                 for s in ("circle", "square", "triangle", "star", "cross")
                                 if f"{c} {s}" != DEMO_MODERATION_CONCEPT),
    ),
}


@dataclass(frozen=True)
class Settings:
    sd_model: str = DEFAULT_SD_MODEL
    clip_model: str = DEFAULT_CLIP_MODEL
    dtype: str = "auto"
    device: str = "auto"
    preset: str = "default"
    zh_clip_model: str = DEFAULT_ZH_CLIP_MODEL
    zh_sd_model: str = DEFAULT_ZH_SD_MODEL
    zh_mode: str = "translate"  # translate: zh->en then the English pipeline; native: a Chinese SD
    translator: str = DEFAULT_TRANSLATOR
    pick_model: str = DEFAULT_PICK_MODEL
    pick_processor: str = DEFAULT_PICK_PROCESSOR
    pickscore: str = "auto"  # auto | on | off: whether a generate also scores with PickScore by default
    rank_by: str = "clip"
    moderation: str = "auto"  # auto | on | off (operators only; web users cannot change it)
    safety_model: str = DEFAULT_SAFETY_MODEL
    moderation_threshold: float | None = None  # None: the checker's own default
    moderation_concepts: tuple[str, ...] = ()
    moderation_neutral: tuple[str, ...] = ()
    compare_models: tuple[str, ...] = ()  # extra pipelines the Compare tab may choose (--compare-models)
    decoder: str = "auto"  # auto | taesd | full | PATH to an AutoencoderTiny folder
    compile: bool = False  # torch.compile the UNet (opt-in: slow first call)
    cpu_offload: bool = False  # enable_model_cpu_offload, for small GPUs
    fast_conv: bool = True  # Winograd/im2col convolutions for fp32 (im2col for bf16) on the CPU (clipdemo.speedups.fastconv)
    fast_attention: bool = True  # blocked bf16 attention on the CPU (clipdemo.speedups.attention)
    defaults: GenerationDefaults = field(default_factory=GenerationDefaults)
    sources: dict[str, str] = field(default_factory=dict)  # setting -> "flag" or "env"; absent: preset or default

    def explicit(self, name: str) -> bool:
        """True when the user named this setting (flag or environment variable): it is used as given."""
        return name in self.sources

    def spec(self, name: str, model_id: str | None = None):
        """The ModelSpec for a model setting: its value (or model_id), and the flag and variable that set it."""
        from .loading import ModelSpec

        kind, flag, env_var = MODEL_ROLES[name]
        return ModelSpec(kind, model_id or getattr(self, name), flag, env_var)

    @property
    def uses_builtin_defaults(self) -> bool:
        """True when the user chose no model and no preset: only then may the app fall back to the demo."""
        return not any(self.explicit(n) for n in ("sd_model", "clip_model", "preset"))

    def with_preset(self, name: str) -> "Settings":
        """The same settings with another preset's models, keeping any model the user named."""
        preset = get_preset(name)
        return replace(
            self,
            preset=name,
            sd_model=self.sd_model if self.explicit("sd_model") else preset.sd_model,
            clip_model=self.clip_model if self.explicit("clip_model") else preset.clip_model,
            zh_clip_model=self.zh_clip_model if self.explicit("zh_clip_model") else preset.zh_clip_model,
            zh_sd_model=preset.zh_sd_model,
            zh_mode=preset.zh_mode,
            pick_model=self.pick_model if self.explicit("pick_model") else preset.pick_model,
            safety_model=self.safety_model if self.explicit("safety_model") else preset.safety_model,
            moderation_concepts=self.moderation_concepts or preset.moderation_concepts,
            moderation_neutral=self.moderation_neutral or preset.moderation_neutral,
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
    zh_clip_model: str | None = None,
    zh_sd_model: str | None = None,
    zh_mode: str | None = None,
    translator: str | None = None,
    pick_model: str | None = None,
    pickscore: str | None = None,
    rank_by: str | None = None,
    moderation: str | None = None,
    safety_model: str | None = None,
    moderation_threshold: float | None = None,
    compare_models: list[str] | None = None,
    decoder: str | None = None,
    compile: bool | None = None,
    cpu_offload: bool | None = None,
    fast_conv: bool | None = None,
    fast_attention: bool | None = None,
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
    zh_clip = zh_clip_model or env.get("CLIPDEMO_ZH_CLIP_MODEL")
    zh_mode = zh_mode or env.get("CLIPDEMO_ZH_MODE") or chosen.zh_mode
    if zh_mode not in ZH_MODES:
        raise InputError(f"Unknown zh-mode '{zh_mode}'. Choose one of: {', '.join(ZH_MODES)}.")
    pick = pick_model or env.get("CLIPDEMO_PICK_MODEL")
    pickscore = pickscore or env.get("CLIPDEMO_PICKSCORE") or "auto"
    if pickscore not in PICKSCORE_MODES:
        raise InputError(f"Unknown pickscore mode '{pickscore}'. Choose one of: {', '.join(PICKSCORE_MODES)}.")
    rank_by = rank_by or env.get("CLIPDEMO_RANK_BY") or "clip"
    if rank_by not in RANK_KEYS:
        raise InputError(f"Unknown rank-by '{rank_by}'. Choose one of: {', '.join(RANK_KEYS)}.")
    moderation = moderation or env.get("CLIPDEMO_MODERATION") or "auto"
    if moderation not in MODERATION_MODES:
        raise InputError(f"Unknown moderation mode '{moderation}'. Choose one of: {', '.join(MODERATION_MODES)}.")
    safety = safety_model or env.get("CLIPDEMO_SAFETY_MODEL")
    if moderation_threshold is None and env.get("CLIPDEMO_MODERATION_THRESHOLD"):
        try:
            moderation_threshold = float(env["CLIPDEMO_MODERATION_THRESHOLD"])
        except ValueError:
            raise InputError("CLIPDEMO_MODERATION_THRESHOLD must be a number.") from None
    concepts = tuple(c.strip() for c in env.get("CLIPDEMO_MODERATION_CONCEPTS", "").split(",") if c.strip())
    compare = compare_models or [m.strip() for m in env.get("CLIPDEMO_COMPARE_MODELS", "").split(",") if m.strip()]
    return Settings(
        compare_models=tuple(compare),
        pick_model=pick or chosen.pick_model,
        pickscore=pickscore,
        rank_by=rank_by,
        moderation=moderation,
        safety_model=safety or chosen.safety_model,
        moderation_threshold=moderation_threshold,
        moderation_concepts=concepts or chosen.moderation_concepts,
        moderation_neutral=chosen.moderation_neutral,
        zh_clip_model=zh_clip or chosen.zh_clip_model,
        zh_sd_model=zh_sd_model or env.get("CLIPDEMO_ZH_SD_MODEL") or chosen.zh_sd_model,
        zh_mode=zh_mode,
        translator=translator or env.get("CLIPDEMO_TRANSLATOR") or DEFAULT_TRANSLATOR,
        sd_model=sd or chosen.sd_model,
        clip_model=clip or chosen.clip_model,
        dtype=dtype,
        device=device or env.get("CLIPDEMO_DEVICE") or "auto",
        preset=preset_name,
        decoder=decoder or env.get("CLIPDEMO_DECODER") or "auto",
        compile=compile if compile else env.get("CLIPDEMO_COMPILE", "").lower() in TRUE_WORDS,
        cpu_offload=cpu_offload if cpu_offload else env.get("CLIPDEMO_CPU_OFFLOAD", "").lower() in TRUE_WORDS,
        fast_conv=fast_conv if fast_conv is not None else env.get("CLIPDEMO_FAST_CONV", "1").lower() not in FALSE_WORDS,
        fast_attention=(fast_attention if fast_attention is not None
                        else env.get("CLIPDEMO_FAST_ATTENTION", "1").lower() not in FALSE_WORDS),
        defaults=chosen.defaults,
        sources={name: "named" for name, value in (("sd_model", sd), ("clip_model", clip), ("preset", named_preset),
                                                   ("zh_clip_model", zh_clip), ("pick_model", pick),
                                                   ("safety_model", safety)) if value},
    )
