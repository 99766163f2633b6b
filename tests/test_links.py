"""A result as a link: written with the request, read back field by field, each bad field named and left out."""

from urllib.parse import parse_qsl, urlsplit

import pytest

from clipdemo.generation import MAX_STEPS, PAGE_MAX_SIZE, GenerationRequest
from clipdemo.links import open_link, result_link


def query(link: str) -> dict[str, str]:
    """The link as a browser reads it (urllib, not the product's own reader)."""
    return dict(parse_qsl(urlsplit(link).query, keep_blank_values=True))


def test_a_link_carries_the_whole_request_chinese_intact():
    job = GenerationRequest("一只戴眼镜的狗 & a cat", "blurry, 50% off", 3, 4, 7.5, 320, 256, 11)
    link = result_link("https://huggingface.co/spaces/someone/clipdemo", job, "chinese", "demo")
    assert link.startswith("https://huggingface.co/spaces/someone/clipdemo/?prompt=一只戴眼镜的狗")
    assert query(link) == {"prompt": "一只戴眼镜的狗 & a cat", "negative": "blurry, 50% off", "seed": "11", "n": "3",
                           "steps": "4", "guidance": "7.5", "width": "320", "height": "256", "scorer": "chinese",
                           "preset": "demo", "run": "1"}


def test_opening_a_link_gives_back_the_request():
    job = GenerationRequest("一只戴眼镜的狗", "", 3, 4, 7.5, 320, 256, 11)
    opened = open_link(query(result_link("http://127.0.0.1:7860", job, "auto", "demo")), "demo")
    assert opened.values == {"prompt": "一只戴眼镜的狗", "seed": 11, "n": 3, "steps": 4, "guidance": 7.5,
                             "width": 320, "height": 256, "scorer": "auto"}
    assert opened.run and opened.ignored == [] and opened.notice() == ""


@pytest.mark.parametrize("name, raw", [("steps", str(MAX_STEPS + 1)), ("n", "0"), ("n", "three"),
                                       ("guidance", "nan"), ("guidance", "-1"), ("width", str(PAGE_MAX_SIZE + 8)),
                                       ("height", "100"), ("seed", "-5"), ("scorer", "best"), ("run", "yes"),
                                       ("colour", "red")])
def test_each_bad_parameter_is_named_and_left_out_the_rest_applies(name, raw):
    opened = open_link({"prompt": "a red circle", "steps": "2", name: raw}, "demo")
    assert name not in opened.values
    assert len(opened.ignored) == 1 and opened.ignored[0].startswith(f"{name}={raw} (" if name != "colour"
                                                                      else "colour (")
    assert opened.values["prompt"] == "a red circle"
    assert opened.values.get("steps") == 2 or name == "steps"
    notice = opened.notice()
    assert "\n" not in notice and name in notice and "the rest of it was applied" in notice


def test_a_link_of_another_preset_says_its_images_will_differ():
    opened = open_link({"prompt": "a dog", "preset": "default", "run": "1"}, "demo")
    assert opened.run and "preset=default" in opened.notice() and "images will differ" in opened.notice()
    assert open_link({"prompt": "a dog", "preset": "demo"}, "demo").ignored == []


def test_a_link_runs_only_when_asked_and_only_with_a_prompt():
    assert not open_link({"prompt": "a dog"}, "demo").run
    assert not open_link({"prompt": "a dog", "run": "0"}, "demo").run
    assert not open_link({"prompt": "   ", "run": "1"}, "demo").run
    assert not open_link({"steps": "2", "run": "1"}, "demo").run
    assert open_link({}, "demo").values == {} and open_link({"__theme": "dark"}, "demo").notice() == ""


def test_a_comparison_link_carries_both_settings_and_checks_the_pages_lists():
    from clipdemo.links import compare_link

    values = {"prompt": "a red circle", "seed": 5, "n": 2, "width": 64, "height": 64, "a_model": "demo-sd",
              "a_steps": 20, "a_guidance": 4.0, "a_scheduler": "default", "a_negative": "", "b_model": "demo-sd",
              "b_steps": 10, "b_guidance": 4.5, "b_scheduler": "euler", "b_negative": "blurry", "scorer": "auto"}
    link = compare_link("http://127.0.0.1:7860/", values, "demo")
    params = query(link)
    assert params["tab"] == "compare" and params["b_guidance"] == "4.5" and "a_negative" not in params
    choices = {"model": ("demo-sd",), "scheduler": ("default", "euler")}
    opened = open_link(params, "demo", choices)
    assert opened.tab == "compare" and opened.run and opened.ignored == []
    assert opened.values == {k: v for k, v in values.items() if v != ""}
    bad = open_link({**params, "a_model": "other-sd", "b_scheduler": "ddim", "a_steps": "0"}, "demo", choices)
    assert [i.split("=")[0] for i in bad.ignored] == ["a_model", "a_steps", "b_scheduler"]
    assert bad.values["b_model"] == "demo-sd" and "a_model" not in bad.values
    assert open_link({"tab": "bench", "prompt": "x"}, "demo").tab == "generate"
