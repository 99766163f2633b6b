"""The judge of the animals world: a small convolutional classifier that names what an image shows.

It is not the ranking CLIP: its own architecture (four strided convolutions and four linear heads), its own
seed, trained only on renders with their scenes as labels (scripts/train_demo_models.py). The quality gates
and the tests use it to tell whether a generated image shows the asked animal and accessory; nothing in the
product loads it. Its weights are assets/models/judge/model.safetensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from .animals import ACCESSORY_STATES, ANIMALS, NONE
from .world import COLOURS

JUDGE_DIR = Path(__file__).resolve().parent.parent / "assets" / "models" / "judge"
HEADS = {"animal": list(ANIMALS), "accessory": ACCESSORY_STATES, "colour": list(COLOURS),
         "accessory_colour": [NONE, *COLOURS]}


class JudgeNet(nn.Module):
    def __init__(self, width: int = 32) -> None:
        super().__init__()
        layers, channels = [], 3
        for out in (width, 2 * width, 4 * width, 4 * width):
            layers += [nn.Conv2d(channels, out, 3, stride=2, padding=1), nn.BatchNorm2d(out), nn.ReLU()]
            channels = out
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.heads = nn.ModuleDict({name: nn.Linear(channels * 4, len(values)) for name, values in HEADS.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.features(x)
        return {name: head(features) for name, head in self.heads.items()}


def to_batch(images: list[Image.Image]) -> torch.Tensor:
    array = np.stack([np.asarray(im.convert("RGB").resize((64, 64)), dtype=np.float32) for im in images])
    return torch.from_numpy(array / 127.5 - 1.0).permute(0, 3, 1, 2).contiguous()


@dataclass
class Verdict:
    animal: str
    accessory: str
    colour: str
    accessory_colour: str


class Judge:
    """Load once, then call with images."""

    def __init__(self, folder: Path = JUDGE_DIR) -> None:
        from safetensors.torch import load_file

        self.net = JudgeNet()
        self.net.load_state_dict(load_file(str(folder / "model.safetensors")))
        self.net.eval()

    @torch.inference_mode()
    def __call__(self, images: list[Image.Image]) -> list[Verdict]:
        out = {name: logits.argmax(1).tolist() for name, logits in self.net(to_batch(images)).items()}
        return [Verdict(*(HEADS[name][out[name][i]] for name in HEADS)) for i in range(len(images))]


def targets(scenes) -> dict[str, torch.Tensor]:
    """The label of each head for each scene."""
    return {
        "animal": torch.tensor([HEADS["animal"].index(s.animal) for s in scenes]),
        "accessory": torch.tensor([HEADS["accessory"].index(s.accessory) for s in scenes]),
        "colour": torch.tensor([HEADS["colour"].index(s.colour) for s in scenes]),
        "accessory_colour": torch.tensor([HEADS["accessory_colour"].index(s.accessory_colour or NONE)
                                          for s in scenes]),
    }


def train(samples, steps: int, seed: int, log=print) -> JudgeNet:
    """Cross-entropy on every head at once, on renders; a fixed seed of its own."""
    torch.manual_seed(seed)
    net = JudgeNet().train()
    images = to_batch([s.image for s in samples])
    labels = targets([s.scene for s in samples])
    optimizer = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(seed)
    for step in range(steps):
        idx = torch.randint(0, len(images), (64,), generator=generator)
        x = images[idx]
        soft = torch.rand(len(idx), generator=generator) < 0.5  # half softened, as a generator's decoder draws
        blurred = nn.functional.interpolate(nn.functional.avg_pool2d(x, 2), scale_factor=2, mode="bilinear")
        out = net(torch.where(soft[:, None, None, None], blurred, x))
        loss = sum(nn.functional.cross_entropy(out[name], labels[name][idx]) for name in HEADS)
        for group in optimizer.param_groups:
            group["lr"] = 2e-3 * 0.5 * (1 + np.cos(np.pi * step / steps))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % 200 == 0 or step == steps - 1:
            log(f"judge step {step}/{steps} loss {loss.item():.3f}")
    return net.eval()


@torch.inference_mode()
def agreement(net: JudgeNet, samples) -> dict[str, float]:
    """Per head, and for all four at once, the share of renders whose label the judge names."""
    out = {name: logits.argmax(1) for name, logits in net(to_batch([s.image for s in samples])).items()}
    labels = targets([s.scene for s in samples])
    right = {name: (out[name] == labels[name]) for name in HEADS}
    shares = {name: float(ok.float().mean()) for name, ok in right.items()}
    shares["all"] = float(torch.stack(list(right.values())).all(0).float().mean())
    return shares
