"""The Gradio Blocks app: one tab per capability, each a thin wrapper over a Studio method.

Every handler turns InputError / ModelLoadError into gr.Error, so the page shows a message and the
server keeps running. Endpoints are named so `gradio_client` can call them (/generate, /classify,
/similarity).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from ..errors import Cancelled, InputError, ModelLoadError
from ..history import HEADERS as HISTORY_HEADERS
from ..history import append as history_append
from ..history import next_number, rows as history_rows, run_from_result
from ..generation import MAX_CANDIDATES, MAX_GUIDANCE, MAX_SIZE, MAX_STEPS, MIN_SIZE, GenerationRequest
from ..images import load_image
from ..loading import display_name
from ..plots import similarity_heatmap
from ..evaluation import TEMPLATE_SETS
from ..studio import SCORER_CHOICES, Studio
from ..text import DEFAULT_TEMPLATE, ZH_DEFAULT_TEMPLATE

MAX_UPLOADS = 16  # images per request in the classify and similarity tabs
MAX_FILE_SIZE = "50mb"  # per uploaded file (a zip of class folders may be this large)
MAX_EVAL_FILES = 2000  # images in one uploaded zip
MAX_EVAL_BYTES = 200 * 2**20  # uncompressed size of one uploaded zip
QUEUE_SIZE = 32  # requests waiting per event beyond this get a clean "queue full" answer

EXAMPLE_PROMPTS = [
    ["a dog wearing glasses"],
    ["一只戴眼镜的狗"],
    ["a red circle"],
    ["a watercolor painting of a lighthouse at dawn"],
]


def _user_errors(fn):
    """Show InputError and ModelLoadError as a message box instead of a stack trace."""

    import functools

    @functools.wraps(fn)  # keeps the signature: gradio reads parameter names and gr.Request/gr.Progress from it
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (InputError, ModelLoadError) as exc:
            raise gr.Error(str(exc), print_exception=False) from None

    return wrapper


class StopFlags:
    """One threading.Event per browser session: Stop sets it, the diffusion callback checks it."""

    def __init__(self) -> None:
        import threading

        self._lock = threading.Lock()
        self._flags: dict[str | None, "threading.Event"] = {}

    def arm(self, session: str | None):
        import threading

        with self._lock:
            if len(self._flags) > 10_000:  # bounded: forget old sessions
                self._flags.clear()
            flag = self._flags.setdefault(session, threading.Event())
            flag.clear()
            return flag

    def stop(self, session: str | None) -> None:
        with self._lock:
            flag = self._flags.get(session)
        if flag is not None:
            flag.set()


def on_gpu(fn):
    """On ZeroGPU Spaces, run fn with a GPU attached (spaces.GPU); elsewhere, unchanged."""
    try:
        import spaces
    except ImportError:
        return fn
    return spaces.GPU(fn)


def auth_from_env(value: str | None) -> tuple[str, str] | None:
    """CLIPDEMO_AUTH=user:password turns on basic auth; unset means none."""
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise InputError("CLIPDEMO_AUTH must look like user:password.")
    return user, password


def _read_uploads(files: list[Any] | None) -> tuple[list, list[str]]:
    """PIL images and display names from gr.File values (paths)."""
    from pathlib import Path

    files = files or []
    if not files:
        raise InputError("Upload at least one image.")
    if len(files) > MAX_UPLOADS:
        raise InputError(f"Too many images: {len(files)} (the limit is {MAX_UPLOADS} per request).")
    paths = [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in files]
    names = [Path(p).name for p in paths]
    return [load_image(p, name=n) for p, n in zip(paths, names)], names


shown = display_name  # a model's name for the page: no server paths
KEEP_RUNS = 200  # generated runs kept in the temp folder for download; older ones are deleted


def _prune(folder: Path, keep: int) -> None:
    """Delete all but the newest `keep` entries of a temp folder, so a long-running server stays small."""
    import shutil

    entries = sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True) if folder.exists() else []
    for old in entries[keep:]:
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)


def _publish(result) -> tuple[list, dict, str]:
    """Write the run's PNGs (with provenance metadata) and its zip; gallery items, ranking table, zip path.

    The table has a PickScore column only when the run was scored by PickScore: an always-empty column
    reads as a fault.
    """
    import tempfile
    import uuid

    from ..ranking import image_filename, write_run, zip_run

    runs = Path(tempfile.gettempdir()) / "clipdemo-runs"
    _prune(runs, 2 * KEEP_RUNS)  # a folder and a zip per run
    out = runs / uuid.uuid4().hex
    write_run(result, out)
    archive = zip_run(out, out.parent / f"{out.name}.zip")
    gallery = [(str(out / image_filename(item)), item.caption()) for item in result.images]
    kinds = ["clip"] + (["pickscore"] if any("pickscore" in item.scores for item in result.images) else [])
    rows = [[item.rank, item.seed,
             *(None if k not in item.scores else round(item.scores[k], 3) for k in kinds),
             "flagged, blurred" if item.moderation and item.moderation["flagged"] else
             ("ok" if item.moderation else "unchecked")]
            for item in result.images]
    headers = ["rank", "seed", "CLIP score"] + (["PickScore"] if "pickscore" in kinds else []) + ["moderation"]
    return gallery, {"headers": headers, "data": rows}, str(archive)


def _describe(result) -> str:
    req = result.request
    info = (
        f"Ranked by {result.rank_by} with **{shown(result.clip_model)}**; generated with "
        f"**{shown(result.sd_model)}**. Seeds {req.seed}–{req.seed + req.n - 1}."
    )
    if result.translated_prompt:
        info += f"\n\nTranslated for the pipeline: *{result.translated_prompt}* (ranked against the prompt as typed)."
    if result.models:
        info += "\n\nWeights: " + " · ".join(f"{role.replace('_', ' ')} {m['model']} ({m['weights']})"
                                            for role, m in result.models.items())
    if result.notices:
        info += "\n\n" + "\n".join(f"- ⚠️ {n}" for n in result.notices)
    return info


def build_app(studio: Studio) -> gr.Blocks:
    s = studio.settings
    d = s.defaults

    def generate(
        prompt: str,
        negative_prompt: str,
        num_candidates: int,
        steps: int,
        guidance: float,
        width: int,
        height: int,
        seed: str,
        scorer: str = "auto",
        pickscore: bool | None = None,
        request: gr.Request = None,
        progress=gr.Progress(),
    ):
        """Generate candidates for a prompt and rank them best-first by CLIPScore."""
        progress(0, desc="Loading models")
        request_session = getattr(request, "session_hash", None) if request is not None else None
        request = GenerationRequest(
            prompt, negative_prompt or "", num_candidates, steps, guidance, width, height,
            None if seed is None or not str(seed).strip() else str(seed).strip(),
        ).validated()

        def on_step(step: int, total: int) -> None:
            progress((step, total), desc="Denoising", unit="steps")

        stop_flag = stop_flags.arm(request_session)
        try:
            result = studio.generate(request, on_step, scorer=scorer, should_stop=stop_flag.is_set,
                                     pickscore=pickscore)
        except Cancelled:
            raise gr.Error("Stopped: the generation was cancelled, nothing was kept.", print_exception=False) from None
        for notice in result.notices:
            gr.Warning(notice)
        gallery, table, archive = _publish(result)
        info = _describe(result)
        run = run_from_result(0, "generate", result, model_label=shown(result.sd_model))
        return gallery, table, info, archive, run

    def classify(images: list[str], labels: str, template: str, top_k: int, scorer: str = "auto"):
        """Zero-shot classify each image against the labels; returns the first image's label and a table."""
        pil_images, names = _read_uploads(images)
        result = studio.classify(pil_images, labels, template, int(top_k) if top_k else None, names=names,
                                 scorer=scorer)
        for notice in result.notices:
            gr.Warning(notice)
        results = result.images
        first = {p.label: p.prob for p in results[0].predictions}
        table = [[r.name, p.label, round(p.prob, 4)] for r in results for p in r.predictions]
        per_image = [{p.label: p.prob for p in r.predictions} for r in results]
        gallery = [(im, f"{r.name}: {r.top.label} ({r.top.prob:.0%})") for im, r in zip(pil_images, results)]
        info = (f"Scored by **{shown(result.scorer)}** with template `{result.template}`"
                + "".join(f"\n\n⚠️ {n}" for n in result.notices))
        return first, table, per_image, gallery, info

    def similarity(images: list[str], texts: str, scorer: str = "auto"):
        """Cosine similarity of every image with every text (one per line), and each pair's CLIPScore."""
        pil_images, names = _read_uploads(images)
        lines = [t for t in (texts or "").splitlines() if t.strip()]
        result = studio.similarity(pil_images, lines, names=names, scorer=scorer)
        for notice in result.notices:
            gr.Warning(notice)
        figure = similarity_heatmap(result.cosine, result.image_names, result.texts,
                                    f"cosine similarity · scored by {shown(result.scorer)}")
        table = [
            [name, text, round(float(result.cosine[i, j]), 4), round(float(result.clip_score[i, j]), 2)]
            for i, name in enumerate(result.image_names)
            for j, text in enumerate(result.texts)
        ]
        info = f"Scored by **{shown(result.scorer)}**" + "".join(f"\n\n⚠️ {n}" for n in result.notices)
        from ..provenance import read_metadata

        paths = [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in images]
        found = {name: meta for name, p in zip(names, paths) if (meta := read_metadata(p))}
        return figure, table, info, found

    def evaluate(archive: str | None, label_lines: str, templates: str, custom_template: str,
                 scorer: str = "auto", progress=gr.Progress()):
        """Zero-shot evaluation of a zip of class folders: metrics, confusion matrix, mistakes."""
        import tempfile

        from ..datasets import from_class_folders, safe_extract_zip
        from ..evaluation import write_report
        from ..plots import confusion_figure

        if not archive:
            raise InputError("Upload a zip with one folder of images per class.")
        evals = Path(tempfile.gettempdir()) / "clipdemo-evals"
        evals.mkdir(exist_ok=True)
        _prune(evals, 40)  # an extracted folder and a report per evaluation
        work = tempfile.mkdtemp(prefix="eval-", dir=evals)
        folder = safe_extract_zip(archive, work, max_files=MAX_EVAL_FILES, max_bytes=MAX_EVAL_BYTES)
        image_set = from_class_folders(folder, follow_symlinks=False)  # an upload: never read through a link
        overrides = {}
        for line in (label_lines or "").splitlines():
            if line.strip():
                if ":" not in line:
                    raise InputError(f"Write each label as 'folder: label' (got '{line.strip()}').")
                key, value = line.split(":", 1)
                overrides[key.strip()] = value.strip()
        unknown = sorted(set(overrides) - set(image_set.class_names))
        if unknown:
            raise InputError(f"No class folder named '{unknown[0]}' in the zip (folders: {', '.join(image_set.class_names)}).")
        image_set.labels = [overrides.get(n, l) for n, l in zip(image_set.class_names, image_set.labels)]
        choice = (custom_template or "").strip() if templates == "custom" else templates
        result = studio.evaluate(image_set, choice or "single", batch_size=32,
                                 progress=lambda done, total: progress((done, total), desc="Classifying", unit="images"),
                                 scorer=scorer)
        for notice in result.notices:
            gr.Warning(notice)
        paths = write_report(result, work + "-report", Path(archive).stem)
        skipped = f" ({len(result.skipped)} unreadable, skipped)" if result.skipped else ""
        summary = (f"**top-1 {result.top1:.1%}** · top-5 {result.top5:.1%} · {len(result.targets)} images{skipped}, "
                   f"{len(result.labels)} classes · logits `torch.Size([{result.logits.shape[0]}, "
                   f"{result.logits.shape[1]}])` · templates {result.templates} ({result.n_templates}) · "
                   f"CLIP {shown(result.clip_model)}")
        per_class = [[label, None if acc is None else round(acc, 4)] for label, acc in result.per_class.items()]
        predictions = result.predictions
        mistakes = []
        for i in result.misclassified(24):
            image = load_image(image_set.sources[result.source_indices[i]])
            mistakes.append((image, f"{result.labels[result.targets[i]]} → {result.labels[predictions[i]]}"))
        figure = confusion_figure(result.confusion, result.labels)
        return summary, per_class, figure, mistakes, [str(paths["json"]), str(paths["markdown"]), str(paths["confusion"])]

    def moderate(images: list[str]):
        """Per-concept scores and the verdict for each image, with the configured checker."""
        from ..moderation import blur

        pil_images, names = _read_uploads(images)
        verdicts, checker = studio.moderate(pil_images)
        lines = [f"Checker: **{shown(checker)}** · threshold {verdicts[0].threshold:g}"]
        table, gallery = [], []
        for name, image, verdict in zip(names, pil_images, verdicts):
            concept, score = verdict.top
            lines.append(f"- {name}: " + (f"⚠️ **flagged** ({concept}, {score:.3f})" if verdict.flagged
                                          else f"ok (highest: {concept}, {score:.3f})"))
            table += [[name, c, round(v, 4), v > verdict.threshold] for c, v in verdict.scores.items()]
            gallery.append((blur(image, verdict) if verdict.flagged else image,
                            f"{name}: {'flagged' if verdict.flagged else 'ok'}"))
        return "\n".join(lines), table, gallery

    def compare(prompt: str, seed: str, num_candidates: int, width: int, height: int,
                model_a: str, steps_a: int, guidance_a: float, scheduler_a: str, negative_a: str,
                model_b: str, steps_b: int, guidance_b: float, scheduler_b: str, negative_b: str,
                scorer: str = "auto", progress=gr.Progress()):
        """Generate the same prompt and seeds with settings A and B; compare their scores seed by seed."""
        from ..compare import Setting
        from ..plots import score_distributions

        models = {shown(m): m for m in studio.generation_models()}
        model_a, model_b = model_a or next(iter(models)), model_b or next(iter(models))  # None: the first model
        if model_a not in models or model_b not in models:
            raise InputError(f"Choose models from the list: {', '.join(models)}.")
        a = Setting(models[model_a], int(steps_a), float(guidance_a), scheduler_a or "default", negative_a or "")
        b = Setting(models[model_b], int(steps_b), float(guidance_b), scheduler_b or "default", negative_b or "")
        seed_value = None if seed is None or not str(seed).strip() else str(seed).strip()
        progress(0, desc="Generating A and B")
        result = studio.compare(prompt, seed_value, num_candidates, a, b, int(width), int(height),
                                scorer=scorer)
        for notice in dict.fromkeys(result.a.notices + result.b.notices):
            gr.Warning(notice)
        gallery_a, _, _ = _publish(result.a)
        gallery_b, _, _ = _publish(result.b)
        stats_a, stats_b = result.stats
        wins_a, wins_b, ties = result.wins
        key = "CLIPScore" if result.key == "clip" else "PickScore"
        summary = (
            f"| {key} | A | B |\n|---|---|---|\n"
            f"| mean | {stats_a.mean:.3f} | {stats_b.mean:.3f} |\n"
            f"| max | {stats_a.max:.3f} | {stats_b.max:.3f} |\n"
            f"| spread (std) | {stats_a.spread:.3f} | {stats_b.spread:.3f} |\n"
            f"| seeds won | {wins_a} | {wins_b} |\n\n"
            f"Same seeds {result.seeds[0]}–{result.seeds[-1]}; ties: {ties}. "
            + ("**A wins.**" if wins_a > wins_b else "**B wins.**" if wins_b > wins_a else "**A draw.**")
        )
        per_seed = [[s, round(x, 3), round(y, 3)] for s, x, y in
                    zip(result.seeds, result.scores(result.a), result.scores(result.b))]
        figure = score_distributions(result.scores(result.a), result.scores(result.b),
                                     (f"A: {model_a}, {a.steps} steps, g {a.guidance:g}, {a.scheduler}",
                                      f"B: {model_b}, {b.steps} steps, g {b.guidance:g}, {b.scheduler}"), key)
        runs = [run_from_result(0, "compare A", result.a, a.scheduler, model_a),
                run_from_result(0, "compare B", result.b, b.scheduler, model_b)]
        return gallery_a, gallery_b, summary, per_seed, figure, runs

    def record_runs(state: list[dict], runs):
        for run in runs or []:
            state, _, _ = record_run(state, run)
        table = history_rows(state or [])
        from ..plots import history_chart

        return state, table, history_chart(table) if table else None

    def record_run(state: list[dict], run):
        """Add the last run to this page's history (bounded), and refresh the table and chart."""
        from dataclasses import replace

        from ..plots import history_chart

        if run is not None:
            state = history_append(state or [], replace(run, number=next_number(state or [])))
        table = history_rows(state or [])
        return state, table, history_chart(table) if table else None

    def clear_history():
        return [], [], None

    stop_flags = StopFlags()

    def stop(request: gr.Request = None):
        """Stop this page's running generation; its worker is freed at the next denoising step."""
        stop_flags.stop(getattr(request, "session_hash", None) if request is not None else None)
        return "Stopping…"

    with gr.Blocks(title="clipdemo: CLIP studio") as demo:
        history = gr.State([])
        gr.Markdown(
            "# clipdemo\nGenerate candidates with Stable Diffusion, rank them with CLIP, and explore CLIP "
            f"zero-shot.\n\nModels: **{shown(s.sd_model)}** (generation), **{shown(s.clip_model)}** (CLIP) · "
            f"device {studio.device.type}, {str(studio.dtype).replace('torch.', '')} · loaded on first use."
            + f"\n\nRanking: CLIPScore, sorted by {s.rank_by}. Helpers: "
            + " · ".join(f"**{name}** {state}" for name, state in studio.helpers().items())
            + "".join(f"\n\n> ⚠️ {notice}" for notice in studio.notices),
            elem_id="model-banner",
        )
        scorer_choice = gr.Radio(list(SCORER_CHOICES), value="auto", label="Scorer",
                                 info=f"auto: text with Chinese characters is scored by {shown(s.zh_clip_model)}, "
                                      f"other text by {shown(s.clip_model)}")
        with gr.Tab("Generate & rank"):
            with gr.Row():
                with gr.Column(scale=2):
                    prompt = gr.Textbox(label="Prompt", placeholder="a dog wearing glasses / 一只戴眼镜的狗", lines=2)
                    negative = gr.Textbox(value="", label="Negative prompt", placeholder="blurry, low quality")
                    with gr.Row():
                        n = gr.Slider(1, MAX_CANDIDATES, value=d.n, step=1, label="Candidates")
                        steps = gr.Slider(1, MAX_STEPS, value=d.steps, step=1, label="Steps")
                        guidance = gr.Slider(0, MAX_GUIDANCE, value=d.guidance, step=0.5, label="Guidance")
                    with gr.Row():
                        width = gr.Slider(MIN_SIZE, min(MAX_SIZE, 1024), value=d.width, step=8, label="Width")
                        height = gr.Slider(MIN_SIZE, min(MAX_SIZE, 1024), value=d.height, step=8, label="Height")
                        seed = gr.Textbox(value="", label="Seed (blank = random)", placeholder="random")
                    pickscore = gr.Checkbox(value=studio.pickscore_default, label="PickScore",
                                            interactive=s.pick_model != "none", elem_id="pickscore-box",
                                            info="also score with PickScore (human-preference CLIP-H; "
                                                 + ("about a fifth more time on this CPU" if studio.device.type == "cpu"
                                                    else "cheap on a GPU") + ", loads on first use)")
                    with gr.Row():
                        go = gr.Button("Generate", variant="primary", elem_id="generate-button", scale=3)
                        # Shown only while this page's generation runs.
                        stop_button = gr.Button("Stop", variant="stop", elem_id="stop-button", scale=1, visible=False)
                    gr.Examples(EXAMPLE_PROMPTS, inputs=[prompt])
                with gr.Column(scale=3):
                    gallery = gr.Gallery(label="Ranked candidates (best first)", columns=4, format="png",
                                         height=320, elem_id="ranked-gallery")
                    info = gr.Markdown(label="details")
                    ranking = gr.Dataframe(headers=["rank", "seed", "CLIP score", "moderation"],
                                           label="Ranking", interactive=False, elem_id="ranking-table")
                    download = gr.File(label="Download all (PNGs with their parameters + manifest.json)")
            last_run = gr.State(None)
            gen_event = go.click(lambda: gr.Button(visible=True), None, stop_button, queue=False,
                                 api_visibility="private")
            gen_event = gen_event.then(_user_errors(on_gpu(generate)),
                                       [prompt, negative, n, steps, guidance, width, height, seed, scorer_choice,
                                        pickscore],
                                       [gallery, ranking, info, download, last_run], api_name="generate",
                                       concurrency_limit=1)
            gen_event.then(lambda: gr.Button(visible=False), None, stop_button, queue=False,
                           api_visibility="private")
            stop_button.click(stop, None, info, api_name="stop", concurrency_limit=None, queue=False)

        with gr.Tab("Compare"):
            model_names = [shown(m) for m in studio.generation_models()]
            from ..compare import SCHEDULERS

            with gr.Row():
                cmp_prompt = gr.Textbox(label="Prompt", scale=3, placeholder="a red circle", elem_id="compare-prompt")
                cmp_seed = gr.Textbox(label="Seed (blank = random)", value="", scale=1)
                cmp_n = gr.Slider(1, MAX_CANDIDATES, value=d.n, step=1, label="Seeds", scale=1)
                cmp_width = gr.Slider(MIN_SIZE, min(MAX_SIZE, 1024), value=d.width, step=8, label="Width", scale=1)
                cmp_height = gr.Slider(MIN_SIZE, min(MAX_SIZE, 1024), value=d.height, step=8, label="Height", scale=1)
            sides = []
            # B starts with other steps than A (half, or 2 for a one-step model), so that the first click
            # already compares something; two identical settings would only ever draw.
            side_steps = {"A": d.steps, "B": d.steps // 2 if d.steps > 2 else 2}
            with gr.Row():
                for side in ("A", "B"):
                    with gr.Column():
                        gr.Markdown(f"### Setting {side}")
                        sides.append([
                            gr.Dropdown(model_names, value=model_names[0], label="Model"),
                            gr.Slider(1, MAX_STEPS, value=side_steps[side], step=1, label="Steps"),
                            gr.Slider(0, MAX_GUIDANCE, value=d.guidance, step=0.5, label="Guidance"),
                            gr.Dropdown(list(SCHEDULERS), value="default", label="Scheduler"),
                            gr.Textbox(value="", label="Negative prompt"),
                        ])
            cmp_go = gr.Button("Compare", variant="primary", elem_id="compare-button")
            with gr.Row():
                cmp_gallery_a = gr.Gallery(label="A (best first)", columns=4, format="png", height=260)
                cmp_gallery_b = gr.Gallery(label="B (best first)", columns=4, format="png", height=260)
            with gr.Row():
                cmp_summary = gr.Markdown(label="summary", elem_id="compare-summary")
                cmp_plot = gr.Plot(label="Score distributions")
            cmp_table = gr.Dataframe(headers=["seed", "A", "B"], label="Scores per seed", interactive=False)
            cmp_runs = gr.State(None)
            cmp_event = cmp_go.click(_user_errors(on_gpu(compare)), [cmp_prompt, cmp_seed, cmp_n, cmp_width, cmp_height, *sides[0], *sides[1],
                                                              scorer_choice],
                                     [cmp_gallery_a, cmp_gallery_b, cmp_summary, cmp_table, cmp_plot, cmp_runs],
                                     api_name="compare", concurrency_limit=1)

        with gr.Tab("History"):
            gr.Markdown("Every run since this page was opened (newest last, at most 50). Click a column header to sort.")
            history_table = gr.Dataframe(headers=HISTORY_HEADERS, interactive=False, elem_id="history-table")
            history_plot = gr.Plot(label="Scores over runs")
            clear = gr.Button("Clear history")
            clear.click(clear_history, None, [history, history_table, history_plot], api_visibility="private")
        gen_event.then(record_run, [history, last_run], [history, history_table, history_plot],
                       api_visibility="private")
        cmp_event.then(record_runs, [history, cmp_runs], [history, history_table, history_plot],
                       api_visibility="private")

        with gr.Tab("Zero-shot"):
            with gr.Row():
                with gr.Column():
                    zs_images = gr.File(label=f"Images (up to {MAX_UPLOADS})", file_count="multiple",
                                        file_types=["image"], elem_id="classify-files")
                    labels = gr.Textbox(label="Labels (comma or new line separated)", lines=3,
                                        placeholder="cat, dog, bird", elem_id="classify-labels")
                    template = gr.Textbox(label="Template (blank: picked by the labels' language)", value="",
                                          placeholder=f"{DEFAULT_TEMPLATE} / {ZH_DEFAULT_TEMPLATE}")
                    top_k = gr.Slider(1, 20, value=5, step=1, label="Top-k")
                    zs_go = gr.Button("Classify", variant="primary", elem_id="classify-button")
                with gr.Column():
                    zs_label = gr.Label(label="First image", elem_id="classify-label")
                    zs_gallery = gr.Gallery(label="Top-1 per image (click to see its probabilities)", columns=4, format="png")
                    zs_table = gr.Dataframe(headers=["image", "label", "probability"], interactive=False)
                    zs_state = gr.State([])
                    zs_info = gr.Markdown(label="scorer")
            zs_go.click(_user_errors(classify), [zs_images, labels, template, top_k, scorer_choice],
                        [zs_label, zs_table, zs_state, zs_gallery, zs_info], api_name="classify", concurrency_limit=4)

            def show_selected(per_image: list[dict], evt: gr.SelectData):
                return per_image[evt.index] if per_image and evt.index < len(per_image) else {}

            zs_gallery.select(show_selected, [zs_state], [zs_label], api_visibility="private")

        with gr.Tab("Similarity"):
            with gr.Row():
                with gr.Column():
                    sim_images = gr.File(label=f"Images (up to {MAX_UPLOADS})", file_count="multiple",
                                         file_types=["image"], elem_id="similarity-files")
                    texts = gr.Textbox(label="Texts (one per line)", lines=4, placeholder="a dog\na cat\n一只戴眼镜的狗")
                    sim_go = gr.Button("Compute similarity", variant="primary", elem_id="similarity-button")
                with gr.Column():
                    heatmap = gr.Plot(label="Cosine similarity")
                    sim_table = gr.Dataframe(headers=["image", "text", "cosine", "CLIP score"], interactive=False)
                    sim_info = gr.Markdown(label="scorer")
                    sim_meta = gr.JSON(label="How uploaded clipdemo PNGs were made (from their metadata)")
            sim_go.click(_user_errors(similarity), [sim_images, texts, scorer_choice],
                         [heatmap, sim_table, sim_info, sim_meta],
                         api_name="similarity", concurrency_limit=4)
        with gr.Tab("Moderate"):
            with gr.Row():
                with gr.Column():
                    mod_images = gr.File(label=f"Images (up to {MAX_UPLOADS})", file_count="multiple",
                                         file_types=["image"], elem_id="moderate-files")
                    mod_go = gr.Button("Check", variant="primary", elem_id="moderate-button")
                with gr.Column():
                    mod_verdict = gr.Markdown(label="verdict")
                    mod_gallery = gr.Gallery(label="Images as shown (flagged ones blurred)", columns=4, format="png")
                    mod_table = gr.Dataframe(headers=["image", "concept", "score", "flagged"], interactive=False)
            mod_go.click(_user_errors(moderate), [mod_images], [mod_verdict, mod_table, mod_gallery],
                         api_name="moderate", concurrency_limit=2)

        with gr.Tab("Evaluate"):
            with gr.Row():
                with gr.Column():
                    archive = gr.File(label="Zip of class folders (one folder of images per class)",
                                      file_types=[".zip"], elem_id="eval-zip")
                    label_lines = gr.Textbox(value="", label="Labels (optional, one 'folder: label' per line)",
                                             lines=3, placeholder="cat: 猫\ndog: 狗")
                    templates = gr.Dropdown([*TEMPLATE_SETS, "custom"], value="single",
                                            label="Templates (single picks the labels' language)")
                    custom = gr.Textbox(value="", label="Custom template",
                                        placeholder="a photo of a {}, a type of pet.")
                    eval_go = gr.Button("Evaluate", variant="primary", elem_id="evaluate-button")
                with gr.Column():
                    eval_summary = gr.Markdown(label="summary")
                    eval_plot = gr.Plot(label="Confusion matrix")
                    eval_table = gr.Dataframe(headers=["class", "accuracy"], label="Per-class accuracy", interactive=False)
                    eval_mistakes = gr.Gallery(label="Misclassified (true → predicted)", columns=6, format="png")
                    eval_files = gr.File(label="Report files", file_count="multiple")
            eval_go.click(_user_errors(evaluate), [archive, label_lines, templates, custom, scorer_choice],
                          [eval_summary, eval_table, eval_plot, eval_mistakes, eval_files],
                          api_name="evaluate", concurrency_limit=1)
    return demo


def launch(studio: Studio, host: str = "127.0.0.1", port: int = 7860, share: bool = False, **kwargs) -> Any:
    """Serve the app. No extra allowed_paths: only gradio's own cache and temp files are served."""
    import os

    from ..speedups.memory import limit_malloc_arenas

    limit_malloc_arenas()  # before gradio starts its worker threads: keeps RSS level under load
    demo = build_app(studio)
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=2)
    return demo.launch(
        server_name=host,
        server_port=port,
        share=share,
        max_file_size=MAX_FILE_SIZE,
        auth=auth_from_env(os.environ.get("CLIPDEMO_AUTH")),
        show_error=True,
        **kwargs,
    )
