"""A benchmark setting: a name and the generation parameters it changes, parsed from "NAME: key=value, ...".

Unset keys take the server's defaults; `resolved` fills them in, so a run records exactly what generated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

from ..config import Settings
from ..errors import InputError
from ..generation import GenerationRequest
from ..models.pipeline import SCHEDULERS, generation_models
from ..text import display_name

KEYS = ("model", "steps", "guidance", "scheduler", "negative", "width", "height")
NAME = re.compile(r"[\w-][\w.-]{0,63}")  # it names a folder of PNGs: no slashes, no leading dot
SPLIT = re.compile(r",\s*(?=[A-Za-z_]\w*\s*=)")  # commas that start the next key: a negative may hold commas


@dataclass(frozen=True)
class BenchSetting:
    name: str
    params: dict[str, Any] = field(default_factory=dict)  # only the keys given, typed

    def resolved(self, settings: Settings) -> dict[str, Any]:
        """Every key with its value for this run: the given ones, else the server's defaults."""
        d = settings.defaults
        full = {"model": settings.sd_model, "steps": d.steps, "guidance": d.guidance, "scheduler": "default",
                "negative": "", "width": d.width, "height": d.height}
        return {**full, **self.params}

    def recorded(self, settings: Settings) -> dict[str, Any]:
        """What the run's files record: `resolved` with the model by name, never a server path."""
        params = self.resolved(settings)
        return {**params, "model": display_name(params["model"])}

    def request(self, settings: Settings, prompt: str, seed: int) -> GenerationRequest:
        p = self.resolved(settings)
        return GenerationRequest(prompt, negative_prompt=p["negative"], n=1, steps=p["steps"], guidance=p["guidance"],
                                 width=p["width"], height=p["height"], seed=seed)

    @property
    def sd_model(self) -> str | None:
        """The model to pass on, or None to let the server route (a Chinese prompt to its Chinese pipeline)."""
        return self.params.get("model")

    def check(self, settings: Settings) -> "BenchSetting":
        """InputError when this setting cannot run on these settings (a model not configured, a bad size)."""
        allowed = generation_models(settings)
        if self.sd_model is not None and self.sd_model not in allowed:
            raise InputError(f"Setting '{self.name}': model '{self.sd_model}' is not one of this server's models: "
                             f"{', '.join(allowed)}.")
        try:
            self.request(settings, "a check", 0).validated()
        except InputError as exc:
            raise InputError(f"Setting '{self.name}': {exc}") from None
        return self


def parse_setting(text: str) -> BenchSetting:
    """"NAME: key=value, key=value" -> BenchSetting; one InputError naming the problem."""
    name, colon, rest = (text or "").partition(":")
    name = name.strip()
    if not colon or not NAME.fullmatch(name):
        raise InputError(f"Setting '{text}': write it as 'NAME: key=value, ...' with a NAME of letters, digits, "
                         f"'_', '-' or '.'.")
    params: dict[str, Any] = {}
    for part in (p for p in SPLIT.split(rest.strip()) if p.strip()):
        key, eq, value = part.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not eq or key not in KEYS:
            raise InputError(f"Setting '{name}': unknown key '{key or part.strip()}'. Known keys: {', '.join(KEYS)}.")
        if key in params:
            raise InputError(f"Setting '{name}': '{key}' is given twice.")
        params[key] = typed(name, key, value)
    return BenchSetting(name, params)


def typed(name: str, key: str, value: str) -> Any:
    if key in ("steps", "width", "height"):
        if not re.fullmatch(r"\d+", value):
            raise InputError(f"Setting '{name}': {key} must be a whole number (got '{value}').")
        return int(value)
    if key == "guidance":
        try:
            return float(value)
        except ValueError:
            raise InputError(f"Setting '{name}': guidance must be a number (got '{value}').") from None
    if key == "scheduler" and value not in SCHEDULERS:
        raise InputError(f"Setting '{name}': unknown scheduler '{value}'. Choose one of: {', '.join(SCHEDULERS)}.")
    if key == "model" and not value:
        raise InputError(f"Setting '{name}': model is empty.")
    return value


def parse_settings(texts: Sequence[str | BenchSetting]) -> list[BenchSetting]:
    """Several settings; at least one, names unique."""
    settings = [t if isinstance(t, BenchSetting) else parse_setting(t) for t in texts]
    if not settings:
        raise InputError("Give at least one setting, e.g. --setting \"a: steps=4\".")
    names = [s.name for s in settings]
    twice = next((n for n in names if names.count(n) > 1), None)
    if twice:
        raise InputError(f"Setting name '{twice}' is used twice: each setting needs its own name.")
    return settings


def with_model_paths(settings: Settings, bench: Sequence[BenchSetting]) -> Settings:
    """The CLI may name a model folder: it joins this run's compare_models, as if configured."""
    from pathlib import Path

    extra = [s.sd_model for s in bench if s.sd_model and s.sd_model not in generation_models(settings)
             and Path(s.sd_model).expanduser().is_dir()]
    return replace(settings, compare_models=tuple(settings.compare_models) + tuple(dict.fromkeys(extra)))
