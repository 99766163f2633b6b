"""Which files a fetch takes from each repository, and the Space's preload list derived from the same rule."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
import yaml

from clipdemo.config import resolve_settings
from clipdemo.downloads import MODEL, PIPELINE, PROCESSOR, select_files
from clipdemo.downloads.fetch import _checksum_ok
from clipdemo.models import ModelRegistry
from clipdemo.moderation import default_checker
from tests.hub_cache import REPO_FILES

ROOT = Path(__file__).resolve().parent.parent


def test_a_pipeline_takes_configs_and_one_copy_of_each_components_weights():
    chosen = select_files(PIPELINE, REPO_FILES["stabilityai/sd-turbo"])
    assert chosen == [
        "model_index.json", "scheduler/scheduler_config.json",
        "text_encoder/config.json", "text_encoder/model.safetensors",
        "tokenizer/merges.txt", "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json",
        "tokenizer/vocab.json",
        "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
        "vae/config.json", "vae/diffusion_pytorch_model.safetensors",
    ]  # never the fp16 copies, the single-file sd_turbo.safetensors, the README or the picture


def test_a_model_without_safetensors_takes_its_pytorch_checkpoint_and_no_other_framework():
    chosen = select_files(MODEL, REPO_FILES["openai/clip-vit-base-patch32"])
    assert "pytorch_model.bin" in chosen
    assert not {"flax_model.msgpack", "tf_model.h5", "README.md", ".gitattributes"} & set(chosen)
    assert set(select_files(MODEL, REPO_FILES["madebyollin/taesd"])) == {"config.json",
                                                                          "diffusion_pytorch_model.safetensors"}


def test_a_processor_repo_gives_no_weights_and_sharded_weights_come_whole():
    chosen = select_files(PROCESSOR, REPO_FILES["laion/CLIP-ViT-H-14-laion2B-s32B-b79K"])
    assert "preprocessor_config.json" in chosen and "tokenizer.json" in chosen
    assert not [c for c in chosen if c.endswith((".bin", ".safetensors"))]
    sharded = ["config.json", "model.safetensors.index.json", "model-00001-of-00002.safetensors",
               "model-00002-of-00002.safetensors", "model.fp16-00001-of-00001.safetensors", "pytorch_model.bin"]
    assert select_files(MODEL, sharded) == ["config.json", "model.safetensors.index.json",
                                            "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]


def front_matter() -> dict:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return yaml.safe_load(text.split("---", 2)[1])


def test_front_matter_preloads_exactly_the_files_the_loader_reads():
    """The Space downloads at build time what a CPU or GPU Space loads (PickScore and Chinese text included)."""
    expected: dict[str, set[str]] = {}
    for device in ("cpu", "cuda"):
        settings = default_checker(resolve_settings(env={}), torch.device(device))
        for need in ModelRegistry(settings, torch.device(device), torch.float32).needs(chinese=True, pickscore=True):
            expected[need.repo_id] = set(select_files(need.kind, REPO_FILES[need.repo_id]))
    listed = {}
    for entry in front_matter()["preload_from_hub"]:
        repo, files = entry.split()
        listed[repo] = set(files.split(","))
    assert listed == expected
    assert set(front_matter()["models"]) <= set(listed)  # every linked model is preloaded


def test_checksums_of_large_and_small_files(tmp_path):
    data = b"clipdemo" * 1000
    path = tmp_path / "f"
    path.write_bytes(data)
    assert _checksum_ok(path, hashlib.sha256(data).hexdigest())  # an LFS file's ETag
    assert _checksum_ok(path, hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest())  # a git blob's
    assert not _checksum_ok(path, hashlib.sha256(data + b"!").hexdigest())


@pytest.mark.parametrize("device, moderation, expected", [
    ("cpu", "auto", ["stabilityai/sd-turbo", "openai/clip-vit-base-patch32", "madebyollin/taesd"]),
    ("cuda", "auto", ["stabilityai/sd-turbo", "openai/clip-vit-base-patch32", "CompVis/stable-diffusion-safety-checker",
                      "yuvalkirstain/PickScore_v1", "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"]),
    ("cuda", "off", ["stabilityai/sd-turbo", "openai/clip-vit-base-patch32", "yuvalkirstain/PickScore_v1",
                     "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"]),
])
def test_an_english_generate_waits_only_for_what_it_loads(device, moderation, expected):
    settings = default_checker(resolve_settings(env={}, moderation=moderation), torch.device(device))
    needs = ModelRegistry(settings, torch.device(device), torch.float32).needs(chinese=False)
    assert [n.repo_id for n in needs] == expected
