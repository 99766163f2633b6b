"""The History tab: every generate and compare run of this page, as a table and a chart."""

from __future__ import annotations

from dataclasses import replace

import gradio as gr

from ..history import HEADERS as HISTORY_HEADERS
from ..history import append as history_append
from ..history import next_number, rows as history_rows


def record_runs(state: list[dict], runs):
    for run in runs or []:
        state, _, _ = record_run(state, run)
    table = history_rows(state or [])
    from ..plots import history_chart

    return state, table, history_chart(table) if table else None


def record_run(state: list[dict], run):
    """Add the last run to this page's history (bounded), and refresh the table and chart."""
    from ..plots import history_chart

    if run is not None:
        state = history_append(state or [], replace(run, number=next_number(state or [])))
    table = history_rows(state or [])
    return state, table, history_chart(table) if table else None


def clear_history():
    return [], [], None


def build_history(history: gr.State, generated: tuple[gr.events.Dependency, gr.State],
                  compared: tuple[gr.events.Dependency, gr.State]) -> None:
    """The tab, fed by the generate event's run and the compare event's two runs."""
    with gr.Tab("History"):
        gr.Markdown("Every run since this page was opened (newest last, at most 50). Click a column header to sort.")
        table = gr.Dataframe(headers=HISTORY_HEADERS, interactive=False, elem_id="history-table")
        plot = gr.Plot(label="Scores over runs")
        clear = gr.Button("Clear history")
        clear.click(clear_history, None, [history, table, plot], api_visibility="private")
    (gen_event, last_run), (cmp_event, cmp_runs) = generated, compared
    gen_event.then(record_run, [history, last_run], [history, table, plot], api_visibility="private")
    cmp_event.then(record_runs, [history, cmp_runs], [history, table, plot], api_visibility="private")
