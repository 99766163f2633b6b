"""Every default model loads offline from a Hub cache laid out like its real repository (tests/hub_cache.py).

Each check runs `tests/hub_probe.py` in a fresh process with HF_HOME at the cache and HF_HUB_OFFLINE=1,
since huggingface_hub reads both when it is imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clipdemo.hub import PYTORCH_CHECKPOINT, SAFETENSORS
from tests.hub_cache import Layout, add_repo
from tests.multilingual_models import (save_tiny_chinese_clip, save_tiny_marian, save_tiny_pickscore,
                                       save_tiny_safety_checker)
from tests.tiny_models import save_tiny_clip, save_tiny_sd, save_tiny_taesd

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Tiny models of each default's architecture family, saved once."""
    base = tmp_path_factory.mktemp("saved")
    pick = save_tiny_pickscore(base / "pick")
    return {
        "stabilityai/sd-turbo": save_tiny_sd(base / "sd"),
        "madebyollin/taesd": save_tiny_taesd(base / "taesd"),
        "openai/clip-vit-base-patch32": save_tiny_clip(base / "clip"),
        "OFA-Sys/chinese-clip-vit-base-patch16": save_tiny_chinese_clip(base / "zh"),
        "yuvalkirstain/PickScore_v1": pick,
        "laion/CLIP-ViT-H-14-laion2B-s32B-b79K": pick,
        "CompVis/stable-diffusion-safety-checker": save_tiny_safety_checker(base / "safety"),
        "Helsinki-NLP/opus-mt-zh-en": save_tiny_marian(base / "marian"),
    }


def build_cache(home: Path, saved: dict, overrides: dict[str, Layout] | None = None) -> Path:
    for repo_id, folder in saved.items():
        add_repo(home, repo_id, folder, (overrides or {}).get(repo_id))
    return home


def probe(hf_home: Path) -> dict:
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    for var in [v for v in env if v.startswith("CLIPDEMO_")]:
        env.pop(var)
    proc = subprocess.run([sys.executable, "-m", "tests.hub_probe"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("PROBE=")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1].split("=", 1)[1])


def check_same_as_library(report: dict) -> None:
    for role, found in report["models"].items():
        assert found["max_weight_diff"] == 0.0, (role, found)
        assert found.get("max_feature_diff", 0.0) < 1e-6, (role, found)


def check_default_generate(report: dict) -> None:
    generated = report["generate"]
    assert not report["studio_notices"], report["studio_notices"]  # no fallback to the demo models
    assert generated["sd_model"] == "stabilityai/sd-turbo"
    assert generated["clip_model"] == "OFA-Sys/chinese-clip-vit-base-patch16"  # the Chinese prompt's scorer
    assert generated["translated_prompt"] and generated["translated_prompt"] != "一只戴眼镜的狗"
    if report["reference_translation"] is not None:  # what transformers itself makes of the cached translator
        assert generated["translated_prompt"] == report["reference_translation"]
    assert all(set(scores) == {"clip", "pickscore"} for scores in generated["scores"]), generated
    assert all(generated["moderated"]), generated  # the safety checker looked at every image
    assert not [n for n in generated["notices"] if "could not be loaded" in n or "unavailable" in n], generated
    assert set(generated["models"]) == {"generator", "decoder", "clip", "pickscore", "safety_checker", "translator"}


def test_every_default_model_loads_offline_from_the_cache_an_online_run_leaves(tmp_path, saved):
    """After one online run: CLIP's and Chinese-CLIP's and the translator's .bin on main, the rest safetensors."""
    report = probe(build_cache(tmp_path / "hf", saved))
    check_same_as_library(report)
    weights = {role: found["weights"] for role, found in report["models"].items()}
    assert weights == {"clip": PYTORCH_CHECKPOINT, "zh_clip": PYTORCH_CHECKPOINT, "pickscore": SAFETENSORS,
                       "safety_checker": SAFETENSORS, "translator": PYTORCH_CHECKPOINT, "decoder": SAFETENSORS,
                       "generator": SAFETENSORS}
    check_default_generate(report)
    assert report["generate"]["models"]["translator"]["weights"] == PYTORCH_CHECKPOINT  # named in the manifest


def test_weights_only_on_the_conversion_revision_load_from_it(tmp_path, saved):
    """The cache `use_safetensors=True` leaves: CLIP's config on main, its weights only on refs/pr/66."""
    conversion_only = Layout(None, pr_safetensors="refs/pr/66")
    report = probe(build_cache(tmp_path / "hf", saved, {"openai/clip-vit-base-patch32": conversion_only,
                                                         "Helsinki-NLP/opus-mt-zh-en": conversion_only}))
    check_same_as_library(report)
    for role in ("clip", "translator"):
        assert report["models"][role]["weights"] == f"{SAFETENSORS} from the Hub's conversion revision refs/pr/66"
    check_default_generate(report)
