"""The Benchmark tab: prompts × seeds × settings, scored and summarised with CIs; bigger runs go to the CLI."""

from __future__ import annotations

import shlex
import shutil
import tempfile
import uuid
from dataclasses import replace
from pathlib import Path

import gradio as gr

from ..studio import BENCH_KEYS, BUNDLED_SETS, BenchSetting
from ..errors import InputError
from .common import bind, make_room, on_gpu, show_notices, user_errors
from .formatting import bench_leaderboard, bench_pairwise, bench_summary, notice_lines, shown

TYPED = "(typed)"  # the prompt-set choice meaning "the prompts in the text box"
MAX_PROMPTS, MAX_SEEDS, MAX_SETTINGS = 20, 4, 3  # a page run must end while someone waits at the page
DEFAULT_SEEDS = 2


def other_steps(steps: int) -> int:
    """Steps for the second default setting: half (like Compare's B), or one more when that would not differ."""
    return steps // 2 if steps > 2 else steps + 1


def default_settings(defaults) -> str:
    return f"a: steps={defaults.steps}\nb: steps={other_steps(defaults.steps)}"


def settings_placeholder(defaults) -> str:
    return (f"a: steps={defaults.steps}\nb: steps={other_steps(defaults.steps)}, guidance={defaults.guidance + 1:g}\n"
            f"c: steps={defaults.steps}, scheduler=euler, negative=blurry, low quality")


def lines_of(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def page_settings(studio, text: str | None) -> list[BenchSetting]:
    """The settings typed on the page; a model is named as the page shows it and passed on as configured."""
    if not lines_of(text):  # the core's message speaks of --setting flags
        raise InputError("Type at least one setting, one 'NAME: key=value, ...' per line, e.g. 'a: steps=1'.")
    settings = studio.bench_settings(lines_of(text))
    models = {shown(m): m for m in studio.generation_models()}
    for s in settings:
        if s.sd_model is not None and s.sd_model not in models:  # the core's message would list server paths
            raise InputError(f"Setting '{s.name}': model '{s.sd_model}' is not one of this server's models: "
                             f"{', '.join(models)}.")
    return [replace(s, params={**s.params, "model": models[s.sd_model]}) if s.sd_model else s for s in settings]


def check_size(prompts: int, seeds: int, settings: list[str], source: str) -> None:
    """InputError naming the CLI command for a run larger than the page's limits."""
    if prompts <= MAX_PROMPTS and seeds <= MAX_SEEDS and len(settings) <= MAX_SETTINGS:
        return
    flags = " ".join(f"--setting {shlex.quote(s)}" for s in settings)
    raise InputError(
        f"This run is {prompts} prompts × {seeds} seeds × {len(settings)} settings; the page runs at most "
        f"{MAX_PROMPTS} prompts × {MAX_SEEDS} seeds × {MAX_SETTINGS} settings. Larger runs belong to the CLI: "
        f"`python -m clipdemo bench {source} {flags} --seeds {seeds} --out bench-run` (it resumes where it stopped), "
        f"and `accelerate launch --num_processes N -m clipdemo bench ...` splits it across several processes.")


def new_run_folder(studio) -> Path:
    root = Path(tempfile.gettempdir()) / "clipdemo-bench"
    root.mkdir(exist_ok=True)
    make_room(studio)
    return root / uuid.uuid4().hex


def bench(studio, prompts: str | None, settings: str | None, prompt_set: str | None = TYPED,
          seeds: int = DEFAULT_SEEDS, scorer: str = "auto", progress=gr.Progress()):
    """Benchmark generation settings: every prompt × seed under each setting, scored, with 95% intervals.

    Args:
        prompts: the prompts, one per line (or pick a prompt set)
        settings: one setting per line, 'NAME: key=value, ...' (steps, guidance, scheduler, negative, model)
        prompt_set: a built-in prompt set instead of typed prompts
        seeds: seeds per prompt
        scorer: which CLIP scores: auto (by the text's language), english or chinese
    Returns:
        A summary per setting with confidence intervals and paired tests, a plot and the result files.
    """
    chosen = prompt_set if prompt_set and prompt_set != TYPED else None
    spec = chosen or lines_of(prompts)
    if not spec:
        raise InputError("Type one prompt per line, or choose a bundled prompt set.")
    prompt_list, bench_settings, seeds = studio.bench_prompts(spec), page_settings(studio, settings), int(seeds)
    check_size(len(prompt_list), seeds, lines_of(settings), chosen or "prompts.txt")
    out = new_run_folder(studio)
    progress((0, len(prompt_list) * seeds * len(bench_settings)), desc="Generating and scoring", unit="images")
    run = studio.bench(spec, bench_settings, seeds, out, scorer=scorer,
                       progress=lambda done, total: progress((done, total), desc="Generating and scoring",
                                                             unit="images"))
    show_notices(run.notices)
    archive = shutil.make_archive(str(out), "zip", out)
    return (bench_summary(run.summary) + notice_lines(run.notices), bench_leaderboard(run.summary),
            bench_pairwise(run.summary), str(out / "scores.png"), str(out / "categories.png"), archive)


def build_bench(studio, scorer_choice: gr.Radio) -> None:
    d = studio.settings.defaults
    sets = [(TYPED, TYPED)] + [(f"{name} ({len(studio.bench_prompts(name))} prompts)", name) for name in BUNDLED_SETS]
    with gr.Tab("Benchmark"):
        with gr.Row():
            with gr.Column():
                prompts = gr.Textbox(value=None, label="Prompts (one per line)", lines=5,
                                     placeholder="a red circle\na blue square", elem_id="bench-prompts")
                prompt_set = gr.Dropdown(sets, value=TYPED, label="Prompt set (typed = the prompts above)")
                settings = gr.Textbox(value=default_settings(d), lines=3, placeholder=settings_placeholder(d),
                                      label="Settings (one 'NAME: key=value, ...' per line)",
                                      info=f"keys: {', '.join(BENCH_KEYS)}; unset keys take the server's defaults")
                seeds = gr.Slider(1, MAX_SEEDS, value=DEFAULT_SEEDS, step=1, label="Seeds per prompt")
                gr.Markdown(f"At most {MAX_PROMPTS} prompts × {MAX_SEEDS} seeds × {MAX_SETTINGS} settings here; "
                            "larger runs: `python -m clipdemo bench`.")
                go = gr.Button("Run benchmark", variant="primary", elem_id="bench-button")
            with gr.Column():
                summary = gr.Markdown(label="summary", elem_id="bench-summary")
                archive = gr.File(label="Run folder (zip)")
        leaderboard = gr.Dataframe(label="Leaderboard", interactive=False)
        pairwise = gr.Dataframe(label="Pairwise (paired by prompt and seed)", interactive=False)
        with gr.Row():
            scores = gr.Image(label="Scores per setting", type="filepath", format="png")
            categories = gr.Image(label="Mean per category", type="filepath", format="png")
        go.click(user_errors(on_gpu(bind(bench, studio))), [prompts, settings, prompt_set, seeds, scorer_choice],
                 [summary, leaderboard, pairwise, scores, categories, archive], api_name="bench", concurrency_limit=1)
