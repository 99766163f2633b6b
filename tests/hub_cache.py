"""Hugging Face Hub caches laid out like the real default repositories, filled with tiny random weights.

The Hub cannot be reached from the tests, but what users' machines hold after one online run can be
rebuilt: `$HF_HOME/hub/models--ORG--NAME/` with `blobs/`, `snapshots/<commit>/<file>` links into them, and
`refs/main` (and `refs/refs/pr/N` for a pull-request revision) naming the commit. Which file sits on which
revision is what matters: it decides whether an offline load finds its weights.

Layout facts, per default repository (main branch unless noted):
- stabilityai/sd-turbo: a diffusers folder (model_index.json, scheduler/, tokenizer/, text_encoder/, unet/,
  vae/) with `model.safetensors` / `diffusion_pytorch_model.safetensors` in each model folder (fp16 variants
  beside them, which a default load does not read). Source: the repository's file list.
- madebyollin/taesd: config.json + diffusion_pytorch_model.safetensors (and .bin). Source: its file list;
  diffusers' AutoencoderTiny docs load it with from_pretrained.
- openai/clip-vit-base-patch32: config, processor and tokenizer files and `pytorch_model.bin`; **no
  model.safetensors on main**: it exists only on the conversion bot's revision `refs/pr/66`. Source: a public
  transformers-5 log (HEAD main/model.safetensors -> 404, then the weights fetched from refs/pr/66).
- OFA-Sys/chinese-clip-vit-base-patch16: config, preprocessor_config.json, vocab.txt, tokenizer_config.json
  and `pytorch_model.bin` (uploaded in 2022, before safetensors were the default). Built here with the
  .bin only, the harder case.
- yuvalkirstain/PickScore_v1: config.json + model.safetensors, no processor files; its processor comes from
  laion/CLIP-ViT-H-14-laion2B-s32B-b79K (preprocessor_config.json and tokenizer files on main). Source: the
  PickScore model card's example code.
- CompVis/stable-diffusion-safety-checker: config.json, preprocessor_config.json, model.safetensors and
  pytorch_model.bin. Source: its file list.
- Helsinki-NLP/opus-mt-zh-en: config.json, generation_config.json, source.spm, target.spm, vocab.json,
  tokenizer_config.json and `pytorch_model.bin`. Source: public download scripts fetch the .bin from main.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path

WEIGHTS = {"model.safetensors", "diffusion_pytorch_model.safetensors"}


@dataclass(frozen=True)
class Layout:
    """Where one repository keeps its weights: on main as safetensors or .bin, and/or on a PR revision."""

    main_weights: str | None  # "safetensors", "bin" or None (no weights on main)
    pr_safetensors: str | None = None  # e.g. "refs/pr/66": the conversion revision holds model.safetensors
    drop: tuple[str, ...] = ()  # files a folder saved here has but the repository does not (e.g. no processor)
    notes: list[str] = field(default_factory=list)


LAYOUTS = {
    "stabilityai/sd-turbo": Layout("safetensors"),
    "madebyollin/taesd": Layout("safetensors"),
    "openai/clip-vit-base-patch32": Layout("bin", pr_safetensors="refs/pr/66"),
    "OFA-Sys/chinese-clip-vit-base-patch16": Layout("bin"),
    "yuvalkirstain/PickScore_v1": Layout("safetensors", drop=("preprocessor_config.json", "processor_config.json",
                                                                "tokenizer.json", "tokenizer_config.json",
                                                                "vocab.json", "merges.txt", "special_tokens_map.json")),
    "laion/CLIP-ViT-H-14-laion2B-s32B-b79K": Layout("safetensors"),
    "CompVis/stable-diffusion-safety-checker": Layout("safetensors"),
    "Helsinki-NLP/opus-mt-zh-en": Layout("bin"),
}


# The files on each default repository's main branch, as its file list shows them (the weights the loader does not
# read, other precisions, other frameworks and single-file checkpoints included: a fetch must leave them alone).
REPO_FILES = {
    "stabilityai/sd-turbo": (
        ".gitattributes", "README.md", "model_index.json", "sd_turbo.safetensors", "output.jpg",
        "scheduler/scheduler_config.json",
        "text_encoder/config.json", "text_encoder/model.safetensors", "text_encoder/model.fp16.safetensors",
        "tokenizer/merges.txt", "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json",
        "tokenizer/vocab.json",
        "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "vae/config.json", "vae/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.fp16.safetensors"),
    "madebyollin/taesd": (".gitattributes", "README.md", "config.json", "diffusion_pytorch_model.bin",
                          "diffusion_pytorch_model.safetensors"),
    "openai/clip-vit-base-patch32": (
        ".gitattributes", "README.md", "config.json", "flax_model.msgpack", "merges.txt", "preprocessor_config.json",
        "pytorch_model.bin", "special_tokens_map.json", "tf_model.h5", "tokenizer.json", "tokenizer_config.json",
        "vocab.json"),
    "OFA-Sys/chinese-clip-vit-base-patch16": (
        ".gitattributes", "README.md", "config.json", "preprocessor_config.json", "pytorch_model.bin",
        "special_tokens_map.json", "tokenizer_config.json", "vocab.txt", "festival.jpg", "pokemon.jpeg"),
    "Helsinki-NLP/opus-mt-zh-en": (
        ".gitattributes", "README.md", "config.json", "generation_config.json", "metadata.xml", "pytorch_model.bin",
        "rust_model.ot", "source.spm", "target.spm", "tf_model.h5", "tokenizer_config.json", "vocab.json"),
    "yuvalkirstain/PickScore_v1": (".gitattributes", "README.md", "config.json", "model.safetensors"),
    "laion/CLIP-ViT-H-14-laion2B-s32B-b79K": (
        ".gitattributes", "README.md", "config.json", "merges.txt", "model.safetensors", "open_clip_config.json",
        "open_clip_model.safetensors", "open_clip_pytorch_model.bin", "preprocessor_config.json", "pytorch_model.bin",
        "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.json"),
    "CompVis/stable-diffusion-safety-checker": (
        ".gitattributes", "README.md", "config.json", "model.safetensors", "preprocessor_config.json",
        "pytorch_model.bin"),
}


def _blob(repo: Path, data: bytes) -> Path:
    digest = hashlib.sha256(data).hexdigest()
    path = repo / "blobs" / digest
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return path


def _linked_blob(repo: Path, source: Path) -> Path:
    """A blob that links to a large saved file instead of copying it (offline loads do not check hashes)."""
    digest = hashlib.sha256(f"{source.resolve()}:{source.stat().st_size}".encode()).hexdigest()
    path = repo / "blobs" / digest
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(source.resolve())
    return path


def _snapshot(repo: Path, ref: str, files: dict[str, bytes | Path]) -> Path:
    """Write files as one commit's snapshot (links into blobs/, as huggingface_hub does) and point ref at it."""
    fingerprint = sorted((k, str(v) if isinstance(v, Path) else hashlib.sha1(v).hexdigest()) for k, v in files.items())
    commit = hashlib.sha1(repr(fingerprint).encode()).hexdigest()
    snapshot = repo / "snapshots" / commit
    for name, data in files.items():
        target = snapshot / name
        target.parent.mkdir(parents=True, exist_ok=True)
        blob = _linked_blob(repo, data) if isinstance(data, Path) else _blob(repo, data)
        if not target.exists():
            target.symlink_to(Path("../" * (name.count("/") + 2)) / "blobs" / blob.name)
    ref_file = repo / "refs" / ref
    ref_file.parent.mkdir(parents=True, exist_ok=True)
    ref_file.write_text(commit)
    return snapshot


def _as_bin(safetensors_file: Path) -> bytes:
    """The same tensors as a PyTorch checkpoint (a zip-pickle of a state dict), as older uploads hold them."""
    import io

    import torch
    from safetensors.torch import load_file

    buffer = io.BytesIO()
    torch.save(load_file(str(safetensors_file)), buffer)
    return buffer.getvalue()


def _bin_name(name: str) -> str:
    """model.safetensors -> pytorch_model.bin; diffusion_pytorch_model.safetensors -> diffusion_pytorch_model.bin."""
    folder, _, file = name.rpartition("/")
    file = "pytorch_model.bin" if file == "model.safetensors" else file.replace(".safetensors", ".bin")
    return f"{folder}/{file}" if folder else file


def layout_files(saved: Path, layout: Layout, link: bool = False) -> tuple[dict, dict]:
    """(main's files, the conversion revision's files) of a saved folder laid out as `layout` says."""
    main: dict[str, bytes | Path] = {}
    pr: dict[str, bytes | Path] = {}
    for path in sorted(p for p in Path(saved).rglob("*") if p.is_file()):
        name = path.relative_to(saved).as_posix()
        if name in layout.drop:
            continue
        if path.name in WEIGHTS:
            if layout.main_weights == "safetensors":
                main[name] = path if link else path.read_bytes()
            elif layout.main_weights == "bin":
                main[_bin_name(name)] = _as_bin(path)
            if layout.pr_safetensors:
                pr[name] = path if link else path.read_bytes()
        else:
            main[name] = path.read_bytes()
    return main, pr


def add_repo(hf_home: Path, repo_id: str, saved: Path, layout: Layout | None = None, link: bool = False) -> Path:
    """Put the model saved in folder `saved` into the cache under `repo_id`, laid out as `layout` says.

    `link`: safetensors blobs link to the saved files instead of copying them (for multi-GB models).
    Returns the repository's cache folder.
    """
    layout = layout or LAYOUTS[repo_id]
    repo = Path(hf_home) / "hub" / ("models--" + repo_id.replace("/", "--"))
    main, pr = layout_files(saved, layout, link)
    _snapshot(repo, "main", main)
    if pr:
        _snapshot(repo, layout.pr_safetensors, pr)
    return repo


def remove_repo(hf_home: Path, repo_id: str) -> None:
    shutil.rmtree(Path(hf_home) / "hub" / ("models--" + repo_id.replace("/", "--")), ignore_errors=True)


def serve_repos(hub, saved: dict[str, Path], layouts: dict[str, Layout] | None = None) -> dict[str, dict[str, int]]:
    """Put each saved tiny model on a LocalHub (tests/local_hub.py) as its real repository holds it.

    Main gets the saved files with the weights in the repository's format, the conversion revision its
    safetensors, and every other non-text file of the real file list (REPO_FILES: other precisions, frameworks,
    single-file checkpoints, pictures) as random bytes that no loader may fetch. Returns {repo: {path: size}} of
    main's files the loader reads (the saved ones), written out here, not by the code under test.
    """
    import numpy as np

    rng = np.random.default_rng(5)
    loaded: dict[str, dict[str, int]] = {}
    for repo_id, saved_folder in saved.items():
        layout = (layouts or {}).get(repo_id) or LAYOUTS[repo_id]
        main, pr = layout_files(saved_folder, layout)
        for name, data in pr.items():
            hub.add_file(repo_id, name, data, revision=layout.pr_safetensors)
        if repo_id == "laion/CLIP-ViT-H-14-laion2B-s32B-b79K":  # PickScore's processor repo: processor files read
            read = {k: len(v) for k, v in main.items() if not k.endswith((".safetensors", ".bin"))}
        else:
            read = {k: len(v) for k, v in main.items()}
        for name in REPO_FILES.get(repo_id, ()):
            text = name.endswith((".json", ".txt", ".model", ".spm")) and ".fp16." not in name
            if name not in main and not text:  # a decoy: weights or files of a kind no loader reads
                main[name] = rng.integers(0, 256, 300_000, dtype=np.uint8).tobytes()
        for name, data in main.items():
            hub.add_file(repo_id, name, data)
        loaded[repo_id] = read
    return loaded
