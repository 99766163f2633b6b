"""Image files to normalised CLIP embeddings, in batches, with DataLoader workers and accelerate sharding."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from ..errors import InputError
from ..images import load_image
from ..scoring import ClipScorer, _features


class ImageFiles(Dataset):
    """Decodes and preprocesses files in DataLoader workers; an unreadable one yields a stand-in flagged False.

    Raised in a worker, the error would reach the user inside the worker's traceback and end a long run.
    """

    def __init__(self, paths: Sequence[Path], names: Sequence[str], processor: Any) -> None:
        self.paths, self.names, self.processor = list(paths), list(names), processor

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        readable = True
        try:
            image = load_image(self.paths[i], name=self.names[i])
        except InputError:
            image, readable = Image.new("RGB", (8, 8)), False
        return self.processor(images=[image], return_tensors="pt")["pixel_values"][0], i, readable


def embed_image_files(scorer: ClipScorer, paths: Sequence[Path], names: Sequence[str], batch_size: int = 32,
                      num_workers: int = 0, progress: Callable[[int, int], None] | None = None,
                      accelerator: Any = None) -> tuple[torch.Tensor, list[bool]]:
    """(n, dim) float32 normalised embeddings in the order given, and whether each file could be read."""
    if not paths:
        return torch.zeros(0, 0), []
    loader = DataLoader(ImageFiles(paths, names, scorer.processor), batch_size=batch_size,
                        num_workers=num_workers, shuffle=False)
    if accelerator is not None:
        loader = accelerator.prepare_data_loader(loader)
    chunks, seen = [], 0
    with torch.inference_mode():
        for pixels, indices, readable in loader:
            features = _features(scorer.model.get_image_features(pixel_values=pixels.to(scorer.device, scorer.dtype)))
            features = features.float().cpu()
            batch = (features / features.norm(dim=-1, keepdim=True), indices.cpu(), readable.cpu())
            if accelerator is not None:
                batch = accelerator.gather_for_metrics(batch)
            chunks.append(batch)
            seen += len(batch[1])
            if progress is not None:
                progress(min(seen, len(paths)), len(paths))
    features, indices, readable = (torch.cat([c[k] for c in chunks]) for k in range(3))
    order = indices.argsort()  # back to the order given, whatever the process split
    return features[order], readable[order].tolist()
