"""The one object the UI and the CLI talk to: a facade over the model registry and each capability.

Each method takes plain Python values, validates them, and returns a small dataclass. Failures come
out as InputError (bad input) or ModelLoadError (a model that will not load); nothing here knows
about gradio or argparse. The work happens in: models (ModelRegistry), scorers, moderation,
generation (run.generate, step by step), compare, zeroshot, similarity and evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from PIL import Image

from . import compare as comparing, scorers
from .bench.prompts import BUNDLED_SETS, Prompt, load_prompts
from .bench.settings import KEYS as BENCH_KEYS, BenchSetting, parse_settings, with_model_paths
from .compare import SCHEDULERS, Setting
from .config import Settings
from .describe import LANGUAGES
from .downloads import DOWNLOADS
from .evaluation import TEMPLATE_SETS, ClassEdits
from .evaluation import EvalResult, ImageSet, load_templates
from .evaluation.workflow import EvalRun, EvalSource, evaluate_set, evaluate_source
from .generation import GenerationRequest, ProgressFn
from .models import pipeline as pipelines
from .generation.run import generate
from .generation.translate import translate
from .generation.output import RunFiles, write_run
from .generation.warmup import WarmUp, start_warm_up
from .images import load_image
from .loading import pick_device, pick_dtype, quiet_progress_bars
from .models import ModelRegistry, with_demo_fallback
from .moderation import ConceptChecker, SafetyChecker, Verdict, blur, default_checker, moderate, moderator
from .provenance import read_metadata
from .generation.ranking import RankResult
from .scorers import SCORER_CHOICES
from .retrieval.uploads import unpacked_images
from .scoring import ClipScorer
from .similarity import SimilarityResult, similarity
from .speedups.memory import keep_freed_buffers, limit_malloc_arenas
from .storage import DiskPolicy, PruneReport, ensure_space, prune, run_bytes
from .text import DEFAULT_TEMPLATE, check_template, check_texts, parse_labels
from .zeroshot import Classification, classify

# The facade's table: the use cases (Studio's methods) and the request and result types the shells name.
__all__ = ["BENCH_KEYS", "BUNDLED_SETS", "BenchSetting", "ClassEdits", "EvalRun", "EvalSource", "LANGUAGES",
           "RankResult", "RunFiles", "SCHEDULERS", "SCORER_CHOICES", "Setting", "Studio", "TEMPLATE_SETS",
           "ZeroShotResult", "with_demo_fallback"]


@dataclass
class ZeroShotResult:
    scorer: str  # the CLIP model that scored
    images: list[Classification]
    notices: list[str] = field(default_factory=list)
    template: str = DEFAULT_TEMPLATE


class Studio:
    def __init__(self, settings: Settings, allow_fallback: bool = True) -> None:
        settings, notice = with_demo_fallback(settings) if allow_fallback else (settings, None)
        device = pick_device(settings.device)
        dtype = pick_dtype(device, settings.dtype)
        # The registry's notices are shown in the page header and printed by the CLI.
        self.models = ModelRegistry(default_checker(settings, device), device, dtype, [notice] if notice else [])
        self.warm_up = WarmUp()  # the compiled UNet's first call, made at start (see start_warm_up)
        if device.type == "cpu":
            keep_freed_buffers()  # big activations reuse memory instead of faulting in new pages each call

    # -- what the page shows ----------------------------------------------------------------------
    @property
    def settings(self) -> Settings:
        return self.models.settings

    @settings.setter
    def settings(self, settings: Settings) -> None:
        self.models.settings = settings

    device = property(lambda self: self.models.device)
    dtype = property(lambda self: self.models.dtype)
    notices = property(lambda self: self.models.notices, doc="Shown in the page header and printed by the CLI.")
    decoder_name = property(lambda self: self.models.decoder_name, doc="What decodes latents.")
    decoder_model = property(lambda self: self.models.decoder_model, doc="The tiny decoder's model id, once in use.")

    @property
    def pickscore_default(self) -> bool:
        """Whether a generate scores with PickScore unless told otherwise (see scorers.pickscore_default)."""
        return scorers.pickscore_default(self.models)

    def helpers(self) -> dict[str, str]:
        return scorers.helpers(self.models)

    def follow_downloads(self, report=None, log=None) -> None:
        """Hear each Hub download's progress (`report(status)`, the CLI's bars) or one line as each ends (`log`)."""
        if report is not None:
            DOWNLOADS.report = report
        if log is not None:
            DOWNLOADS.log = log

    def start_serving(self) -> None:
        """Before a server takes visitors: level memory under threads, start the downloads and the warm-up."""
        limit_malloc_arenas()  # before gradio starts its worker threads: keeps RSS level under load
        quiet_progress_bars()  # the page shows its own progress; the log keeps one line per request
        self.models.start_downloads()  # the first visitor finds them under way
        self.start_warm_up()  # compile on (a GPU by default): its slow first call is made here, not by a visitor

    # -- files a shell reads or writes for its user ---------------------------------------------------
    @staticmethod
    def open_image(source, name: str | None = None) -> Image.Image:
        """An image from a path, bytes or array as RGB, with a clear error for anything else."""
        return load_image(source, name=name)

    def write_run(self, result: RankResult, out_dir, archive=None, prunable: Sequence = ()):
        """A run's PNGs with their provenance, manifest.json and (with `archive`) a zip; its RunFiles. The space
        is checked first, as generate does."""
        req = result.request
        ensure_space(out_dir, run_bytes(len(result.images), req.width, req.height), self.disk_policy, prunable)
        return write_run(result, out_dir, archive=archive)

    @property
    def disk_policy(self) -> DiskPolicy:
        """How long and how much a server keeps, and the free space it holds in reserve (from the settings)."""
        return DiskPolicy.from_settings(self.settings)

    @staticmethod
    def prune(folders, policy: DiskPolicy) -> PruneReport:
        """Temp folders down to the policy's age and size bounds, least recently used out first."""
        return prune(folders, policy)

    @staticmethod
    def read_provenance(path) -> dict | None:
        """The clipdemo parameters a PNG carries, or None."""
        return read_metadata(path)

    @staticmethod
    def blur_flagged(images: Sequence[Image.Image], verdicts: Sequence[Verdict]) -> list[Image.Image]:
        """The images as the page shows them: the flagged ones blurred, with a banner."""
        return [blur(image, verdict) if verdict.flagged else image for image, verdict in zip(images, verdicts)]

    @staticmethod
    def unpack_images(archive, workdir):
        """A zip of images unpacked once per content under `workdir`; the folder (images/, and index/ once searched)."""
        return unpacked_images(archive, workdir)

    def bench_settings(self, lines: Sequence[str], model_folders: bool = False) -> list[BenchSetting]:
        """Settings strings ('a: steps=4') parsed. With `model_folders` (the CLI, never the page) a model folder
        they name joins this studio's models."""
        settings = parse_settings(list(lines))  # bad input fails before any model loads
        if model_folders:
            self.settings = with_model_paths(self.settings, settings)
        return settings

    @staticmethod
    def bench_prompts(spec: str) -> list[Prompt]:
        """A bundled prompt set by name, or a prompts file."""
        return load_prompts(spec)

    def start_warm_up(self):
        """With compile on (auto: on a GPU), compile at the default settings in the background; the thread or None."""
        return start_warm_up(self.models, self.warm_up)

    def downloads(self):
        """Each Hub model's download state (clipdemo.downloads.ModelDownload), for the page."""
        return self.models.downloads()

    def await_models(self, prompt: str, report=None, pickscore: bool | None = None) -> None:
        """Wait for the models a generate of `prompt` needs, reporting download progress. Raises ModelLoadError."""
        self.models.await_models(prompt, report, pickscore)

    # -- models -----------------------------------------------------------------------------------
    def scorer(self) -> ClipScorer:
        """The English CLIP scorer, loaded on first use. Raises ModelLoadError."""
        return self.models.scorer()

    def scorer_for(self, texts: Sequence[str], choice: str | None = "auto") -> tuple[ClipScorer, list[str]]:
        return scorers.scorer_for(self.models, texts, choice)

    def ranking_scorers(self, clip: ClipScorer, pickscore: bool | None = None
                        ) -> tuple[list[tuple[str, ClipScorer]], list[str]]:
        return scorers.ranking_scorers(self.models, clip, pickscore)

    def prompt_notices(self, scorer: ClipScorer, prompt: str) -> list[str]:
        return scorers.prompt_notices(scorer, prompt)

    def moderator(self) -> tuple[SafetyChecker | ConceptChecker | None, list[str]]:
        return moderator(self.models)

    def pipeline(self, model_id: str | None = None) -> Any:
        """A text-to-image pipeline with the chosen decoder, built on first use. Raises ModelLoadError."""
        return self.models.pipeline(model_id)

    def generation_models(self) -> list[str]:
        return pipelines.generation_models(self.settings)

    def with_scheduler(self, pipe: Any, name: str) -> Any:
        return pipelines.with_scheduler(pipe, name, self.dtype)

    def translate(self, text: str) -> tuple[str | None, list[str]]:
        return translate(self.models, text)

    # -- capabilities -----------------------------------------------------------------------------
    def generate(self, request: GenerationRequest, progress: ProgressFn | None = None,
                 scorer: str = "auto", sd_model: str | None = None, scheduler: str = "default",
                 should_stop=None, pickscore: bool | None = None, out_dir=None, archive=None,
                 prunable: Sequence = ()) -> RankResult:
        """Generate N candidates and rank them by score against the prompt as typed (see generation.run);
        with `out_dir`, the run's files are written before it returns."""
        return generate(self.models, request, progress, scorer, sd_model, scheduler, should_stop, pickscore,
                        out_dir, archive, prunable)

    def compare(self, prompt: str, seed: int | None, n: int, a, b, width: int | None = None,
                height: int | None = None, progress: ProgressFn | None = None,
                scorer: str = "auto") -> comparing.Comparison:
        """Generate with settings A and B on the same seeds and compare their scores."""
        return comparing.compare(self.models, prompt, seed, n, a, b, width, height, progress, scorer)

    def moderate(self, images: Sequence[Image.Image]) -> tuple[list[Verdict], str]:
        """Verdicts for images (the Moderate tab), and the checker's name."""
        return moderate(self.models, images)

    def classify(self, images: Sequence[Image.Image], labels: str | Sequence[str], template: str | None = None,
                 top_k: int | None = None, names: Sequence[str] | None = None,
                 scorer: str = "auto") -> ZeroShotResult:
        label_list = parse_labels(labels if isinstance(labels, str) else list(labels))
        if not (template or "").strip():  # no template given: one in the labels' language
            template = load_templates("single", label_list)[1][0]
        template = check_template(template)  # before any model loads: bad input fails fast
        clip, notices = self.scorer_for(label_list + [template], scorer)
        return ZeroShotResult(clip.name, classify(clip, images, label_list, template, top_k, names), notices, template)

    def similarity(self, images: Sequence[Image.Image], texts: Sequence[str], names: Sequence[str] | None = None,
                   scorer: str = "auto") -> SimilarityResult:
        texts = check_texts(list(texts))  # before any model loads
        clip, notices = self.scorer_for(texts, scorer)
        result = similarity(clip, images, texts, names)
        result.scorer, result.notices = clip.name, notices
        return result

    def evaluate(self, image_set: ImageSet, templates: str = "single", batch_size: int = 64, num_workers: int = 0,
                 progress=None, accelerator=None, scorer: str = "auto", probe: str | Sequence[str] | None = None,
                 ablate: bool = False) -> EvalResult:
        """Zero-shot top-1/top-5 of a labelled image set (see evaluation.workflow.evaluate_set)."""
        return evaluate_set(self.models, image_set, templates, batch_size, num_workers, progress, accelerator, scorer,
                            probe, ablate)

    def evaluate_source(self, source: EvalSource, out=None, templates: str = "single", batch_size: int = 64,
                        num_workers: int = 0, progress=None, accelerator=None, scorer: str = "auto",
                        probe: str | Sequence[str] | None = None, ablate: bool = False) -> EvalRun:
        """Open a labelled folder, zip, CSV or CIFAR archive, evaluate it and write its report to `out`."""
        return evaluate_source(self.models, source, out, templates, batch_size, num_workers, progress, accelerator,
                               scorer, probe, ablate)

    def score_images(self, paths: Sequence[str], prompts_file: str | None = None, out=None, accelerator=None,
                     progress=None, scorer: str = "auto", skip_unprompted: bool = False):
        """Score images made elsewhere against their prompts (metadata or a CSV); see bench.score."""
        from .bench.score import score_images

        return score_images(self.models, list(paths), prompts_file, out, accelerator, progress, scorer, skip_unprompted)

    def index(self, folder, out, rebuild: bool = False, batch_size: int = 32, num_workers: int = 0, progress=None,
              accelerator=None, scorer: str = "auto", files=None, follow_symlinks: bool = True):
        """Embed a folder's images into an index at `out`, only the new or changed ones (see retrieval.index)."""
        from .retrieval import build_index
        from .retrieval.search import query_scorer

        clip, _ = query_scorer(self.models, None, None, scorer)  # images have no language: the English CLIP
        return build_index(clip, folder, out, files=files, rebuild=rebuild, follow_symlinks=follow_symlinks,
                             batch_size=batch_size, num_workers=num_workers, progress=progress,
                             accelerator=accelerator)

    def search(self, target, text: str | None = None, image=None, k: int = 10, scorer: str = "auto", progress=None,
               **where):
        """The k images of an index or folder closest to a text or an image (see retrieval.search)."""
        from .retrieval import search

        return search(self.models, target, text, image, k, scorer, progress, **where)

    def describe(self, images: Sequence[Image.Image], phrases: str | None = None, language: str = "en", k: int = 5,
                 names: Sequence[str] | None = None, scorer: str = "auto"):
        """Each image's best phrases from a bank (default: --phrases), and a prompt line from them (see describe)."""
        from .describe import DescribeResult, describe, load_bank

        bank = load_bank(phrases or self.settings.phrases, language)  # before any model loads: a bad file fails fast
        clip, notices = self.scorer_for([p for _, p in bank.phrases], scorer)
        return DescribeResult(clip.name, bank.name, bank.language, describe(clip, images, bank, k, names), notices)

    def bench(self, prompts: str | Sequence[str], settings: Sequence[str], seeds: int = 4, out="bench",
              seed_base: int = 0, progress=None, accelerator=None, scorer: str = "auto"):
        """One image per (setting, prompt, seed), scored and summarised with CIs; resumes a run in `out`."""
        from .bench.run import run_bench

        return run_bench(self.models, prompts, settings, seeds, out, seed_base, progress, accelerator, scorer)
