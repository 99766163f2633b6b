import threading

import pytest
import torch

from clipdemo.errors import ModelLoadError
from clipdemo.loading import MODELS, ModelSpec, load_clip


def test_model_loads_once_even_when_asked_concurrently(tiny_clip_dir):
    spec = ModelSpec("CLIP", str(tiny_clip_dir), "--clip-model", "CLIPDEMO_CLIP_MODEL")
    results = []
    threads = [threading.Thread(target=lambda: results.append(load_clip(spec, torch.device("cpu"), torch.float32)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all(r[0] is results[0][0] for r in results)


def test_missing_folder_gives_one_clear_message(tmp_path):
    spec = ModelSpec("CLIP", str(tmp_path / "nope"), "--clip-model", "CLIPDEMO_CLIP_MODEL")
    with pytest.raises(ModelLoadError) as info:
        load_clip(spec, torch.device("cpu"), torch.float32)
    message = str(info.value)
    assert "nope" in message and "--clip-model" in message and "HF_HUB_OFFLINE" in message
    assert "\n" not in message


def test_unreachable_hub_id_fails_fast_with_message():
    spec = ModelSpec("CLIP", "someone/not-a-real-clip-model", "--clip-model", "CLIPDEMO_CLIP_MODEL")
    with pytest.raises(ModelLoadError, match="someone/not-a-real-clip-model"):
        load_clip(spec, torch.device("cpu"), torch.float32)


def test_folder_without_safetensors_is_refused(tmp_path, tiny_clip_dir):
    import shutil

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_clip_dir, folder)
    (folder / "model.safetensors").unlink()
    torch.save({}, folder / "pytorch_model.bin")  # a pickle must never be loaded
    spec = ModelSpec("CLIP", str(folder), "--clip-model", "CLIPDEMO_CLIP_MODEL")
    with pytest.raises(ModelLoadError):
        load_clip(spec, torch.device("cpu"), torch.float32)
    MODELS.clear()
