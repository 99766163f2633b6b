import numpy as np

from demo_world import world
from clipdemo.text import has_cjk


def test_world_is_deterministic_given_a_seed():
    a, b = world.sample(7, 12), world.sample(7, 12)
    assert [x.image.tobytes() for x in a] == [x.image.tobytes() for x in b]
    assert [x.caption_en for x in a] == [x.caption_en for x in b]
    assert world.sample(8, 1)[0].image.tobytes() != a[0].image.tobytes()


def test_thirty_classes_in_order_with_bilingual_captions():
    samples = world.sample(0, 60)
    assert len(world.CLASSES) == 30
    assert [s.label for s in samples] == list(range(30)) * 2
    for s in samples:
        assert s.colour in s.caption_en and s.shape in s.caption_en
        assert world.COLOURS[s.colour][1] in s.caption_zh and world.SHAPES[s.shape] in s.caption_zh
        assert has_cjk(s.caption_zh) and not has_cjk(s.caption_en)
        assert s.image.size == (64, 64) and s.image.mode == "RGB"


def test_light_background_and_one_coloured_shape():
    for s in world.sample(1, 30):
        pixels = np.asarray(s.image, dtype=np.int32)
        corners = [pixels[0, 0], pixels[0, -1], pixels[-1, 0], pixels[-1, -1]]
        assert sum(c.min() > 180 for c in corners) >= 3  # the shape may touch at most one corner


def test_colour_judge_agrees_with_the_renderer():
    samples = world.sample(3, 300)
    assert sum(world.judge_colour(s.image) == s.colour for s in samples) / len(samples) >= 0.99


def test_colour_judge_says_none_for_a_grey_image():
    from PIL import Image

    assert world.judge_colour(Image.new("RGB", (64, 64), (200, 200, 200))) is None


def test_shape_judge_agrees_with_the_renderer():
    samples = world.sample(3, 300)  # every class, sizes from small to large, any rotation
    assert sum(world.judge_shape(s.image) == s.shape for s in samples) / len(samples) >= 0.99


def test_shape_judge_features_match_the_ideal_polygons():
    """The signatures are worked out from the polygons; large renders must measure close to them."""
    import numpy as np
    from PIL import Image, ImageDraw

    for shape, (solidity, roundness) in world.SHAPE_SIGNATURES.items():
        canvas = Image.new("RGB", (256, 256), (240, 240, 240))
        ImageDraw.Draw(canvas).polygon(world._shape_points(shape, 128, 128, 100, 0.3), fill=(215, 35, 35))
        measured = np.array(world.shape_features(canvas))
        assert np.abs(measured - (solidity, roundness)).max() < 0.03, (shape, measured)


def test_shape_judge_says_none_without_a_foreground_and_names_a_blob_by_its_geometry():
    from PIL import Image, ImageDraw

    assert world.judge_shape(Image.new("RGB", (64, 64), (200, 200, 200))) is None
    blob = Image.new("RGB", (64, 64), (240, 240, 240))
    ImageDraw.Draw(blob).ellipse((12, 12, 52, 52), fill=(40, 165, 60))
    assert world.judge_shape(blob) == "circle"
    bar = Image.new("RGB", (64, 64), (240, 240, 240))
    ImageDraw.Draw(bar).rectangle((4, 28, 60, 36), fill=(40, 165, 60))  # a thin bar is no circle or star
    assert world.judge_shape(bar) not in ("circle", "star")


def test_the_runtime_package_never_imports_the_demo_world():
    import subprocess
    import sys

    code = ("import pkgutil, importlib, sys, clipdemo\n"
            "for m in pkgutil.walk_packages(clipdemo.__path__, 'clipdemo.'):\n"
            "    m.name.endswith('__main__') or importlib.import_module(m.name)\n"
            "print(sorted(n for n in sys.modules if n.split('.')[0] == 'demo_world'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
