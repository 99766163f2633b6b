"""Benchmark generation settings at scale: prompts × seeds × settings, scored, summarised with CIs."""

from .results import ResultRow, append_row, read_rows
from .stats import PairStats, SettingStats, Summary, summarize, write_summary

__all__ = ["PairStats", "ResultRow", "SettingStats", "Summary", "append_row", "read_rows", "summarize",
           "write_summary"]
