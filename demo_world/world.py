"""A tiny procedural world of coloured shapes, used to train and judge the offline demo models.

Every image shows one solid-coloured shape (6 colours x 5 shapes = 30 classes) on a light, plain or
lightly textured background, at a random size, position and rotation. Captions come in English and
Chinese with varied wording. Everything is deterministic given a seed.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

# name -> (RGB, Chinese name)
COLOURS: dict[str, tuple[tuple[int, int, int], str]] = {
    "red": ((215, 35, 35), "红色"),
    "green": ((40, 165, 60), "绿色"),
    "blue": ((35, 75, 215), "蓝色"),
    "yellow": ((235, 205, 25), "黄色"),
    "purple": ((135, 50, 175), "紫色"),
    "orange": ((245, 125, 20), "橙色"),
}
SHAPES: dict[str, str] = {
    "circle": "圆形",
    "square": "正方形",
    "triangle": "三角形",
    "star": "星形",
    "cross": "十字形",
}
CLASSES: list[tuple[str, str]] = [(c, s) for c in COLOURS for s in SHAPES]

EN_TEMPLATES = [
    "a {colour} {shape}",
    "a photo of a {colour} {shape}",
    "a photo of a {size} {colour} {shape}",
    "a {size} {colour} {shape}",
    "a {colour} {shape} on a light background",
    "an image of a {colour} {shape}",
    "{colour} {shape}",
]
ZH_TEMPLATES = [
    "{colour}的{shape}",
    "一个{colour}的{shape}",
    "一个{size}{colour}{shape}",
    "一张{colour}{shape}的照片",
    "{colour}{shape}",
]
SIZE_WORDS = {"small": ("small", "小的"), "large": ("large", "大的")}


def class_name(colour: str, shape: str, language: str = "en") -> str:
    """The plain label of a class: 'red circle' or '红色的圆形'."""
    if language == "zh":
        return f"{COLOURS[colour][1]}的{SHAPES[shape]}"
    return f"{colour} {shape}"


@dataclass
class Sample:
    image: Image.Image
    colour: str
    shape: str
    size: str  # "small" or "large"
    caption_en: str
    caption_zh: str

    @property
    def label(self) -> int:
        return CLASSES.index((self.colour, self.shape))


def _shape_points(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    if shape == "circle":
        corners = [(math.cos(2 * math.pi * k / 64), math.sin(2 * math.pi * k / 64)) for k in range(64)]
    elif shape == "square":
        corners = [(math.cos(math.pi / 4 + k * math.pi / 2), math.sin(math.pi / 4 + k * math.pi / 2)) for k in range(4)]
    elif shape == "triangle":
        corners = [(math.cos(-math.pi / 2 + k * 2 * math.pi / 3), math.sin(-math.pi / 2 + k * 2 * math.pi / 3)) for k in range(3)]
    elif shape == "star":
        corners = []
        for k in range(10):
            radius = 1.0 if k % 2 == 0 else 0.42
            theta = -math.pi / 2 + k * math.pi / 5
            corners.append((radius * math.cos(theta), radius * math.sin(theta)))
    elif shape == "cross":
        w = 0.33
        corners = [(-w, -1), (w, -1), (w, -w), (1, -w), (1, w), (w, w), (w, 1), (-w, 1), (-w, w), (-1, w), (-1, -w), (-w, -w)]
    else:
        raise ValueError(f"unknown shape {shape!r}")
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    return [(cx + r * (x * cos_a - y * sin_a), cy + r * (x * sin_a + y * cos_a)) for x, y in corners]


def render(colour: str, shape: str, rng: np.random.Generator, size: int = 64) -> tuple[Image.Image, str]:
    """One image of the given class, and whether the shape came out 'small' or 'large'."""
    scale = 4  # draw large, then downsample: smooth edges
    big = size * scale
    base = np.array([rng.uniform(225, 250)] * 3) + rng.uniform(-8, 8, 3)
    background = np.broadcast_to(base, (size, size, 3)).copy()
    if rng.random() < 0.5:  # light texture: smoothed noise
        noise = rng.normal(0, 6, (size // 8, size // 8, 1))
        noise = np.array(Image.fromarray(noise[..., 0].astype(np.float32)).resize((size, size), Image.BICUBIC))
        background += noise[..., None]
    canvas = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8)).resize((big, big), Image.NEAREST)
    relative = rng.uniform(0.16, 0.40)  # radius as a share of the image side
    radius = relative * big
    cx = rng.uniform(radius, big - radius)
    cy = rng.uniform(radius, big - radius)
    rgb = np.clip(np.array(COLOURS[colour][0]) + rng.integers(-18, 19, 3), 0, 255)
    ImageDraw.Draw(canvas).polygon(_shape_points(shape, cx, cy, radius, rng.uniform(0, 2 * math.pi)), fill=tuple(int(v) for v in rgb))
    image = canvas.resize((size, size), Image.LANCZOS)
    return image, "small" if relative < 0.27 else "large"


def caption(colour: str, shape: str, size: str, language: str, rng: np.random.Generator) -> str:
    if language == "zh":
        template = ZH_TEMPLATES[rng.integers(len(ZH_TEMPLATES))]
        return template.format(colour=COLOURS[colour][1], shape=SHAPES[shape], size=SIZE_WORDS[size][1])
    template = EN_TEMPLATES[rng.integers(len(EN_TEMPLATES))]
    return template.format(colour=colour, shape=shape, size=SIZE_WORDS[size][0])


def sample(seed: int, n: int, size: int = 64) -> list[Sample]:
    """n samples cycling through the 30 classes in order, so any n >= 30 is class-balanced."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        colour, shape = CLASSES[i % len(CLASSES)]
        image, size_word = render(colour, shape, rng, size)
        out.append(Sample(image, colour, shape, size_word,
                          caption(colour, shape, size_word, "en", rng), caption(colour, shape, size_word, "zh", rng)))
    return out


def _hue_of(rgb: tuple[int, int, int]) -> float:
    return colorsys.rgb_to_hsv(*(v / 255 for v in rgb))[0]


def _foreground(image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """(hue, mask): the foreground is the saturated pixels; the backgrounds are light greys."""
    hsv = np.asarray(image.convert("RGB").convert("HSV"), dtype=np.float64) / 255.0
    hue, sat, val = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    return hue, (sat > 0.35) & (val > 0.25)


def judge_colour(image: Image.Image) -> str | None:
    """The colour name nearest to the dominant foreground hue, or None when no coloured pixels exist.

    Not learned: foreground pixels are the saturated ones, their hues are averaged on the circle and
    compared with the six reference hues.
    """
    hue, mask = _foreground(image)
    if mask.sum() < 0.01 * mask.size:
        return None
    angles = 2 * np.pi * hue[mask]
    mean = math.atan2(np.sin(angles).mean(), np.cos(angles).mean()) / (2 * np.pi) % 1.0

    def distance(name: str) -> float:
        d = abs(mean - _hue_of(COLOURS[name][0]))
        return min(d, 1 - d)

    return min(COLOURS, key=distance)


# Ideal (solidity, roundness) of each shape as drawn by _shape_points: solidity = area / convex hull
# area, roundness = area / area of the circle through the farthest point. Worked out from the polygons.
SHAPE_SIGNATURES: dict[str, tuple[float, float]] = {
    "circle": (1.0, 1.0),
    "square": (1.0, 2 / math.pi),
    "triangle": (1.0, 3 * math.sqrt(3) / (4 * math.pi)),
    "star": (0.519, 5 * 0.42 * math.sin(math.pi / 5) / math.pi),
    "cross": (0.711, (4 * 0.66 - 0.66**2) / (math.pi * (1 + 0.33**2))),
}


def _convex_hull_area(points: np.ndarray) -> float:
    """Area of the convex hull of 2-D points (Andrew's monotone chain, then the shoelace formula)."""
    pts = sorted(set(map(tuple, points.tolist())))
    if len(pts) < 3:
        return 0.0

    def half(seq):
        hull: list[tuple[float, float]] = []
        for p in seq:
            while len(hull) >= 2 and ((hull[-1][0] - hull[-2][0]) * (p[1] - hull[-2][1])
                                      - (hull[-1][1] - hull[-2][1]) * (p[0] - hull[-2][0])) <= 0:
                hull.pop()
            hull.append(p)
        return hull[:-1]

    hull = np.array(half(pts) + half(reversed(pts)))
    x, y = hull[:, 0], hull[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def shape_features(image: Image.Image) -> tuple[float, float] | None:
    """(solidity, roundness) of the foreground, or None when there is too little of it."""
    _, mask = _foreground(image)
    if mask.sum() < 0.01 * mask.size:
        return None
    ys, xs = np.nonzero(mask)
    area = float(len(xs))
    corners = np.concatenate([np.stack([xs + dx, ys + dy], 1) for dx in (0, 1) for dy in (0, 1)])
    hull = _convex_hull_area(corners.astype(np.float64))
    cx, cy = xs.mean() + 0.5, ys.mean() + 0.5
    reach = float(np.sqrt((corners[:, 0] - cx) ** 2 + (corners[:, 1] - cy) ** 2).max())
    return area / hull, area / (math.pi * reach**2)


def judge_shape(image: Image.Image) -> str | None:
    """The shape whose ideal (solidity, roundness) is nearest to the foreground's, or None without one.

    Not learned, like judge_colour: a blob that is no clear shape still gets the nearest name, which is
    usually the wrong one, so the judge measures how often a generator draws the asked-for shape.
    """
    features = shape_features(image)
    if features is None:
        return None
    solidity, roundness = features
    return min(SHAPE_SIGNATURES, key=lambda name: (SHAPE_SIGNATURES[name][0] - solidity) ** 2
               + (SHAPE_SIGNATURES[name][1] - roundness) ** 2)
