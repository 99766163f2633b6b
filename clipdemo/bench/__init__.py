"""Benchmark generation settings at scale: prompts × seeds × settings, scored, summarised with CIs."""

from .prompts import BUNDLED_SETS, Prompt, load_prompts
from .results import ResultRow, append_row, read_rows
from .run import BenchRun, run_bench
from .settings import BenchSetting, parse_setting
from .report import write_summary
from .stats import PairStats, SettingStats, Summary, summarize

__all__ = ["BUNDLED_SETS", "BenchRun", "BenchSetting", "PairStats", "Prompt", "ResultRow", "SettingStats", "Summary",
           "append_row", "load_prompts", "parse_setting", "read_rows", "run_bench", "summarize", "write_summary"]
