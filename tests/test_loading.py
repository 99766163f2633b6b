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


def test_folder_with_a_pytorch_checkpoint_loads_through_the_weights_only_loader(tmp_path, tiny_clip_dir):
    import shutil

    from safetensors.torch import load_file

    from clipdemo.hub import PYTORCH_CHECKPOINT

    folder = tmp_path / "bin-only"
    shutil.copytree(tiny_clip_dir, folder)
    weights = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    torch.save(weights, folder / "pytorch_model.bin")  # what older uploads hold
    spec = ModelSpec("CLIP", str(folder), "--clip-model", "CLIPDEMO_CLIP_MODEL")
    model, _ = load_clip(spec, torch.device("cpu"), torch.float32)
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in weights.items() if k in loaded)
    assert MODELS.weights[str(folder)] == PYTORCH_CHECKPOINT
    MODELS.clear()


class RunsCode:
    """A pickle that calls a function when unpickled: what a malicious checkpoint does."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_checkpoint_that_would_run_code_is_refused_and_never_runs(tmp_path, tiny_clip_dir):
    import shutil

    folder = tmp_path / "checkpoint"
    shutil.copytree(tiny_clip_dir, folder)
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "code-ran"
    torch.save({"weights": RunsCode(marker)}, folder / "pytorch_model.bin")
    spec = ModelSpec("CLIP", str(folder), "--clip-model", "CLIPDEMO_CLIP_MODEL")
    with pytest.raises(ModelLoadError, match="Weights only load failed") as info:
        load_clip(spec, torch.device("cpu"), torch.float32)
    assert "\n" not in str(info.value)
    assert not marker.exists()
    MODELS.clear()
