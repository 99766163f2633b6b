"""The animals world: deterministic renders, captions that say what is drawn, in both languages."""

import numpy as np

from demo_world import animals


def test_the_same_seed_draws_the_same_images_and_captions():
    a, b = animals.sample(3, 30), animals.sample(3, 30)
    assert [np.asarray(x.image).tobytes() for x in a] == [np.asarray(x.image).tobytes() for x in b]
    assert [(x.caption_en.text, x.caption_zh.text) for x in a] == [(x.caption_en.text, x.caption_zh.text) for x in b]
    assert [np.asarray(x.image).tobytes() for x in animals.sample(4, 30)] != [np.asarray(x.image).tobytes() for x in a]


def test_every_class_and_colour_appears_and_accessories_differ_from_the_animal():
    samples = animals.sample(0, 500)
    assert {(s.scene.animal, s.scene.accessory) for s in samples} == set(animals.CLASSES)
    assert len({s.scene.colour for s in samples}) == 6
    for s in samples:
        assert (s.scene.accessory == animals.NONE) == (s.scene.accessory_colour is None)
        assert s.scene.accessory_colour != s.scene.colour


def test_captions_fit_their_own_scene_and_not_another():
    samples = animals.sample(1, 200)
    for s in samples:
        assert s.caption_en.fits(s.scene) and s.caption_zh.fits(s.scene)
    dog_glasses = animals.Scene("dog", "red", "glasses", "blue")
    plain_dog = animals.Scene("dog", "red")
    assert animals.Caption("a dog wearing glasses", "dog", "glasses", None, None).fits(dog_glasses)
    assert not animals.Caption("a dog wearing glasses", "dog", "glasses", None, None).fits(plain_dog)
    assert not animals.Caption("a dog", "dog", animals.NONE, None, None).fits(dog_glasses)  # names no accessory
    assert not animals.Caption("a dog wearing green glasses", "dog", "glasses", None, "green").fits(dog_glasses)


def test_the_worlds_own_sentences():
    assert animals.class_name("dog", "glasses") == "a dog wearing glasses"
    assert animals.class_name("dog", "glasses", "zh") == "一只戴眼镜的狗"
    assert animals.class_name("fish", "scarf", "zh") == "一条戴围巾的鱼"
    hat = animals.Scene("cat", "green", "hat", "red")
    assert animals.describe(hat, "en", False, True, variant=1) == "a cat in a red hat"
    assert animals.describe(hat, "zh", False, True, variant=1) == "戴着红帽子的猫"
    assert animals.class_name("rabbit", animals.NONE) == "a rabbit"


def test_an_accessory_changes_the_pixels_where_it_belongs():
    """Same seed, same animal: glasses change the eyes' rows, a hat the rows above the head."""
    def draw(accessory):
        scene = animals.Scene("dog", "green", accessory, None if accessory == animals.NONE else "red")
        return np.asarray(animals.render(scene, np.random.default_rng(9)), dtype=np.int16)

    plain = draw(animals.NONE)
    for accessory, rows in (("glasses", slice(26, 36)), ("hat", slice(0, 20))):
        changed = np.abs(draw(accessory) - plain).sum(-1) > 60
        assert changed[rows].sum() > 20, accessory
        assert changed.sum() < 0.5 * changed.size  # the animal is still there
