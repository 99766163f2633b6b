"""The options table: one declaration per setting, from which the flags, the environment and the README derive."""

import re
from pathlib import Path

import pytest

from clipdemo.cli.main import build_parser, settings_from
from clipdemo.config import PRESETS, Settings, resolve_settings
from clipdemo.errors import InputError
from clipdemo.options import BY_NAME, OPTIONS, markdown_table

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_options_table_is_the_generated_one():
    text = README.read_text(encoding="utf-8")
    block = re.search(r"<!-- options table:[^\n]*-->\n(.*?)\n<!-- end of options table -->", text, re.S)
    assert block, "README.md lost its options table markers"
    assert block.group(1) == markdown_table(), "README's options table is stale: paste `python -m clipdemo.options`"


def test_every_option_is_a_settings_field_with_its_declared_default():
    fields = Settings.__dataclass_fields__
    for option in OPTIONS:
        assert option.name in fields, option.name
        assert fields[option.name].default == option.default, option.name
    assert BY_NAME["preset"].choices == tuple(PRESETS)


def test_every_option_has_its_flag_on_serve_and_the_flag_reaches_settings():
    parser = build_parser()
    serve_help = parser._subparsers._group_actions[0].choices["serve"].format_help()
    for option in OPTIONS:
        assert option.flag in serve_help and option.env in serve_help, option.name
    args = parser.parse_args(["serve", "--clip-model", "a/clip", "--no-fast-conv", "--compile", "on",
                              "--moderation-threshold", "0.3", "--compare-models", "x/one", "x/two",
                              "--pickscore", "on"])
    s = settings_from(args)
    assert (s.clip_model, s.fast_conv, s.compile, s.moderation_threshold, s.compare_models, s.pickscore) == (
        "a/clip", False, "on", 0.3, ("x/one", "x/two"), "on")
    assert s.sources["clip_model"] == "flag" and s.explicit("clip_model")
    assert s.sources["sd_model"] == "preset" and not s.explicit("sd_model")


def test_classify_takes_only_the_settings_it_uses():
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["classify", "x.png", "--labels", "a", "--sd-model", "m"])
    assert parser.parse_args(["classify", "x.png", "--labels", "a", "--clip-model", "m"]).clip_model == "m"


def test_environment_values_are_parsed_by_kind_and_recorded_as_env():
    env = {"CLIPDEMO_COMPILE": "on", "CLIPDEMO_FAST_ATTENTION": "off", "CLIPDEMO_MODERATION_THRESHOLD": "0.25",
           "CLIPDEMO_MODERATION_CONCEPTS": "red cross, , purple star", "CLIPDEMO_PICK_MODEL": "none"}
    s = resolve_settings(env=env)
    assert (s.compile, s.fast_attention, s.moderation_threshold) == ("on", False, 0.25)
    assert s.moderation_concepts == ("red cross", "purple star")
    assert s.pick_model == "none" and s.sources["pick_model"] == "env" and s.explicit("pick_model")
    assert s.sources["translator"] == "default" and not s.explicit("translator")


@pytest.mark.parametrize("env, message", [
    ({"CLIPDEMO_COMPILE": "maybe"}, "Unknown compile 'maybe'. Choose one of: auto, on, off."),
    ({"CLIPDEMO_CHANNELS_LAST": "maybe"}, "CLIPDEMO_CHANNELS_LAST must be one of"),
    ({"CLIPDEMO_MODERATION_THRESHOLD": "high"}, "CLIPDEMO_MODERATION_THRESHOLD must be a number"),
    ({"CLIPDEMO_ZH_MODE": "pinyin"}, "Unknown zh-mode 'pinyin'. Choose one of: translate, native."),
    ({"CLIPDEMO_RANK_BY": "likes"}, "Unknown rank-by 'likes'"),
])
def test_bad_environment_values_get_a_clear_message(env, message):
    with pytest.raises(InputError, match=re.escape(message)):
        resolve_settings(env=env)


def test_a_preset_fills_only_what_the_user_left_unset():
    s = resolve_settings(preset="demo", env={"CLIPDEMO_CLIP_MODEL": "mine/clip", "CLIPDEMO_ZH_MODE": "translate"})
    demo = PRESETS["demo"]
    assert (s.sd_model, s.pick_model, s.safety_model) == (demo.sd_model, demo.pick_model, demo.safety_model)
    assert (s.clip_model, s.zh_mode) == ("mine/clip", "translate")
    fallback = resolve_settings(env={"CLIPDEMO_ZH_MODE": "translate"}).with_preset("demo")
    assert fallback.zh_mode == "translate" and fallback.sd_model == demo.sd_model
    assert fallback.defaults == demo.defaults and fallback.sources["sd_model"] == "preset"


def test_a_setting_that_is_not_an_option_is_refused():
    with pytest.raises(TypeError, match="clip_modle"):
        resolve_settings(clip_modle="x", env={})
