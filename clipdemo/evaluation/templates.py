"""The prompt templates a class name is read through: one, CIFAR's 18, ImageNet's 80, or Chinese."""

from __future__ import annotations

from pathlib import Path

from ..config import ASSETS_DIR
from ..errors import InputError
from ..text import DEFAULT_TEMPLATE, ZH_DEFAULT_TEMPLATE, check_template, has_cjk

TEMPLATE_SETS = ("single", "cifar", "imagenet", "zh")


def load_templates(choice: str, labels: list[str] | None = None) -> tuple[str, list[str]]:
    """(name, templates) for 'single', 'cifar' (18), 'imagenet' (80), 'zh', a FILE, or one template.

    'single' picks the template in the labels' language: Chinese labels get ZH_DEFAULT_TEMPLATE.
    """
    if choice == "single":
        chinese = bool(labels) and sum(has_cjk(label) for label in labels) * 2 >= len(labels)
        return "single", [ZH_DEFAULT_TEMPLATE if chinese else DEFAULT_TEMPLATE]
    if choice in TEMPLATE_SETS[1:]:  # the files in assets/templates
        path = ASSETS_DIR / "templates" / f"{choice}.txt"
    elif Path(choice).is_file():
        path = Path(choice)
    elif "{}" in choice:
        return choice, [check_template(choice)]
    else:
        raise InputError(f"Unknown templates '{choice}': use single, cifar, imagenet, zh, a file, or a text with {{}}.")
    templates = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not templates:
        raise InputError(f"{path.name} holds no templates.")
    return (choice if choice in TEMPLATE_SETS else path.name), [check_template(t) for t in templates]
