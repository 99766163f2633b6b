from pathlib import Path

import pytest
import torch

from clipdemo.config import DEFAULT_CLIP_MODEL, DEFAULT_SD_MODEL, PRESETS, resolve_settings
from clipdemo.errors import InputError
from clipdemo.loading import pick_dtype


def test_defaults_are_real_hub_ids():
    s = resolve_settings(env={})
    assert (s.sd_model, s.clip_model) == (DEFAULT_SD_MODEL, DEFAULT_CLIP_MODEL)
    assert not s.explicit("sd_model") and not s.explicit("clip_model")
    assert (s.defaults.steps, s.defaults.guidance, s.defaults.width, s.defaults.height) == (1, 0.0, 512, 512)


def test_flag_beats_environment_and_marks_model_explicit():
    env = {"CLIPDEMO_CLIP_MODEL": "env/clip", "CLIPDEMO_SD_MODEL": "env/sd", "CLIPDEMO_DTYPE": "bf16"}
    s = resolve_settings(clip_model="flag/clip", env=env)
    assert s.clip_model == "flag/clip" and s.explicit("clip_model")
    assert s.sd_model == "env/sd" and s.explicit("sd_model")
    assert s.dtype == "bf16"


def test_unknown_dtype_and_preset_are_refused():
    with pytest.raises(InputError, match="dtype"):
        resolve_settings(dtype="int4", env={})
    with pytest.raises(InputError, match="preset"):
        resolve_settings(preset="nope", env={})


def test_dtype_follows_hardware_unless_named():
    assert pick_dtype(torch.device("cuda")) == torch.float16
    assert pick_dtype(torch.device("cpu"), "fp32") == torch.float32
    assert pick_dtype(torch.device("cpu"), "bf16") == torch.bfloat16
    flags = {word for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")
             for word in line.split(":", 1)[1].split()}
    native_bf16 = bool(flags & {"avx512_bf16", "amx_bf16"})
    assert pick_dtype(torch.device("cpu")) == (torch.bfloat16 if native_bf16 else torch.float32), sorted(flags)[:5]


def test_bf16_only_on_cpus_that_have_it(monkeypatch):
    import clipdemo.loading as loading

    for native, expected in ((True, torch.bfloat16), (False, torch.float32)):
        monkeypatch.setattr(loading, "cpu_has_native_bf16", lambda native=native: native)
        assert loading.pick_dtype(torch.device("cpu")) == expected


def test_the_demo_examples_are_sentences_of_its_worlds():
    """Offline, the page offers what the demo models can draw: the mission's example first, both languages."""
    import itertools

    from demo_world import animals, world

    examples = PRESETS["demo"].examples
    assert examples[:2] == ("a dog wearing glasses", "一只戴眼镜的狗")
    sentences = {f"a {world.class_name(c, s)}" for c, s in world.CLASSES}
    sentences |= {world.class_name(c, s, "zh") for c, s in world.CLASSES}
    for animal, accessory, colour, acc_colour in itertools.product(animals.ANIMALS, animals.ACCESSORY_STATES,
                                                                    world.COLOURS, world.COLOURS):
        scene = animals.Scene(animal, colour, accessory, None if accessory == animals.NONE else acc_colour)
        for language, named, acc_named, variant in itertools.product(("en", "zh"), (0, 1), (0, 1), range(3)):
            sentences.add(animals.describe(scene, language, bool(named), bool(acc_named), variant))
    assert not [e for e in examples if e not in sentences]
    assert any("\u4e00" <= ch <= "\u9fff" for e in examples for ch in e)
