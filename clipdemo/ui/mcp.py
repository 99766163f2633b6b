"""The studio's endpoints as MCP tools: Gradio's MCP server, taught lists of files and galleries.

Gradio 6.31's server describes a list-of-files input (Classify, Similarity, Moderate) with a `$ref` whose `$defs`
sit inside the property, so every MCP client's schema check fails ("PointerToNowhere"), and the URLs in such a list
are never turned into files. A gallery output (Generate, Compare, Search) reaches the agent as the text of a
Python list, without its images, and a tool with a State output (Generate, Classify) fails ("pop index out of
range": gradio_client's answer has no State values to remove). This subclass fixes the four; `install` puts it where Gradio's routes build
their MCP server, for `--mcp` and for Gradio's own GRADIO_MCP_SERVER switch alike.
"""

from __future__ import annotations

import json
from typing import Any

from gradio_client import utils as client_utils

FILE_FORMAT = "Gradio File Input - a http or https url to a file"


def _value_at(value: Any, path: list) -> Any:
    for key in path:
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def _gallery_items(output: Any) -> list[tuple[dict, str]] | None:
    """(file, caption) pairs when `output` is a gallery's value, else None."""
    if not isinstance(output, list) or not output:
        return None
    if not all(isinstance(item, dict) and isinstance(item.get("image"), dict) for item in output):
        return None
    return [(item["image"], item.get("caption") or "") for item in output]


def install() -> bool:
    """Make Gradio's routes build ClipdemoMCPServer; False when the `mcp` extra is not installed."""
    try:
        import gradio.mcp as gradio_mcp
    except ImportError:
        return False
    if getattr(gradio_mcp.GradioMCPServer, "clipdemo", False):
        return True

    class ClipdemoMCPServer(gradio_mcp.GradioMCPServer):
        clipdemo = True

        def simplify_filedata_schema(self, schema: dict[str, Any]):
            simplified, positions = super().simplify_filedata_schema(schema)
            for prop in simplified.get("properties", {}).values():
                prop.pop("$defs", None)  # the files it defined are plain URL strings now
                items = prop.get("items")
                if isinstance(items, dict) and items.get("format") == FILE_FORMAT:
                    items.pop("$ref", None)
            return simplified, [p for p in positions if "$defs" not in p]

        def convert_strings_to_filedata(self, value: Any, filedata_positions: list[list[str | int]]) -> Any:
            positions = []
            for path in filedata_positions:
                if "items" not in path:
                    positions.append(path)
                    continue
                at = path.index("items")  # one position per element of the list given
                listed = _value_at(value, path[:at])
                if isinstance(listed, list):
                    positions += [path[:at] + [i] + path[at + 1:] for i in range(len(listed))]
            return super().convert_strings_to_filedata(value, positions)

        @staticmethod
        def pop_returned_state(components, data: Any) -> list:
            """The outputs without State values; those from gradio_client (queued tools) have none already."""
            from gradio.components import State

            if isinstance(data, list) and len(data) == 1 and isinstance(data[0], tuple):
                data = data[0]  # gradio_client's answer for several outputs, wrapped in one more list
            data = list(data) if isinstance(data, (list, tuple)) else [data]
            if len(data) != len(components):
                return data
            return [value for component, value in zip(components, data) if not isinstance(component, State)]

        def postprocess_output_data(self, data: Any, root_url: str):
            flat = []
            for output in data:
                if items := _gallery_items(output):
                    flat += [part for file, caption in items for part in (file, caption)]
                elif isinstance(output, (dict, list)) and not client_utils.is_file_obj_with_meta(output):
                    flat.append(json.dumps(output, ensure_ascii=False))  # tables and labels as JSON text
                else:
                    flat.append(output)
            return super().postprocess_output_data(flat, root_url)

    gradio_mcp.GradioMCPServer = ClipdemoMCPServer
    return True
