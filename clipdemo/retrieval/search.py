"""Search an image index by text or by image: exact cosine over every row, best first.

Exact search is one matrix-vector product over the normalised embeddings, fast enough up to about
10^6 images in memory; an approximate index (faiss) would replace `nearest` beyond that.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch

from ..errors import InputError
from ..images import load_image
from ..scorers import SCORER_CHOICES, scorer_for
from ..scoring import ClipScorer
from .index import ImageIndex, IndexUpdate, build_index, check_same_model, is_index, load_index

if TYPE_CHECKING:
    from ..models import ModelRegistry

MAX_K = 1000


@dataclass(frozen=True)
class Hit:
    file: str  # relative to the indexed folder
    score: float  # cosine similarity of the image and the query
    path: str  # where the image is now


@dataclass
class SearchResult:
    query: str  # the text, or the query image's name
    kind: str  # "text" or "image"
    scorer: str  # the CLIP model that embedded the query (and the index)
    hits: list[Hit]
    n_images: int  # images searched
    notices: list[str] = field(default_factory=list)
    update: IndexUpdate | None = None  # when a folder was indexed on the way

    def as_json(self) -> list[dict]:
        return [{"file": h.file, "score": h.score} for h in self.hits]


def nearest(index: ImageIndex, query: torch.Tensor, k: int) -> list[Hit]:
    """The k rows with the highest cosine to a normalised query vector, best first."""
    # numpy's matrix-vector product and partial sort: twice torch's mv + topk on the CPU here
    scores = index.embeddings.numpy() @ query.float().numpy()
    k = min(k, len(scores))
    top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    top = top[np.argsort(-scores[top], kind="stable")]
    return [Hit(index.files[i].file, float(scores[i]), str(index.path_of(i))) for i in top.tolist()]


def cache_dir(folder: Path, model: str) -> Path:
    """Where a folder searched directly keeps its index: one per folder and model, in the user's cache."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "clipdemo" / "indexes"
    key = hashlib.sha1(f"{folder.resolve()}\n{model}".encode()).hexdigest()[:12]
    return root / f"{folder.resolve().name or 'root'}-{key}"


def query_scorer(models: ModelRegistry, text: str | None, index_model: str | None, choice: str | None
                 ) -> tuple[ClipScorer, list[str]]:
    """Text goes to the scorer for its language; an image to the one the index was built with."""
    if text is not None:
        return scorer_for(models, [text], choice)
    choice = choice or "auto"
    if choice not in SCORER_CHOICES:
        raise InputError(f"Unknown scorer '{choice}'. Choose one of: {', '.join(SCORER_CHOICES)}.")
    s = models.settings
    chinese = choice == "chinese" or choice == "auto" and index_model == s.zh_clip_model != s.clip_model
    return models.scorer("zh_clip_model" if chinese else "clip_model"), []


def search(models: ModelRegistry, target: str | Path, text: str | None = None, image: Any = None, k: int = 10,
           choice: str | None = "auto", progress: Callable[[int, int], None] | None = None,
           files: list[str] | None = None, follow_symlinks: bool = True, cache: Path | None = None,
           num_workers: int = 0) -> SearchResult:
    """The k images of an index (or of a folder, indexed on the fly into a cache) closest to a text or an image."""
    # 1. Exactly one query, and a sensible k.
    text = text.strip() if isinstance(text, str) and text.strip() else None
    if (text is None) == (image is None):
        raise InputError("Give one query: a text (--text) or an image (--image).")
    if not 1 <= int(k) <= MAX_K:
        raise InputError(f"-k must be between 1 and {MAX_K} (got {k}).")
    target = Path(target)
    if not target.exists():
        raise InputError(f"'{target}' does not exist: give an index folder (from `clipdemo index`) or a folder of "
                         "images.")

    # 2. The query's scorer: for an index, the model must be the index's own.
    index = load_index(target) if is_index(target) else None
    scorer, notices = query_scorer(models, text, index.model if index else None, choice)
    update = None
    if index is None:  # a plain folder: index it with the query's model, incrementally, in the cache
        update = build_index(scorer, target, cache or cache_dir(target, scorer.name), files=files,
                             follow_symlinks=follow_symlinks, progress=progress, num_workers=num_workers)
        index, notices = update.index, notices + update.notices
    check_same_model(index, scorer, "this text" if text is not None else "this image")

    # 3. Embed the query and take the nearest rows.
    if text is not None:
        if scorer.is_truncated(text):
            notices.append(f"The query is {scorer.count_tokens(text)} tokens long; CLIP reads only the first "
                           f"{scorer.max_text_tokens}.")
        query, label, kind = scorer.embed_texts([text])[0], text, "text"
    else:
        name = Path(image).name if isinstance(image, (str, Path)) else "image"
        query, label, kind = scorer.embed_images([load_image(image, name=name)])[0], name, "image"
    return SearchResult(label, kind, scorer.name, nearest(index, query, int(k)), len(index), notices, update)
