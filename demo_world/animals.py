"""The animals world: a coloured animal with no accessory or one in a colour of its own.

Five animals (dog, cat, bird, fish, rabbit) are drawn as simple figures at a random size and place, facing
left or right, each in one of six colours; an accessory (glasses, hat, bow tie,
scarf) sits where it belongs on the figure, in another colour. Backgrounds are light, plain or with a soft
gradient or texture, in varied tints. Captions in English and Chinese name the animal and the accessory and
name each colour about half of the time ("a dog wearing glasses", "a cat in a red hat", "一只戴眼镜的狗",
"戴着红帽子的猫"). A caption that names no accessory describes an animal without one. Deterministic from a seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from .world import COLOURS

# name -> (Chinese name, Chinese measure word)
ANIMALS: dict[str, tuple[str, str]] = {
    "dog": ("狗", "只"),
    "cat": ("猫", "只"),
    "bird": ("鸟", "只"),
    "fish": ("鱼", "条"),
    "rabbit": ("兔子", "只"),
}
# name -> (English phrase after "wearing", Chinese verb, Chinese noun)
ACCESSORIES: dict[str, tuple[str, str, str]] = {
    "glasses": ("glasses", "戴", "眼镜"),
    "hat": ("a hat", "戴", "帽子"),
    "bow tie": ("a bow tie", "系", "领结"),
    "scarf": ("a scarf", "戴", "围巾"),
}
NONE = "none"
ACCESSORY_STATES = [NONE, *ACCESSORIES]
ZH_COLOURS = {"red": "红", "green": "绿", "blue": "蓝", "yellow": "黄", "purple": "紫", "orange": "橙"}
# The classes of the zero-shot gate: animal x accessory state (25)
CLASSES: list[tuple[str, str]] = [(a, s) for a in ANIMALS for s in ACCESSORY_STATES]
SCALE = (0.62, 1.06)  # figure size as a fraction of the image: the smallest glasses span about 10 pixels


@dataclass
class Scene:
    """What an image shows; the renderer draws it and the captions describe it."""

    animal: str
    colour: str
    accessory: str = NONE
    accessory_colour: str | None = None

    @property
    def label(self) -> int:
        return CLASSES.index((self.animal, self.accessory))


@dataclass
class Caption:
    """A caption and what it asserts: the animal and accessory always, each colour only when named."""

    text: str
    animal: str
    accessory: str
    colour: str | None
    accessory_colour: str | None

    def fits(self, scene: Scene) -> bool:
        return (self.animal == scene.animal and self.accessory == scene.accessory
                and self.colour in (None, scene.colour)
                and self.accessory_colour in (None, scene.accessory_colour))


@dataclass
class Sample:
    image: Image.Image
    scene: Scene
    caption_en: Caption
    caption_zh: Caption


def class_name(animal: str, accessory: str, language: str = "en") -> str:
    """The zero-shot label of a class: 'a dog wearing glasses', '一只戴眼镜的狗', 'a cat', '一只猫'."""
    return describe(Scene(animal, "red", accessory, "red"), language, False, False)


def describe(scene: Scene, language: str, name_colour: bool, name_accessory_colour: bool,
             variant: int = 0) -> str:
    """One caption of `scene`; `variant` picks the wording."""
    animal, acc = scene.animal, scene.accessory
    if language == "zh":
        noun, measure = ANIMALS[animal]
        colour = ZH_COLOURS[scene.colour] + "色的" if name_colour else ""
        if acc == NONE:
            return [f"一{measure}{colour}{noun}", f"{colour}{noun}", f"一张{colour}{noun}的图"][variant % 3]
        verb, thing = ACCESSORIES[acc][1:]
        acc_colour = ZH_COLOURS[scene.accessory_colour] if name_accessory_colour else ""
        return [f"一{measure}{verb}{acc_colour}{thing}的{colour}{noun}", f"{verb}着{acc_colour}{thing}的{colour}{noun}",
                f"一{measure}{colour}{noun}{verb}着{acc_colour}{thing}"][variant % 3]
    colour = f"{scene.colour} " if name_colour else ""
    if acc == NONE:
        return [f"a {colour}{animal}", f"a picture of a {colour}{animal}", f"a {colour}{animal} on its own"][variant % 3]
    acc_colour = f"{scene.accessory_colour} " if name_accessory_colour else ""
    phrase = ACCESSORIES[acc][0]
    if phrase.startswith("a "):
        thing = f"a {acc_colour}{phrase[2:]}"
    else:
        thing = f"{acc_colour}{phrase}"
    return [f"a {colour}{animal} wearing {thing}", f"a {colour}{animal} in {thing}",
            f"a {colour}{animal} with {thing}"][variant % 3]


def caption(scene: Scene, language: str, rng: np.random.Generator) -> Caption:
    name_colour = bool(rng.random() < 0.5)
    name_acc_colour = scene.accessory != NONE and bool(rng.random() < 0.5)
    text = describe(scene, language, name_colour, name_acc_colour, int(rng.integers(3)))
    return Caption(text, scene.animal, scene.accessory, scene.colour if name_colour else None,
                   scene.accessory_colour if name_acc_colour else None)


def random_scene(rng: np.random.Generator, animal: str | None = None, accessory: str | None = None) -> Scene:
    animal = animal or str(rng.choice(list(ANIMALS)))
    accessory = accessory or str(rng.choice(ACCESSORY_STATES))
    colours = list(COLOURS)
    colour = str(rng.choice(colours))
    acc_colour = None if accessory == NONE else str(rng.choice([c for c in colours if c != colour]))
    return Scene(animal, colour, accessory, acc_colour)


# -- drawing ------------------------------------------------------------------------------------------------------
def _rgb(name: str, rng: np.random.Generator, shade: float = 1.0) -> tuple[int, int, int]:
    base = np.array(COLOURS[name][0], dtype=np.float64) * shade + rng.integers(-14, 15, 3)
    return tuple(int(v) for v in np.clip(base, 0, 255))


def _background(size: int, rng: np.random.Generator) -> np.ndarray:
    tint = np.array([rng.uniform(222, 250) for _ in range(3)])  # light, a little tinted
    image = np.broadcast_to(tint, (size, size, 3)).copy()
    style = rng.integers(3)
    if style == 1:  # a soft vertical gradient
        image += np.linspace(-10, 10, size)[:, None, None] * rng.choice([-1, 1])
    elif style == 2:  # light texture: smoothed noise
        noise = rng.normal(0, 6, (size // 8, size // 8)).astype(np.float32)
        image += np.array(Image.fromarray(noise).resize((size, size), Image.BICUBIC))[..., None]
    return np.clip(image, 0, 255)


def _ellipse(draw: ImageDraw.ImageDraw, cx: float, cy: float, rx: float, ry: float, fill) -> None:
    draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=fill)


def _eyes(scene: Scene, cx: float, cy: float, s: float) -> tuple[tuple[float, float], tuple[float, float], float]:
    """Where the two eyes are (glasses sit on them) and their spacing radius, per animal."""
    if scene.animal == "fish":
        return (cx + 0.10 * s, cy - 0.05 * s), (cx + 0.30 * s, cy - 0.05 * s), 0.085 * s
    return (cx - 0.12 * s, cy - 0.04 * s), (cx + 0.12 * s, cy - 0.04 * s), 0.085 * s


def _animal(draw: ImageDraw.ImageDraw, scene: Scene, cx: float, cy: float, s: float, rng) -> float:
    """Draw the figure centred at (cx, cy) with scale s; returns the y of its chin (accessories go there)."""
    body, dark = _rgb(scene.colour, rng), _rgb(scene.colour, rng, 0.7)
    black = (30, 30, 30)
    if scene.animal == "fish":
        draw.polygon([(cx - 0.30 * s, cy), (cx - 0.52 * s, cy - 0.22 * s), (cx - 0.52 * s, cy + 0.22 * s)], fill=dark)
        _ellipse(draw, cx + 0.05 * s, cy, 0.38 * s, 0.24 * s, body)
        draw.polygon([(cx, cy - 0.2 * s), (cx + 0.12 * s, cy - 0.36 * s), (cx + 0.2 * s, cy - 0.2 * s)], fill=dark)
        chin = cy + 0.24 * s
    else:
        if scene.animal == "rabbit":
            for side in (-1, 1):
                _ellipse(draw, cx + side * 0.11 * s, cy - 0.42 * s, 0.065 * s, 0.22 * s, dark)
        if scene.animal == "cat":
            for side in (-1, 1):
                draw.polygon([(cx + side * 0.26 * s, cy - 0.34 * s), (cx + side * 0.06 * s, cy - 0.2 * s),
                              (cx + side * 0.26 * s, cy - 0.1 * s)], fill=dark)
        if scene.animal == "dog":
            for side in (-1, 1):
                _ellipse(draw, cx + side * 0.25 * s, cy + 0.02 * s, 0.08 * s, 0.2 * s, dark)
        _ellipse(draw, cx, cy, 0.24 * s, 0.24 * s, body)
        if scene.animal == "bird":
            draw.polygon([(cx - 0.06 * s, cy + 0.06 * s), (cx + 0.06 * s, cy + 0.06 * s), (cx, cy + 0.18 * s)],
                         fill=(60, 60, 60))
            for k in (-1, 0, 1):
                _ellipse(draw, cx + k * 0.05 * s, cy - 0.27 * s, 0.025 * s, 0.06 * s, dark)
        elif scene.animal in ("dog", "cat", "rabbit"):
            _ellipse(draw, cx, cy + 0.1 * s, 0.04 * s, 0.03 * s, black if scene.animal == "dog" else (230, 120, 150))
        chin = cy + 0.24 * s
    left, right, _ = _eyes(scene, cx, cy, s)
    for ex, ey in (left, right):
        _ellipse(draw, ex, ey, 0.03 * s, 0.03 * s, black)
    return chin


def _accessory(draw: ImageDraw.ImageDraw, scene: Scene, cx: float, cy: float, s: float, chin: float, rng) -> None:
    if scene.accessory == NONE:
        return
    fill, dark = _rgb(scene.accessory_colour, rng), _rgb(scene.accessory_colour, rng, 0.6)
    if scene.accessory == "glasses":
        left, right, r = _eyes(scene, cx, cy, s)
        draw.line([(left[0] + r, left[1]), (right[0] - r, right[1])], fill=dark, width=max(2, int(0.03 * s)))
        for ex, ey in (left, right):
            _ellipse(draw, ex, ey, r + 0.02 * s, r + 0.02 * s, dark)
            _ellipse(draw, ex, ey, r, r, fill)
    elif scene.accessory == "hat":
        top = cy - (0.2 if scene.animal == "fish" else 0.22) * s
        hx = cx + (0.08 * s if scene.animal == "fish" else 0)
        draw.rectangle([hx - 0.14 * s, top - 0.28 * s, hx + 0.14 * s, top], fill=fill)
        draw.rectangle([hx - 0.24 * s, top - 0.04 * s, hx + 0.24 * s, top + 0.02 * s], fill=dark)
    elif scene.accessory == "bow tie":
        bx, by = cx + (0.08 * s if scene.animal == "fish" else 0), chin + 0.02 * s
        draw.polygon([(bx, by), (bx - 0.2 * s, by - 0.1 * s), (bx - 0.2 * s, by + 0.1 * s)], fill=fill)
        draw.polygon([(bx, by), (bx + 0.2 * s, by - 0.1 * s), (bx + 0.2 * s, by + 0.1 * s)], fill=fill)
        _ellipse(draw, bx, by, 0.045 * s, 0.045 * s, dark)
    elif scene.accessory == "scarf":
        sx, sy = cx + (0.08 * s if scene.animal == "fish" else 0), chin - 0.02 * s
        draw.rounded_rectangle([sx - 0.28 * s, sy - 0.05 * s, sx + 0.28 * s, sy + 0.07 * s], radius=0.05 * s,
                               fill=fill)
        draw.rectangle([sx + 0.08 * s, sy, sx + 0.18 * s, sy + 0.3 * s], fill=dark)


def render(scene: Scene, rng: np.random.Generator, size: int = 64) -> Image.Image:
    """The scene drawn at 4x and downsampled (smooth edges), at a random size and place, facing either way."""
    big = size * 4
    canvas = Image.fromarray(_background(size, rng).astype(np.uint8)).resize((big, big), Image.NEAREST)
    draw = ImageDraw.Draw(canvas)
    scale = rng.uniform(*SCALE)
    # A smaller figure may stand further from the centre; a hat or scarf reaches about half its size away.
    room_x, room_y = max(0.03, 0.5 - 0.5 * scale), max(0.02, 0.48 - 0.52 * scale)
    s = big * scale
    cx = big * (0.5 + rng.uniform(-room_x, room_x))
    cy = big * (0.53 + rng.uniform(-room_y, room_y))
    chin = _animal(draw, scene, cx, cy, s, rng)
    _accessory(draw, scene, cx, cy, s, chin, rng)
    if rng.random() < 0.5:  # facing the other way (the fish's head and tail swap sides)
        canvas = canvas.transpose(Image.FLIP_LEFT_RIGHT)
    return canvas.resize((size, size), Image.LANCZOS)


def sample(seed: int, n: int, size: int = 64) -> list[Sample]:
    """n samples cycling through the 25 animal x accessory classes, so any n >= 25 is class-balanced."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        animal, accessory = CLASSES[i % len(CLASSES)]
        scene = random_scene(rng, animal, accessory)
        out.append(Sample(render(scene, rng, size), scene, caption(scene, "en", rng), caption(scene, "zh", rng)))
    return out
