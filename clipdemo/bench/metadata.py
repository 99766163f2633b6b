"""Prompts and seeds from other tools' PNG metadata: AUTOMATIC1111's `parameters` text and ComfyUI's graph."""

from __future__ import annotations

import json
import re
from typing import Any

_A1111_SEED = re.compile(r"(?:^|,\s*)Seed:\s*(-?\d+)")


def a1111_prompt(parameters: str) -> str | None:
    """The positive prompt of an A1111 `parameters` text: the lines before 'Negative prompt:' or 'Steps:'."""
    if not parameters.strip() or parameters.lstrip().startswith("{"):
        return None  # empty, or another tool's JSON (clipdemo mirrors its own JSON into this chunk)
    lines = parameters.strip().splitlines()
    negative = next((i for i, line in enumerate(lines) if line.startswith("Negative prompt:")), None)
    if negative is not None:
        lines = lines[:negative]
    elif lines[-1].startswith("Steps:"):
        lines = lines[:-1]
    prompt = "\n".join(lines).strip()
    return prompt or None


def a1111_seed(parameters: str) -> int | None:
    last = parameters.strip().splitlines()[-1] if parameters.strip() else ""
    match = _A1111_SEED.search(last)
    return int(match.group(1)) if match else None


# -- ComfyUI --------------------------------------------------------------------------------------
_SAMPLER = re.compile(r"^(KSampler|SamplerCustom)")
_OUTPUTS = re.compile(r"^(SaveImage|PreviewImage)")
_TEXT_KEYS = ("text", "text_g", "t5xxl", "clip_l", "string", "value", "String", "Text")
_PASS_THROUGH = ("positive", "conditioning", "conditioning_1", "conditioning_to", "guider")
_SEED_KEYS = ("seed", "noise_seed", "value", "int", "Seed")
_MAX_HOPS = 32  # graphs are small; this bounds a cyclic or hostile one


def comfyui_prompt(graph: dict) -> str | None:
    """The text of the CLIPTextEncode that feeds the final sampler's `positive` input."""
    sampler = _final_sampler(graph)
    if sampler is None:
        return None
    link = graph[sampler].get("inputs", {}).get("positive") or graph[sampler].get("inputs", {}).get("guider")
    node = _follow_conditioning(graph, link)
    if node is None:
        return None
    inputs = graph[node].get("inputs", {})
    for key in _TEXT_KEYS:
        text = _literal(graph, inputs.get(key), str, _TEXT_KEYS)
        if text and text.strip():
            return text.strip()
    return None


def comfyui_seed(graph: dict) -> int | None:
    sampler = _final_sampler(graph)
    if sampler is None:
        return None
    inputs = graph[sampler].get("inputs", {})
    noise = _target(graph, inputs.get("noise"))  # SamplerCustomAdvanced takes its seed from a RandomNoise node
    for value in [inputs.get(k) for k in ("seed", "noise_seed")] + [graph[noise]["inputs"].get("noise_seed")
                                                                     if noise else None]:
        seed = _literal(graph, value, int, _SEED_KEYS)
        if seed is not None:
            return seed
    return None


def _final_sampler(graph: dict) -> str | None:
    """The sampler nearest upstream of an output node (the last pass of a hires fix), else the first one."""
    samplers = sorted((k for k, n in graph.items() if _is_node(n) and _SAMPLER.match(str(n.get("class_type")))),
                      key=lambda k: (len(k), k))
    queue = [k for k, n in graph.items() if _is_node(n) and _OUTPUTS.match(str(n.get("class_type")))]
    seen: set[str] = set()
    while queue and len(seen) < _MAX_HOPS * 8:
        node = queue.pop(0)
        if node in seen or not _is_node(graph.get(node)):
            continue
        seen.add(node)
        if node in samplers:
            return node
        queue += [v[0] for v in graph[node].get("inputs", {}).values() if _is_link(v)]
    return samplers[0] if samplers else None


def _follow_conditioning(graph: dict, link: Any) -> str | None:
    """From a `positive` link to the text encoder, through pass-through nodes (ControlNet, area, guider)."""
    for _ in range(_MAX_HOPS):
        node = _target(graph, link)
        if node is None:
            return None
        inputs = graph[node].get("inputs", {})
        if "CLIPTextEncode" in str(graph[node].get("class_type")) or any(isinstance(inputs.get(k), str) for k in _TEXT_KEYS[:4]):
            return node
        link = next((inputs[k] for k in _PASS_THROUGH if _is_link(inputs.get(k))), None)
    return None


def _literal(graph: dict, value: Any, kind: type, keys: tuple[str, ...]) -> Any:
    """A widget value: the literal itself, or the value of the primitive node it is linked to."""
    for _ in range(_MAX_HOPS):
        if isinstance(value, kind) and not isinstance(value, bool):
            return value
        node = _target(graph, value)
        if node is None:
            return None
        inputs = graph[node].get("inputs", {})
        value = next((inputs[k] for k in keys if k in inputs), None)
    return None


def _target(graph: dict, link: Any) -> str | None:
    return str(link[0]) if _is_link(link) and _is_node(graph.get(str(link[0]))) else None


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], (str, int)) and isinstance(value[1], int)


def _is_node(node: Any) -> bool:
    return isinstance(node, dict) and isinstance(node.get("inputs", {}), dict)


def json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None


def int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None
