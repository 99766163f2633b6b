"""Images to normalised CLIP embeddings, in batches, with DataLoader workers and accelerate sharding.

Used by the index (files) and by evaluation (files or CIFAR arrays).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from .errors import InputError
from .images import ImageLike, load_image
from .scoring import ClipScorer


class Images(Dataset):
    """Decodes and preprocesses images in DataLoader workers; an unreadable one yields a stand-in flagged False.

    Raised in a worker, the error would reach the user inside the worker's traceback, and one bad file
    would end a long run; the caller drops the stand-ins and names the files.
    """

    def __init__(self, sources: Sequence[ImageLike], names: Sequence[str], processor: Any) -> None:
        self.sources, self.names, self.processor = list(sources), list(names), processor

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, i: int):
        readable = True
        try:
            image = load_image(self.sources[i], name=self.names[i])
        except InputError:
            image, readable = Image.new("RGB", (8, 8)), False
        return self.processor(images=[image], return_tensors="pt")["pixel_values"][0], i, readable


def embed_images(scorer: ClipScorer, sources: Sequence[ImageLike], names: Sequence[str], batch_size: int = 32,
                 num_workers: int = 0, progress: Callable[[int, int], None] | None = None,
                 accelerator: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, dim) float32 normalised embeddings in the order given, and whether each image could be read (n,).

    With `accelerator` each process embeds a share of the batches and every process gets all rows back.
    """
    if not sources:
        return torch.zeros(0, 0), torch.zeros(0, dtype=torch.bool)
    loader = DataLoader(Images(sources, names, scorer.processor), batch_size=batch_size,
                        num_workers=num_workers, shuffle=False)
    if accelerator is not None:
        loader = accelerator.prepare_data_loader(loader)
    chunks, seen = [], 0
    with torch.inference_mode():
        for pixels, indices, readable in loader:
            batch = (scorer.embed_pixel_values(pixels), indices.cpu(), readable.cpu())
            if accelerator is not None:
                batch = accelerator.gather_for_metrics(batch)
            chunks.append(batch)
            seen += len(batch[1])
            if progress is not None:
                progress(min(seen, len(sources)), len(sources))
    features, indices, readable = (torch.cat([c[k] for c in chunks]) for k in range(3))
    order = indices.argsort()  # back to the order given, whatever the process split
    return features[order], readable[order]


def check_batch(batch_size: int, count: int, empty: str) -> None:
    if count == 0:
        raise InputError(empty)
    if batch_size < 1:
        raise InputError(f"--batch-size must be at least 1 (got {batch_size}).")
