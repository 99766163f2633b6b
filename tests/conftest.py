import os

# Nothing in the tests may reach the network.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
for _var in ("CLIPDEMO_SD_MODEL", "CLIPDEMO_CLIP_MODEL", "CLIPDEMO_PRESET", "CLIPDEMO_DTYPE"):
    os.environ.pop(_var, None)

import pytest  # noqa: E402

# diffusers' log handler keeps the stderr it first sees: bind it now, not to one test's capsys stream (closed after it).
from diffusers.utils import logging as _diffusers_logging  # noqa: E402

_diffusers_logging.get_logger("diffusers")

# Suites by file, so `pytest tests -m "not browser and not load"` runs the quicker part.
MARKS = {"test_browser": "browser", "test_load": "load", "test_ui_server": "integration", "test_space": "integration",
         "test_hub_cache": "integration", "test_cli": "integration", "test_reliability": "integration",
         "test_security": "integration", "test_first_start": "integration", "test_local_hub": "integration",
         "test_queue": "integration", "test_mcp": "integration", "test_storage": "integration",
         "test_ui_cache": "integration"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        mark = MARKS.get(item.path.stem)
        if mark:
            item.add_marker(getattr(pytest.mark, mark))


# CI sets this: a test skipped for a missing dependency (Chromium, a CJK font, NNPACK, ...) fails the run.
STRICT = os.environ.get("CLIPDEMO_TESTS_STRICT", "").lower() in ("1", "true", "yes", "on")


def _skip_reason(report) -> str:
    return report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Outside CI a missing dependency skips; one line at the end says what did not run and why."""
    skipped = terminalreporter.stats.get("skipped", [])
    if skipped and not STRICT:
        by_reason: dict[str, set[str]] = {}
        for report in skipped:
            where = (report.nodeid or report.location[0]).split("::")[0]
            by_reason.setdefault(_skip_reason(report).removeprefix("Skipped: "), set()).add(where)
        parts = [f"{', '.join(sorted(files))} ({reason})" for reason, files in sorted(by_reason.items())]
        terminalreporter.write_line(f"NOT RUN: {len(skipped)} tests skipped: " + "; ".join(parts), yellow=True)


def pytest_sessionfinish(session, exitstatus):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if STRICT and skipped:
        reporter.write_sep("=", "skipped tests fail on CI: install what they need", red=True)
        for report in skipped:
            reason = _skip_reason(report)
            where = report.nodeid or (report.location[0] if getattr(report, "location", None) else "collection")
            reporter.write_line(f"MISSING TEST DEPENDENCY ({where}): {reason}", red=True, bold=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

from tests.tiny_models import save_tiny_clip, save_tiny_sd  # noqa: E402


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory):
    return save_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="session")
def tiny_sd_dir(tmp_path_factory):
    return save_tiny_sd(tmp_path_factory.mktemp("tiny-sd"))


@pytest.fixture(scope="session")
def studio(tiny_clip_dir, tiny_sd_dir):
    from clipdemo import Studio, resolve_settings

    return Studio(resolve_settings(sd_model=str(tiny_sd_dir), clip_model=str(tiny_clip_dir), dtype="fp32"))


@pytest.fixture(scope="session")
def tiny_server(tiny_sd_dir, tiny_clip_dir):
    """The app over the tiny models, shared by the gradio_client tests."""
    from clipdemo import Studio, resolve_settings
    from clipdemo.ui import app
    from tests.servers import launch_local

    studio = Studio(resolve_settings(sd_model=str(tiny_sd_dir), clip_model=str(tiny_clip_dir), dtype="fp32"))
    demo = app.queue(app.build_app(studio), studio)  # the server's own queue
    yield launch_local(demo)
    demo.close()


@pytest.fixture(scope="session")
def client(tiny_server):
    """A gradio_client session on the tiny-model app."""
    from gradio_client import Client

    return Client(tiny_server, verbose=False)
