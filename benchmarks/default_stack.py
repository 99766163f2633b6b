"""The default configuration exactly as `python app.py` runs it, against the CLIP-only path, in one run.

Every default model is built with its real architecture and random weights and laid out in a Hugging Face
cache the way its Hub repository is (tests/hub_cache.py: CLIP's and the translator's `.bin` on main, the rest
safetensors). The app then runs from that cache with HF_HUB_OFFLINE=1 and no model named, as a user's
machine runs it after the first download.

1. Per image: a default generate (N=4, 512², 1 step) against the same run with PickScore and moderation
   off (CLIP only), and each option beside it (PickScore on; CompVis' checker instead of the concept check),
   timed in alternating rounds in one fresh process. Each part's share of a default generate comes from
   timing hooks on the models; the Chinese path (translator + Chinese CLIP) is timed the same way.
2. Memory: `python app.py` as a server, every tab used once through gradio_client (a Chinese prompt
   included), then the server's peak RSS.
3. GPU memory in fp16 (no GPU here): the default GPU set's weights in fp16 plus the activations of a
   batch-4 UNet step and full-VAE decode, measured as the peak RSS they add in bf16 (same bytes as fp16), or
   half of what they add in fp32 on a CPU without native bf16.

    python -m benchmarks default-stack [--out DIR] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.servers import free_port

from .common import library_versions, machine, print_table, scratch_folder, write_result

ROOT = Path(__file__).resolve().parent.parent
PROMPT, PROMPT_ZH = "a dog wearing glasses", "一只戴眼镜的狗"
GIB = 2**30


def build_cache(home: Path, models: Path) -> None:
    """Save every default model's architecture and lay it out as its Hub repository."""
    from tests.hub_cache import add_repo

    from .models import (save_chinese_clip_b16_architecture, save_clip_b32_architecture, save_opus_mt_architecture,
                         save_pickscore_architecture, save_safety_checker_architecture, save_sd_turbo_architecture,
                         save_taesd_architecture)

    builders = {
        "stabilityai/sd-turbo": save_sd_turbo_architecture,
        "madebyollin/taesd": save_taesd_architecture,
        "openai/clip-vit-base-patch32": save_clip_b32_architecture,
        "OFA-Sys/chinese-clip-vit-base-patch16": save_chinese_clip_b16_architecture,
        "yuvalkirstain/PickScore_v1": save_pickscore_architecture,
        "CompVis/stable-diffusion-safety-checker": save_safety_checker_architecture,
        "Helsinki-NLP/opus-mt-zh-en": save_opus_mt_architecture,
    }
    for repo_id, build in builders.items():
        started = time.perf_counter()
        folder = build(models / repo_id.replace("/", "--"))
        add_repo(home, repo_id, folder, link=True)
        if repo_id == "yuvalkirstain/PickScore_v1":  # its processor repo: same preprocessing and tokenizer
            add_repo(home, "laion/CLIP-ViT-H-14-laion2B-s32B-b79K", folder, link=True)
        print(f"  built {repo_id} in {time.perf_counter() - started:.0f} s", flush=True)


def child_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLIPDEMO_")}
    env.update(HF_HOME=str(home), HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", HF_HUB_DISABLE_TELEMETRY="1",
               PYTHONPATH=str(ROOT))
    return env


def run_child(code: str, home: Path, *args: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=child_env(home), capture_output=True,
                          text=True)
    found = [line for line in proc.stdout.splitlines() if line.startswith("RESULT=")]
    if proc.returncode != 0 or not found:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(found[-1].split("=", 1)[1])


# Step 1, in a fresh process: the configurations share the loaded models (one ModelCache per process).
TIMING_CHILD = r'''
import json, statistics, sys, time
import torch
from clipdemo import GenerationRequest, Studio, resolve_settings

rounds = int(sys.argv[1])
PROMPT, PROMPT_ZH = sys.argv[2], sys.argv[3]
configs = {
    "clip_only": resolve_settings(pickscore="off", moderation="off"),
    "default": resolve_settings(),  # exactly what `python app.py` resolves with no flags and no environment
    "default_plus_pickscore": resolve_settings(pickscore="on"),
    "compvis_checker": resolve_settings(safety_model="CompVis/stable-diffusion-safety-checker"),
}
studios = {name: Studio(s, allow_fallback=False) for name, s in configs.items()}
default = studios["default"]
assert default.settings.sd_model == "stabilityai/sd-turbo" and not default.notices, default.notices

def request(prompt, seed=0):
    return GenerationRequest(prompt, n=4, steps=1, guidance=0.0, width=512, height=512, seed=seed)

for studio in studios.values():
    studio.pipeline().set_progress_bar_config(disable=True)
    result = studio.generate(request(PROMPT))  # warm-up: every model loads, kernels are picked
    assert not [n for n in result.notices if "could not be loaded" in n or "unavailable" in n], result.notices

times = {name: [] for name in studios}
for r in range(rounds):  # alternating order, so the machine's drift slows every configuration alike
    for name in (list(studios) if r % 2 == 0 else list(studios)[::-1]):
        start = time.perf_counter()
        studios[name].generate(request(PROMPT, seed=r))
        times[name].append(time.perf_counter() - start)

class Parts:
    """Wall time spent inside given modules' forward calls (CPU: synchronous)."""
    def __init__(self, modules):
        self.seconds = {name: 0.0 for name in modules}
        self.handles = []
        for name, module in modules.items():
            started = []
            def before(m, a, k=None, name=name, started=started): started.append(time.perf_counter())
            def after(m, a, o, name=name, started=started): self.seconds[name] += time.perf_counter() - started.pop()
            self.handles += [module.register_forward_pre_hook(before), module.register_forward_hook(after)]
    def remove(self):
        for h in self.handles: h.remove()

def modules(studio, chinese=False):
    pipe = studio.pipeline()
    found = {"unet": pipe.unet, "text_encoder": pipe.text_encoder, "decoder": pipe.vae.decoder}
    english = studio.scorer().model
    found["clip"] = english.vision_model
    found["clip_text"] = english.text_model
    pick = studio.models.loaded_scorer(studio.settings.pick_model)
    if pick is not None:
        found["pickscore"], found["pickscore_text"] = pick.model.vision_model, pick.model.text_model
    checker, _ = studio.moderator()
    if checker is not None and hasattr(checker, "model"):
        found["safety_checker"] = checker.model.vision_model
    if chinese:
        zh = studio.models.loaded_scorer(studio.settings.zh_clip_model).model
        found["zh_clip"], found["zh_clip_text"] = zh.vision_model, zh.text_model
        found["translator"] = studio.models.translator()[0]
    return found

def profile(studio, prompt, chinese=False, repeats=2):
    studio.generate(request(prompt, seed=99))  # loads what this path needs
    parts = Parts(modules(studio, chinese))
    totals = []
    for i in range(repeats):
        start = time.perf_counter()
        studio.generate(request(prompt, seed=100 + i))  # a cached prompt: its text embeddings are reused
        totals.append(time.perf_counter() - start)
    parts.remove()
    total = sum(totals)
    seconds = {k: v / repeats for k, v in parts.seconds.items()}
    seconds["clip"] += seconds.pop("clip_text")
    for key in ("pickscore", "zh_clip"):
        if key + "_text" in seconds:
            seconds[key] += seconds.pop(key + "_text")
    seconds["other"] = total / repeats - sum(seconds.values())
    return {"generate_s": total / repeats, "parts_s": seconds,
            "shares": {k: v * repeats / total for k, v in seconds.items()}}

profiles = {"default": profile(default, PROMPT), "default_plus_pickscore": profile(studios["default_plus_pickscore"], PROMPT),
            "compvis_checker": profile(studios["compvis_checker"], PROMPT),
            "default_chinese": profile(default, PROMPT_ZH, chinese=True)}
translated = default.generate(request(PROMPT_ZH)).translated_prompt
print("RESULT=" + json.dumps({"times_s": times, "medians_s": {k: statistics.median(v) for k, v in times.items()},
                              "profiles": profiles, "dtype": str(default.dtype), "decoder": default.decoder_name,
                              "translation_tokens": len(default.translate(PROMPT_ZH)[0].split()) if translated else 0,
                              "models": default.generate(request(PROMPT_ZH)).models}))
'''


def peak_rss_of(pid: int) -> tuple[float, float]:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    value = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in status if line.startswith(("VmHWM", "VmRSS"))}
    return value["VmHWM"] / GIB, value["VmRSS"] / GIB


def server_memory(home: Path, work: Path, **extra_env: str) -> dict:
    """Step 2: `python app.py`, every tab once (a Chinese prompt too), then the server's peak RSS."""
    import zipfile

    from gradio_client import Client, handle_file

    port = free_port()
    env = child_env(home) | {"GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port)} | extra_env
    log = open(work / "server.log", "w")
    server = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    used = {}
    try:
        url = f"http://127.0.0.1:{port}/"
        for _ in range(240):  # bounded: at most 4 minutes to start
            if server.poll() is not None:
                raise RuntimeError((work / "server.log").read_text()[-3000:])
            try:
                client = Client(url, verbose=False)
                break
            except Exception:
                time.sleep(1)
        else:
            raise RuntimeError("the server did not start in 240 s")
        used["idle_gib"] = peak_rss_of(server.pid)[1]
        started = time.perf_counter()
        gallery, *_ = client.predict(PROMPT, api_name="/generate")
        client.predict(PROMPT_ZH, api_name="/generate")
        paths = [item["image"] if isinstance(item["image"], str) else item["image"]["path"] for item in gallery]
        images = [handle_file(path) for path in paths]
        client.predict(images[:2], "dog, cat, bird", api_name="/classify")
        client.predict(images[:2], "一只狗\na cat", api_name="/similarity")
        client.predict(images[:2], api_name="/moderate")
        archive = work / "classes.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            for i, path in enumerate(paths):
                zf.write(path, f"{'dog' if i % 2 else 'cat'}/{i}.png")
        client.predict(handle_file(str(archive)), api_name="/evaluate")
        client.predict(PROMPT, api_name="/compare")
        used["all_tabs_s"] = time.perf_counter() - started
        used["peak_gib"], used["rss_gib"] = peak_rss_of(server.pid)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    return used


# Step 3, in a fresh process: weights of the GPU default set, and activations measured as added peak RSS.
GPU_ESTIMATE_CHILD = r'''
import json, torch
from pathlib import Path
from clipdemo.config import DEFAULT_PICK_PROCESSOR
from clipdemo.loading import (MODELS, ModelSpec, cpu_has_native_bf16, load_clip, load_safety_checker, load_text2image,
                              load_translator)

cpu, bf16 = torch.device("cpu"), torch.bfloat16
half = bf16 if cpu_has_native_bf16() else torch.float32  # emulated bf16 would take many minutes; fp32 bytes halve
def spec(model_id): return ModelSpec("x", model_id, "", "")
def params(module): return sum(p.numel() for p in module.parameters())
pipe = load_text2image(spec("stabilityai/sd-turbo"), cpu, bf16)
counts = {"unet": params(pipe.unet), "text_encoder": params(pipe.text_encoder), "vae": params(pipe.vae)}
for role, model_id in {"clip": "openai/clip-vit-base-patch32", "pickscore": "yuvalkirstain/PickScore_v1",
                       "zh_clip": "OFA-Sys/chinese-clip-vit-base-patch16"}.items():
    processor = DEFAULT_PICK_PROCESSOR if role == "pickscore" else None
    counts[role] = params(load_clip(spec(model_id), cpu, bf16, processor)[0])
    MODELS.clear()
counts["safety_checker"] = params(load_safety_checker(spec("CompVis/stable-diffusion-safety-checker"), cpu, bf16)[0])
translator_params = params(load_translator(spec("Helsinki-NLP/opus-mt-zh-en"), cpu)[0])  # stays fp32
MODELS.clear()

def rss():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1]) * 1024
def peak():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) * 1024
with torch.inference_mode():
    pipe.to(half)
    latents = torch.randn(4, 4, 64, 64, dtype=half)
    states = torch.randn(4, 77, 1024, dtype=half)
    before = rss()
    Path("/proc/self/clear_refs").write_text("5")  # resets the peak RSS to the current RSS
    noise = pipe.unet(latents, torch.tensor([999]), encoder_hidden_states=states).sample
    images = pipe.vae.decode(noise / pipe.vae.config.scaling_factor).sample
    activations = (peak() - before) // (2 if half == torch.float32 else 1)
print("RESULT=" + json.dumps({"params": counts, "translator_params_fp32": translator_params,
                              "activation_bytes": activations}))
'''


def run(rounds: int) -> dict:
    work = scratch_folder("clipdemo-default-stack-")
    home = work / "hf"
    print("building the default models' architectures (random weights) in a Hub cache ...", flush=True)
    build_cache(home, work / "saved")
    print("estimating fp16 GPU memory ...", flush=True)
    gpu = run_child(GPU_ESTIMATE_CHILD, home)
    print("timing a default generate against the CLIP-only path ...", flush=True)
    timing = run_child(TIMING_CHILD, home, str(rounds), PROMPT, PROMPT_ZH)
    print("RAW_TIMING=" + json.dumps(timing), flush=True)  # kept in the log if a later step fails
    print("serving `python app.py` and using every tab once ...", flush=True)
    memory = server_memory(home, work)
    print("RAW_MEMORY=" + json.dumps(memory), flush=True)
    print("the same server in fp32, as on a CPU without native bf16 ...", flush=True)
    memory_fp32 = server_memory(home, work, CLIPDEMO_DTYPE="fp32")
    print("RAW_MEMORY_FP32=" + json.dumps(memory_fp32), flush=True)

    medians = timing["medians_s"]
    clip_only = medians["clip_only"]
    fp16 = {name: count * 2 / GIB for name, count in gpu["params"].items()}
    fp16["translator (fp32)"] = gpu["translator_params_fp32"] * 4 / GIB
    cuda_context_gib = 0.5  # CUDA context and cuDNN/cuBLAS workspaces, typical for one process
    gpu_total = sum(fp16.values()) + gpu["activation_bytes"] / GIB + cuda_context_gib
    default_profile = timing["profiles"]["default"]
    helpers = ("clip", "safety_checker", "pickscore", "translator", "zh_clip")
    helper_shares = {k: round(v, 4) for k, v in default_profile["shares"].items() if k in helpers}
    summary = {
        "default_vs_clip_only_per_image": round(medians["default"] / clip_only, 4),
        "default_plus_pickscore_vs_clip_only_per_image": round(medians["default_plus_pickscore"] / clip_only, 4),
        "compvis_checker_vs_clip_only_per_image": round(medians["compvis_checker"] / clip_only, 4),
        "default_peak_rss_gib": round(memory["peak_gib"], 2),
        "fp32_peak_rss_gib": round(memory_fp32["peak_gib"], 2),
        "helper_shares": helper_shares,
        "helper_shares_with_pickscore": {k: round(v, 4) for k, v in
                                         timing["profiles"]["default_plus_pickscore"]["shares"].items() if k in helpers},
        "helper_shares_with_compvis_checker": {k: round(v, 4) for k, v in
                                               timing["profiles"]["compvis_checker"]["shares"].items() if k in helpers},
        "helper_shares_chinese_prompt": {k: round(v, 4) for k, v in
                                         timing["profiles"]["default_chinese"]["shares"].items() if k in helpers},
        "chinese_vs_english_default_generate": round(timing["profiles"]["default_chinese"]["generate_s"]
                                                     / default_profile["generate_s"], 4),
        "gpu_fp16_estimate_gib": round(gpu_total, 2),
    }
    return {
        "benchmark": "default-stack",
        "what": "python app.py's default configuration on the CPU (sd-turbo, TAESD, CLIP ViT-B/32, moderation by the "
                "CLIP concept check, PickScore and CompVis' checker one switch away; Chinese: MarianMT + Chinese-CLIP) "
                "from a Hub-layout cache, "
                "random weights with the real architectures, N=4, 512x512, 1 step",
        "machine": machine(),
        "versions": library_versions(),
        "summary": summary,
        "per_generate_s": {k: round(v, 3) for k, v in medians.items()},
        "per_image_s": {k: round(v / 4, 3) for k, v in medians.items()},
        "times_s": timing["times_s"],
        "profiles": timing["profiles"],
        "dtype": timing["dtype"],
        "decoder": timing["decoder"],
        "models_as_loaded": timing["models"],
        "server_memory": memory,
        "server_memory_fp32": memory_fp32,
        "gpu_fp16_estimate": {"weights_gib": {k: round(v, 3) for k, v in fp16.items()},
                              "activations_gib": round(gpu["activation_bytes"] / GIB, 3),
                              "cuda_context_gib": cuda_context_gib, "total_gib": round(gpu_total, 2),
                              "set": "GPU defaults: sd-turbo with its full VAE, CLIP, PickScore on, safety checker, "
                                     "Chinese CLIP and translator once a Chinese prompt comes in"},
        "notes": ["The random-weight translator never emits its end token, so it decodes to the 96-token cap: "
                  "an upper bound on the Chinese path (real translations of short prompts stop after 10-20 tokens).",
                  "Shares come from forward hooks on each model; 'other' is the rest of the generate (scheduler, "
                  "image conversion, preprocessing). In the default, 'clip' counts the CLIP image tower for ranking "
                  "and for the concept check."],
    }


def report(data: dict) -> None:
    s = data["summary"]
    print_table("default configuration vs CLIP-only (same run)", [
        ("default / CLIP-only per image", f"{s['default_vs_clip_only_per_image']:.3f}x  (bar 1.15, goal 1.05)"),
        ("+ PickScore / CLIP-only", f"{s['default_plus_pickscore_vs_clip_only_per_image']:.3f}x"),
        ("CompVis checker / CLIP-only", f"{s['compvis_checker_vs_clip_only_per_image']:.3f}x"),
        ("Chinese / English default generate", f"{s['chinese_vs_english_default_generate']:.3f}x"),
        ("helper shares (default)", json.dumps(s["helper_shares"])),
        ("helper shares (+ PickScore)", json.dumps(s["helper_shares_with_pickscore"])),
        ("helper shares (Chinese prompt)", json.dumps(s["helper_shares_chinese_prompt"])),
        ("server peak RSS, every tab used", f"{s['default_peak_rss_gib']:.2f} GiB  (bar 14)"),
        ("the same in fp32", f"{s['fp32_peak_rss_gib']:.2f} GiB"),
        ("GPU fp16 estimate", f"{s['gpu_fp16_estimate_gib']:.2f} GiB  (bar 12)"),
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks default-stack", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="folder for the JSON (default benchmarks/results)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating timing rounds (default 3)")
    args = parser.parse_args(argv)
    data = run(args.rounds)
    path = write_result("default-stack", data, args.out)
    report(data)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
