"""CLIP both ways over image collections: an incremental index, and search by text or by image."""

from .index import ImageIndex, IndexUpdate, build_index, load_index
from .search import Hit, SearchResult, search

__all__ = ["Hit", "ImageIndex", "IndexUpdate", "SearchResult", "build_index", "load_index", "search"]
