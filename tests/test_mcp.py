"""The studio as MCP tools: the official `mcp` client over streamable HTTP against a live server, its answers
compared with gradio_client's for the same requests."""

import asyncio
import base64
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

mcp = pytest.importorskip("mcp", reason="the gradio[mcp] extra is not installed")

TOOLS = ("generate", "classify", "similarity", "search", "describe")
LISTING = Path(__file__).resolve().parent.parent / "test-artifacts" / "mcp-tools.json"  # the tools as a client lists them


@pytest.fixture(scope="module")
def served(tiny_sd_dir, tiny_clip_dir):
    from gradio_client import Client

    from clipdemo import Studio, resolve_settings
    from clipdemo.config import GenerationDefaults
    from clipdemo.ui import app
    from tests.servers import launch_local

    settings = resolve_settings(sd_model=str(tiny_sd_dir), clip_model=str(tiny_clip_dir), dtype="fp32",
                                decoder="full")
    studio = Studio(replace(settings, defaults=GenerationDefaults(width=64, height=64)))
    demo = app.queue(app.build_app(studio), studio)
    url = launch_local(demo, mcp_server=True)
    try:
        yield url, Client(url, verbose=False)
    finally:
        demo.close()


@pytest.fixture
def image_file(tmp_path):
    import numpy as np
    from PIL import Image

    path = tmp_path / "sample.png"
    Image.fromarray(np.random.default_rng(4).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(path)
    return str(path)


def over_mcp(url: str, work):
    """Run `work(session)` in a session of the official client, over streamable HTTP at Gradio's MCP path."""
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async def run():
        async with streamablehttp_client(url + "gradio_api/mcp/") as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                return await work(session)

    return asyncio.run(run())


def texts(result) -> list[str]:
    return [c.text for c in result.content if c.type == "text"]


def test_the_tools_and_every_parameter_are_described(served):
    url, _ = served

    async def work(session):
        return (await session.list_tools()).tools

    tools = {tool.name: tool for tool in over_mcp(url, work)}
    LISTING.parent.mkdir(parents=True, exist_ok=True)
    LISTING.write_text(json.dumps({name: tool.description for name, tool in tools.items()}, indent=2))
    assert set(TOOLS) <= set(tools)
    for name in TOOLS:
        tool = tools[name]
        assert len(tool.description) > 40, (name, tool.description)
        params = tool.inputSchema["properties"]
        undescribed = [p for p, schema in params.items() if not schema.get("description")]
        assert params and undescribed == [], (name, undescribed)
        assert "$defs" not in json.dumps(tool.inputSchema), name  # a schema every client can resolve
    for name, tool in tools.items():  # Gradio joins a docstring's lines with commas: each section one line
        assert not re.search(r",\s*,|\b(the|a|an|and|of|with)\, ", tool.description), (name, tool.description)


def test_classify_over_mcp_equals_gradio_client(served, image_file):
    from gradio_client import handle_file

    url, client = served
    data_url = "data:image/png;base64," + base64.b64encode(open(image_file, "rb").read()).decode()

    async def work(session):
        return await session.call_tool("classify", {"images": [data_url, data_url], "labels": "cat, dog, bird"})

    result = over_mcp(url, work)
    assert not result.isError, texts(result)
    label = json.loads(texts(result)[0])
    expected, table, *_ = client.predict([handle_file(image_file)] * 2, "cat, dog, bird", api_name="/classify")
    assert label["label"] == expected["label"]
    assert {c["label"]: c["confidence"] for c in label["confidences"]} == pytest.approx(
        {c["label"]: c["confidence"] for c in expected["confidences"]}, abs=1e-6)
    rows = json.loads(texts(result)[1])["data"]  # a data URL arrives as file.png
    assert [row[1:] for row in rows] == [row[1:] for row in table["data"]]  # both images, each label
    assert sum(c.type == "image" for c in result.content) == 2


def test_generate_over_mcp_returns_the_images_and_the_ranking_of_gradio_client(served):
    url, client = served
    request = {"prompt": "一只戴眼镜的狗", "num_candidates": 2, "steps": 2, "seed": "7"}

    async def work(session):
        return await session.call_tool("generate", request)

    result = over_mcp(url, work)
    assert not result.isError, texts(result)
    images = [c for c in result.content if c.type == "image"]
    assert len(images) == 2 and all(base64.b64decode(c.data)[:8] == b"\x89PNG\r\n\x1a\n" for c in images)
    captions = [t for t in texts(result) if t.startswith("#")]
    assert [c.split(" · ")[0] for c in captions] == ["#1", "#2"] and all("CLIP" in c for c in captions)
    ranking = next(json.loads(t) for t in texts(result) if t.startswith('{"headers": ["rank"'))
    _, expected, _, _ = client.predict(**request, api_name="/generate")
    assert ranking["data"] == expected["data"]  # same seeds, same order, same scores
    assert sorted(row[1] for row in ranking["data"]) == [7, 8]


def test_app_py_takes_mcp_and_launches_with_the_mcp_server(monkeypatch):
    import importlib

    cli_main = importlib.import_module("clipdemo.cli.main")
    launched = {}
    monkeypatch.setattr("clipdemo.ui.launch", lambda studio, **kwargs: launched.update(kwargs))
    assert cli_main.build_parser().parse_args(["serve", "--mcp"]).mcp is True
    assert cli_main.build_parser().parse_args(["serve"]).mcp is False
    assert cli_main.main(["serve", "--mcp", "--preset", "demo"]) == 0
    assert launched["mcp_server"] is True
