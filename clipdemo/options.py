"""Every server setting, declared once: its flag, environment variable, default, choices and help.

The CLI's flags, the environment parsing in `config.resolve_settings`, each model's `ModelSpec` and the
README's options table are all derived from OPTIONS. `python -m clipdemo.options` prints that table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import InputError

DEFAULT_SD_MODEL = "stabilityai/sd-turbo"
DEFAULT_CLIP_MODEL = "openai/clip-vit-base-patch32"
DEFAULT_TAESD = "madebyollin/taesd"
DEFAULT_ZH_CLIP_MODEL = "OFA-Sys/chinese-clip-vit-base-patch16"
DEFAULT_ZH_SD_MODEL = "IDEA-CCNL/Taiyi-Stable-Diffusion-1B-Chinese-v0.1"
DEFAULT_TRANSLATOR = "Helsinki-NLP/opus-mt-zh-en"
DEFAULT_PICK_MODEL = "yuvalkirstain/PickScore_v1"
DEFAULT_PICK_PROCESSOR = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
DEFAULT_SAFETY_MODEL = "CompVis/stable-diffusion-safety-checker"

DTYPES = ("auto", "fp32", "bf16", "fp16")
ZH_MODES = ("translate", "native")
MODERATION_MODES = ("auto", "on", "off")
RANK_KEYS = ("clip", "pickscore")
PICKSCORE_MODES = ("auto", "on", "off")
COMPILE_CHOICES = ("auto", "on", "off")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")

# Where a setting's value came from; the first two mean the user named it.
FLAG, ENV, PRESET, DEFAULT = "flag", "env", "preset", "default"


@dataclass(frozen=True)
class Option:
    name: str  # the Settings field
    help: str
    default: Any = None
    choices: tuple[str, ...] = ()
    kind: str = "text"  # text | model | choice | float | bool | list
    model: str = ""  # for kind "model": what it is, as error messages name it
    scope: str = "all"  # all | generation (commands that generate) | describe | serve
    preset: bool = False  # a preset may set it (config.PRESETS)
    flag_name: str = ""  # when the flag differs from --name (e.g. --no-fast-conv)

    @property
    def flag(self) -> str:
        return self.flag_name or "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return "CLIPDEMO_" + self.name.upper()

    def parse_env(self, raw: str) -> Any:
        """An environment variable's text as this option's value; a clear error when it is not one."""
        raw = raw.strip()
        if self.kind == "bool":
            if raw.lower() in TRUE_WORDS:
                return True
            if raw.lower() in FALSE_WORDS:
                return False
            raise InputError(f"{self.env} must be one of {'/'.join(TRUE_WORDS)} or {'/'.join(FALSE_WORDS)} "
                             f"(got '{raw}').")
        if self.kind == "float":
            try:
                return float(raw)
            except ValueError:
                raise InputError(f"{self.env} must be a number (got '{raw}').") from None
        if self.kind == "list":
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        return raw

    def check(self, value: Any) -> Any:
        if self.choices and value not in self.choices:
            raise InputError(f"Unknown {self.flag.lstrip('-')} '{value}'. Choose one of: {', '.join(self.choices)}.")
        return value


OPTIONS: tuple[Option, ...] = (
    # The preset names are config.PRESETS' keys (a test checks they agree).
    Option("preset", "model set and generation defaults: default (Hub models) or demo (offline animals and shapes)",
           default="default", choices=("default", "demo"), kind="choice"),
    Option("sd_model", "diffusers text-to-image pipeline: Hub id or local folder", default=DEFAULT_SD_MODEL,
           kind="model", model="Stable Diffusion", scope="generation", preset=True),
    Option("clip_model", "CLIP that ranks images and scores English text: Hub id or local folder",
           default=DEFAULT_CLIP_MODEL, kind="model", model="CLIP", preset=True),
    Option("zh_clip_model", "Chinese-capable CLIP (ChineseCLIP, AltCLIP, ...) for text with CJK characters",
           default=DEFAULT_ZH_CLIP_MODEL, kind="model", model="Chinese CLIP", preset=True),
    Option("zh_mode", "Chinese prompts: translate (zh→en, then --sd-model) or native (--zh-sd-model)",
           default="translate", choices=ZH_MODES, kind="choice", scope="generation", preset=True),
    Option("zh_sd_model", "Chinese-native Stable Diffusion for --zh-mode native", default=DEFAULT_ZH_SD_MODEL,
           kind="model", model="Chinese Stable Diffusion", scope="generation", preset=True),
    Option("translator", "zh→en seq2seq model for --zh-mode translate", default=DEFAULT_TRANSLATOR,
           kind="model", model="translator", scope="generation"),
    Option("pick_model", "PickScore model, or 'none'", default=DEFAULT_PICK_MODEL, kind="model",
           model="PickScore", scope="generation", preset=True),
    Option("pickscore", "also score with PickScore: auto is on with a GPU and off on the CPU, where its "
           "ViT-H/14 is costly (one click away in Generate)", default="auto", choices=PICKSCORE_MODES,
           kind="choice", scope="generation"),
    Option("rank_by", "the score that sorts the candidates", default="clip", choices=RANK_KEYS, kind="choice",
           scope="generation"),
    Option("moderation", "auto: moderate when a checker loads; on: refuse to show unchecked images; off: "
           "operators only", default="auto", choices=MODERATION_MODES, kind="choice", scope="generation"),
    Option("safety_model", "safety checker (diffusers format), or 'concepts' for a CLIP concept check "
           "(the CPU's default)", default=DEFAULT_SAFETY_MODEL, kind="model", model="safety checker",
           scope="generation", preset=True),
    Option("moderation_threshold", "flag an image when its top concept score exceeds this (default: the "
           "checker's own)", kind="float", scope="generation"),
    Option("moderation_concepts", "concepts the 'concepts' checker flags (comma-separated in the "
           "variable; default: a built-in list)", default=(), kind="list", scope="generation", preset=True),
    Option("decoder", "auto (TAESD on the CPU), taesd, full, or an AutoencoderTiny folder", default="auto",
           kind="model", model="tiny decoder (TAESD)", scope="generation"),
    Option("compile", "torch.compile the UNet and the decoder: auto is on with a GPU (warmed up once at start) "
           "and off on the CPU", default="auto", choices=COMPILE_CHOICES, kind="choice", scope="generation"),
    Option("compile_mode", "torch.compile's mode with --compile: default, reduce-overhead (CUDA graphs on a "
           "GPU) or max-autotune", default="default", choices=COMPILE_MODES, kind="choice", scope="generation"),
    Option("channels_last", "channels-last memory layout for the UNet and decoder on CUDA (ignored on the CPU)",
           default=False, kind="bool", scope="generation"),
    Option("cpu_offload", "move idle models to the CPU, for small GPUs", default=False, kind="bool",
           scope="generation"),
    Option("fast_conv", "Winograd/im2col CPU convolutions: faster, same images to fp32 rounding; "
           "--no-fast-conv or =0 keeps PyTorch's own",
           default=True, kind="bool", scope="generation", flag_name="--no-fast-conv"),
    Option("fast_attention", "blocked bf16 CPU attention: faster than PyTorch's fused kernel, "
           "which computes in fp32; --no-fast-attention or =0 keeps it", default=True,
           kind="bool", scope="generation", flag_name="--no-fast-attention"),
    Option("runs_min_age_hours", "a server keeps each run's files at least this long, for the page that made "
           "them", default=1.0, kind="float", scope="serve"),
    Option("runs_max_age_hours", "a server deletes runs, reports, unpacked zips and Gradio's copies older than "
           "this", default=24.0, kind="float", scope="serve"),
    Option("runs_max_gb", "a server keeps its runs and Gradio's copies within this many GB, least recently used "
           "out first", default=2.0, kind="float", scope="serve"),
    Option("disk_headroom_mb", "free space kept on the disk a run is written to; below it a server prunes old "
           "runs, and a run that still does not fit is refused", default=300.0, kind="float", scope="generation"),
    Option("max_wait_minutes", "a server refuses a request whose expected wait (from each endpoint's average run "
           "time) is longer than this, and tells the visitor that wait", default=10.0, kind="float", scope="serve"),
    Option("compare_models", "extra text-to-image models the Compare tab may pick (comma-separated in the "
           "variable)", default=(), kind="list", scope="serve"),
    Option("phrases", "phrase bank that describes images: builtin (objects, colours, styles, media, lighting in "
           "English and Chinese), shapes (the demo world's words), a JSON bank, or a text file with one "
           "phrase per line", default="builtin",
           scope="describe", preset=True),
    Option("dtype", "weights dtype; auto: fp16 on CUDA, bf16 on a CPU with native bf16, else fp32",
           default="auto", choices=DTYPES, kind="choice"),
    Option("device", "cuda, mps or cpu; auto picks the first available", default="auto"),
)
BY_NAME = {option.name: option for option in OPTIONS}


def in_scope(option: Option, scope: str) -> bool:
    """Whether a command of this scope (all, generation, describe, serve) takes the option's flag."""
    return option.scope in ("all", scope) or (scope == "serve" and option.scope in ("generation", "describe"))


def markdown_table() -> str:
    """The README's options table."""
    rows = ["| flag | environment variable | default | what |", "|---|---|---|---|"]
    for o in OPTIONS:
        default = ("on" if o.default else "off") if o.kind == "bool" else o.default
        shown = f"`{default}`" if default not in (None, ()) else "—"
        choices = f" ({', '.join(f'`{c}`' for c in o.choices)})" if o.choices else ""
        rows.append(f"| `{o.flag}` | `{o.env}` | {shown} | {o.help}{choices} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
