"""Step 1 of a fetch: from a repository's file list, the files its loader reads and nothing more."""

from __future__ import annotations

import re
from typing import Iterable, Sequence

PIPELINE, MODEL, PROCESSOR = "pipeline", "model", "processor"  # what a repository is loaded as


TEXT_SUFFIXES = (".json", ".txt", ".model", ".spm")  # configs, vocabularies, sentencepiece models
COMPONENT_CONFIGS = ("config.json", "scheduler_config.json", "tokenizer_config.json", "preprocessor_config.json")
# Weight names the loaders read, best first: safetensors (both libraries prefer them), then PyTorch checkpoints.
SAFETENSORS_STEMS = ("model", "diffusion_pytorch_model")
PYTORCH_STEMS = ("pytorch_model", "diffusion_pytorch_model")


# -- 1. plan ---------------------------------------------------------------------------------------------------
def weight_files(names: set[str]) -> list[str]:
    """The one set of weight files a from_pretrained reads in a folder (no variants such as .fp16)."""
    for suffix, stems in ((".safetensors", SAFETENSORS_STEMS), (".bin", PYTORCH_STEMS)):
        for stem in stems:
            if stem + suffix in names:
                return [stem + suffix]
            index = f"{stem}{suffix}.index.json"
            if index in names:
                shards = sorted(n for n in names if re.fullmatch(rf"{stem}-\d+-of-\d+\{suffix}", n))
                return [index, *shards]
    return []


def _is_weight_index(name: str) -> bool:
    return name.endswith((".safetensors.index.json", ".bin.index.json"))


def _folder(files: Iterable[str], folder: str, with_weights: bool) -> list[str]:
    prefix = f"{folder}/" if folder else ""
    names = {f[len(prefix):] for f in files if f.startswith(prefix) and "/" not in f[len(prefix):]}
    keep = sorted(n for n in names if n.endswith(TEXT_SUFFIXES) and not _is_weight_index(n))
    if with_weights:
        keep += weight_files(names)
    return [prefix + n for n in keep]


def pipeline_components(files: Iterable[str], model_index: dict | None = None) -> list[str]:
    """The component folders a diffusers pipeline loads: model_index.json's non-empty entries, or else every
    top-level folder holding a config."""
    if model_index is not None:
        return sorted(k for k, v in model_index.items()
                      if not k.startswith("_") and isinstance(v, list) and v and v[0] is not None)
    return sorted({f.split("/")[0] for f in files if f.count("/") == 1 and f.split("/")[1] in COMPONENT_CONFIGS})


def select_files(kind: str, files: Sequence[str], model_index: dict | None = None) -> list[str]:
    """The files of a repository that clipdemo's loader reads, for a repository loaded as `kind`."""
    if kind == PIPELINE:
        chosen = ["model_index.json"] if "model_index.json" in files else []
        for component in pipeline_components(files, model_index):
            chosen += _folder(files, component, with_weights=True)
        return chosen
    return _folder(files, "", with_weights=kind == MODEL)
