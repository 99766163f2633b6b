"""A generate request as a link, and a link read back into the page's inputs.

Each candidate has its own seed, so the request alone brings back the same ranking on any restart or on another
machine with the same models. Reading a link is forgiving: a parameter that is unknown, malformed or beyond the
page's own limits is left out and named; the rest still applies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping
from urllib.parse import quote

from .generation.request import (MAX_CANDIDATES, MAX_GUIDANCE, MAX_SEED, MAX_STEPS, MIN_SIZE, PAGE_MAX_SIZE,
                                 GenerationRequest)
from .scorers import SCORER_CHOICES

MAX_TEXT_CHARS = 2000  # a prompt longer than this is not a prompt
IGNORED_SILENTLY = ("__theme", "view", "logs")  # Gradio's and the Space page's own parameters


@dataclass(frozen=True)
class LinkField:
    name: str  # the query parameter
    parse: Callable[[str], Any]  # raises ValueError with the reason


def _text(raw: str) -> str:
    if len(raw) > MAX_TEXT_CHARS:
        raise ValueError(f"longer than {MAX_TEXT_CHARS} characters")
    return raw


def _integer(low: int, high: int, multiple: int = 1) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError("not a whole number") from None
        if not low <= value <= high:
            raise ValueError(f"not between {low} and {high}")
        if value % multiple:
            raise ValueError(f"not a multiple of {multiple}")
        return value

    return parse


def _guidance(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("not a number") from None
    if not 0.0 <= value <= MAX_GUIDANCE:  # NaN fails here too
        raise ValueError(f"not between 0 and {MAX_GUIDANCE:g}")
    return value


def _choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in choices:
            raise ValueError(f"not one of {', '.join(choices)}")
        return raw

    return parse


def _flag(raw: str) -> bool:
    if raw not in ("0", "1"):
        raise ValueError("not 0 or 1")
    return raw == "1"


# Each tab a link can open: its inputs in link order, with the page's own limits. Compare's models and
# schedulers are the page's own lists, given when the link is read ("model", "scheduler").
GENERATE_FIELDS = (
    LinkField("prompt", _text),
    LinkField("negative", _text),
    LinkField("seed", _integer(0, MAX_SEED)),
    LinkField("n", _integer(1, MAX_CANDIDATES)),
    LinkField("steps", _integer(1, MAX_STEPS)),
    LinkField("guidance", _guidance),
    LinkField("width", _integer(MIN_SIZE, PAGE_MAX_SIZE, 8)),
    LinkField("height", _integer(MIN_SIZE, PAGE_MAX_SIZE, 8)),
    LinkField("scorer", _choice(SCORER_CHOICES)),
)
SIDE_FIELDS = ("model", "steps", "guidance", "scheduler", "negative")  # Compare's A and B, as a_steps, b_steps
COMPARE_FIELDS = (
    *(f for f in GENERATE_FIELDS if f.name in ("prompt", "seed", "n", "width", "height")),
    *(LinkField(f"{side}_{name}", {"model": _text, "steps": _integer(1, MAX_STEPS), "guidance": _guidance,
                                   "scheduler": _text, "negative": _text}[name])
      for side in "ab" for name in SIDE_FIELDS),
    LinkField("scorer", _choice(SCORER_CHOICES)),
)
TABS = {"generate": GENERATE_FIELDS, "compare": COMPARE_FIELDS}
PAGE_FIELDS = tuple(f.name for f in GENERATE_FIELDS)


@dataclass
class OpenedLink:
    """What a link sets in the page, what it left out and why, and whether it runs once opened."""

    tab: str = "generate"
    values: dict[str, Any] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)  # "steps=500 (not between 1 and 100)"
    run: bool = False

    def notice(self) -> str:
        """One line for the page; empty when the whole link applied."""
        if not self.ignored:
            return ""
        return (f"This link's {'; '.join(self.ignored)} {'was' if len(self.ignored) == 1 else 'were'} left out; "
                "the rest of it was applied.")


def _escape(text: str) -> str:
    """Percent-encoding of ASCII punctuation only: Chinese and other letters stay readable in the link."""
    return "".join(c if not c.isascii() or c.isalnum() or c in "-._~" else quote(c, safe="") for c in text)


def _link(root: str, values: dict[str, Any]) -> str:
    query = "&".join(f"{name}={_escape(str(value))}" for name, value in values.items() if value != "")
    return f"{root.rstrip('/')}/?{query}"


def result_link(root: str, request: GenerationRequest, scorer: str, preset: str, run: bool = True) -> str:
    """The page's root with a generate request as query parameters (validated: its seed is a number)."""
    return _link(root, {"prompt": request.prompt, "negative": request.negative_prompt, "seed": request.seed,
                        "n": request.n, "steps": request.steps, "guidance": f"{request.guidance:g}",
                        "width": request.width, "height": request.height, "scorer": scorer, "preset": preset,
                        "run": int(run)})


def compare_link(root: str, values: dict[str, Any], preset: str, run: bool = True) -> str:
    """The page's root with a comparison as query parameters; `values` by COMPARE_FIELDS name."""
    shown = {f.name: (f"{values[f.name]:g}" if isinstance(values[f.name], float) else values[f.name])
             for f in COMPARE_FIELDS if f.name in values}
    return _link(root, {"tab": "compare", **shown, "preset": preset, "run": int(run)})


def open_link(params: Mapping[str, str], preset: str, choices: Mapping[str, tuple[str, ...]] | None = None
              ) -> OpenedLink:
    """Read a link's query parameters, field by field; `preset` is this server's, `choices` the page's lists
    of Compare's models and schedulers."""
    tab = params.get("tab", "generate")
    opened = OpenedLink(tab=tab if tab in TABS else "generate")
    if tab not in TABS:
        opened.ignored.append(f"tab={_shown(tab)} (not one of {', '.join(TABS)})")
    by_name = {f.name: f for f in TABS[opened.tab]}
    for name, raw in params.items():
        if name in by_name:
            kind = name.split("_", 1)[-1] if opened.tab == "compare" else ""
            parse = _choice(tuple(choices[kind])) if choices and kind in choices else by_name[name].parse
            try:
                opened.values[name] = parse(raw)
            except ValueError as reason:
                opened.ignored.append(f"{name}={_shown(raw)} ({reason})")
        elif name == "run":
            try:
                opened.run = _flag(raw)
            except ValueError as reason:
                opened.ignored.append(f"run={_shown(raw)} ({reason})")
        elif name == "preset":
            if raw != preset:
                opened.ignored.append(f"preset={_shown(raw)} (this server runs the {preset} preset, so the "
                                      "images will differ)")
        elif name not in IGNORED_SILENTLY and name != "tab":
            opened.ignored.append(f"{_shown(name)} (not a setting of this page)")
    opened.run = opened.run and bool(opened.values.get("prompt", "").strip())
    return opened


def _shown(raw: str) -> str:
    return raw if len(raw) <= 40 else raw[:37] + "..."
