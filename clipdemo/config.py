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
from .generation.request import GenerationDefaults

PACKAGE_DIR = Path(__file__).resolve().parent
ASSETS_DIR = PACKAGE_DIR.parent / "assets"
TOKENIZER_DIR = ASSETS_DIR / "tokenizer"
DEMO_MODELS_DIR = ASSETS_DIR / "models"

# The defaults and choices live with their options; they are importable from here too.
from .options import (  # noqa: E402,F401
    BY_NAME,
    DEFAULT,
    DEFAULT_CLIP_MODEL,
    DEFAULT_PICK_MODEL,
    DEFAULT_PICK_PROCESSOR,
    DEFAULT_SAFETY_MODEL,
    DEFAULT_SD_MODEL,
    DEFAULT_TAESD,
    DEFAULT_TRANSLATOR,
    DEFAULT_ZH_CLIP_MODEL,
    DEFAULT_ZH_SD_MODEL,
    DTYPES,
    ENV,
    FLAG,
    MODERATION_MODES,
    OPTIONS,
    PICKSCORE_MODES,
    PRESET,
    RANK_KEYS,
    ZH_MODES,
)


def _default(name: str):
    return BY_NAME[name].default


@dataclass(frozen=True)
class Preset:
    """A model set with its generation defaults. Each field named like an option fills it unless the user set it."""

    sd_model: str = _default("sd_model")
    clip_model: str = _default("clip_model")
    defaults: GenerationDefaults = field(default_factory=GenerationDefaults)
    description: str = ""
    zh_clip_model: str = _default("zh_clip_model")
    zh_sd_model: str = _default("zh_sd_model")
    zh_mode: str = _default("zh_mode")
    pick_model: str = _default("pick_model")  # "none" turns PickScore off
    safety_model: str = _default("safety_model")  # or "concepts": a CLIP zero-shot concept check
    moderation_concepts: tuple[str, ...] = _default("moderation_concepts")  # empty: the built-in list
    moderation_neutral: tuple[str, ...] = ()
    phrases: str = _default("phrases")
    examples: tuple[str, ...] = ()  # the Generate tab's example prompts, the seed's example first


DEMO_MODERATION_CONCEPT = "purple star"
DEMO_ANIMALS = ("dog", "cat", "bird", "fish", "rabbit")  # demo_world/animals.py: the demo CLIP knows these
DEMO_ACCESSORIES = ("wearing glasses", "in a hat", "with a bow tie", "in a scarf")

PRESETS: dict[str, Preset] = {
    "default": Preset(description="sd-turbo + OpenAI CLIP ViT-B/32 from the Hub",
                      examples=("a dog wearing glasses", "一只戴眼镜的狗", "a red circle",
                                "a watercolor painting of a lighthouse at dawn")),
    # Tiny models trained here on the shapes and animals worlds (scripts/train_demo_models.py): they work offline.
    "demo": Preset(
        str(DEMO_MODELS_DIR / "demo-sd"),
        str(DEMO_MODELS_DIR / "demo-clip"),
        GenerationDefaults(n=4, steps=40, guidance=2.0, width=64, height=64),
        description="tiny bilingual models of coloured shapes and animals with accessories, in assets/models, "
                    "offline",
        examples=("a dog wearing glasses", "一只戴眼镜的狗", "a cat in a red hat", "戴着红帽子的猫",
                  "a rabbit with a bow tie", "a red circle", "红色的圆形"),
        # The demo CLIP and SD were trained on English and Chinese captions: they serve both languages.
        zh_clip_model=str(DEMO_MODELS_DIR / "demo-clip"),
        zh_sd_model=str(DEMO_MODELS_DIR / "demo-sd"),
        zh_mode="native",
        pick_model="none",  # no preference model was trained for the shapes world
        # A demo concept so the moderation flow can be tried offline: purple stars get blurred. It is
        # one the demo CLIP tells apart from the page's example prompts (a "cross" concept was not).
        safety_model="concepts",
        moderation_concepts=(DEMO_MODERATION_CONCEPT,),
        moderation_neutral=tuple(f"{c} {s}" for c in ("red", "green", "blue", "yellow", "purple", "orange")
                                 for s in ("circle", "square", "triangle", "star", "cross")
                                 if f"{c} {s}" != DEMO_MODERATION_CONCEPT)
        + tuple(f"a {a}" for a in DEMO_ANIMALS) + tuple(f"a {a} {x}" for a in DEMO_ANIMALS for x in DEMO_ACCESSORIES),
        phrases="demo",  # the demo CLIP knows its two worlds' words only
    ),
}


@dataclass(frozen=True)
class Settings:
    """What a run uses; built by resolve_settings. Each field's meaning, flag and default: clipdemo.options."""

    preset: str = _default("preset")
    sd_model: str = _default("sd_model")
    clip_model: str = _default("clip_model")
    zh_clip_model: str = _default("zh_clip_model")
    zh_mode: str = _default("zh_mode")
    zh_sd_model: str = _default("zh_sd_model")
    translator: str = _default("translator")
    pick_model: str = _default("pick_model")
    pick_processor: str = DEFAULT_PICK_PROCESSOR  # PickScore ships no processor of its own
    pickscore: str = _default("pickscore")
    rank_by: str = _default("rank_by")
    moderation: str = _default("moderation")
    safety_model: str = _default("safety_model")
    moderation_threshold: float | None = _default("moderation_threshold")
    moderation_concepts: tuple[str, ...] = _default("moderation_concepts")
    moderation_neutral: tuple[str, ...] = ()  # a preset's counter-concepts for the concept check
    decoder: str = _default("decoder")
    compile: str = _default("compile")
    compile_mode: str = _default("compile_mode")
    channels_last: bool = _default("channels_last")
    cpu_offload: bool = _default("cpu_offload")
    fast_conv: bool = _default("fast_conv")
    fast_attention: bool = _default("fast_attention")
    runs_min_age_hours: float = _default("runs_min_age_hours")
    runs_max_age_hours: float = _default("runs_max_age_hours")
    runs_max_gb: float = _default("runs_max_gb")
    disk_headroom_mb: float = _default("disk_headroom_mb")
    max_wait_minutes: float = _default("max_wait_minutes")
    compare_models: tuple[str, ...] = _default("compare_models")
    phrases: str = _default("phrases")
    dtype: str = _default("dtype")
    device: str = _default("device")
    defaults: GenerationDefaults = field(default_factory=GenerationDefaults)
    sources: dict[str, str] = field(default_factory=dict)  # setting -> flag, env, preset or default

    def explicit(self, name: str) -> bool:
        """True when the user named this setting (flag or environment variable): it is used as given."""
        return self.sources.get(name) in (FLAG, ENV)

    def spec(self, name: str, model_id: str | None = None):
        """The ModelSpec for a model setting: its value (or model_id), and the flag and variable that set it."""
        from .loading import ModelSpec

        option = BY_NAME[name]
        return ModelSpec(option.model, model_id or getattr(self, name), option.flag, option.env)

    @property
    def uses_builtin_defaults(self) -> bool:
        """True when the user chose no model and no preset: only then may the app fall back to the demo."""
        return not any(self.explicit(n) for n in ("sd_model", "clip_model", "preset"))

    def with_preset(self, name: str) -> "Settings":
        """The same settings with another preset's models and defaults, keeping every setting the user named."""
        preset = get_preset(name)
        taken = {o.name: getattr(preset, o.name) for o in OPTIONS if o.preset and not self.explicit(o.name)}
        sources = {**self.sources, **{n: PRESET for n in taken}, "preset": self.sources.get("preset", PRESET)}
        return replace(self, **taken, preset=name, moderation_neutral=preset.moderation_neutral,
                       defaults=preset.defaults, sources=sources)


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise InputError(f"Unknown preset '{name}'. Choose one of: {', '.join(PRESETS)}.")
    return PRESETS[name]


def resolve_settings(env: Mapping[str, str] | None = None, **flags) -> Settings:
    """Settings from flags (keyword arguments named as in clipdemo.options; None: not given), environment
    variables (CLIPDEMO_*) and the chosen preset, in that order, then each option's default."""
    env = os.environ if env is None else env
    unknown = set(flags) - set(BY_NAME)
    if unknown:
        raise TypeError(f"resolve_settings() got unknown settings: {', '.join(sorted(unknown))}")
    values, sources = {}, {}
    for option in OPTIONS:  # preset first: the others may read their value from it
        preset = get_preset(values["preset"]) if "preset" in values else None
        value, source = _choose(option, flags.get(option.name), env, preset)
        values[option.name], sources[option.name] = option.check(value), source
    preset = get_preset(values["preset"])
    return Settings(**values, moderation_neutral=preset.moderation_neutral, defaults=preset.defaults, sources=sources)


def _choose(option, flag_value, env: Mapping[str, str], preset: Preset | None) -> tuple:
    """(value, where it came from) for one option."""
    if flag_value is not None and flag_value != [] and flag_value != ():
        return (tuple(flag_value) if option.kind == "list" else flag_value), FLAG
    raw = env.get(option.env, "")
    if raw.strip():
        return option.parse_env(raw), ENV
    if option.preset and preset is not None:
        return getattr(preset, option.name), PRESET
    return option.default, DEFAULT
