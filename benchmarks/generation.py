"""Generation benchmark: the product's default path against plain diffusers, in one run.

Plain diffusers usage: AutoPipelineForText2Image.from_pretrained(folder), fp32, its AutoencoderKL
decode, then nothing else. The product: clipdemo.Studio with dtype auto (fp32 or bf16 on CPU, fp16 on
CUDA), its default decoder (TAESD on CPU, the full VAE on a GPU), the fast fp32 CPU convolutions
(clipdemo.speedups.fastconv), inference mode, batched candidates, cached prompt embeddings, and CLIP re-ranking
included in its time. Contenders whose ratio is reported are timed in alternating rounds, so that a shared
machine's drifting speed slows both alike. The headline per-image times come from fresh processes, one
per contender, as a user would run each.

    python -m benchmarks [--device auto|cpu|cuda] [--out DIR] [--skip-compile]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from clipdemo.speedups.attention import CPUBlockedAttnProcessor, use_fast_cpu_attention
from clipdemo.speedups.fastconv import FastCPUConv2d, use_fast_cpu_convolutions

from .common import (gemm_peak_gflops, interleaved_times, library_versions, machine, median_time, print_table, rss_mb,
                     scratch_folder, write_result)
from .models import save_clip_b32_architecture, save_sd_turbo_architecture, save_taesd_architecture

PROMPT = "a dog wearing glasses"
SIZE = 512
DEVICE = "cpu"  # set by main(); every model and tensor of the run lives here


def sync() -> None:
    """Wait for queued GPU work, so that a timer measures the work and not its launch."""
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def unet_inputs(unet, dtype, batch=1):
    latents = torch.randn(batch, 4, SIZE // 8, SIZE // 8, dtype=dtype, device=DEVICE)
    states = torch.randn(batch, 77, unet.config.cross_attention_dim, dtype=dtype, device=DEVICE)
    return latents, torch.tensor([999], device=DEVICE), states


def unet_flops(unet, dtype) -> int:
    """FLOPs of one step, attention included: counted with diffusers' classic attention (plain matrix
    multiplies), because the counter cannot see inside the CPU's fused attention kernel."""
    from diffusers.models.attention_processor import AttnProcessor
    from torch.utils.flop_counter import FlopCounterMode

    processors = unet.attn_processors
    unet.set_attn_processor(AttnProcessor())
    latents, t, states = unet_inputs(unet, dtype)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        unet(latents, t, encoder_hidden_states=states)
    unet.set_attn_processor(processors)
    return counter.get_total_flops()


# Runs the CLI in a fresh interpreter, then prints that process's own peak RSS. The kernel folds the
# parent's memory at fork into a child's ru_maxrss, so getrusage(RUSAGE_CHILDREN) would report the
# benchmark's own size; VmHWM in /proc/self/status counts only the child's memory since exec.
CHILD = """
import resource, runpy, sys
sys.argv = ["clipdemo"] + sys.argv[1:]
try:
    runpy.run_module("clipdemo", run_name="__main__")
finally:
    try:
        status = open("/proc/self/status").read()
        kb = int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1])
    except OSError:  # no /proc: the best the platform offers
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"PEAK_RSS_KB={kb}", file=sys.stderr)
"""


# One contender in a fresh process: warm-up, then `calls` timed calls, printed as JSON. In one shared
# process the two pipelines' allocations interact: plain diffusers' KL decode ran 25-35% slower beside
# the product's models than alone (and faster once the product had changed glibc's settings), which
# would bias the ratio either way.
PER_IMAGE_CHILD = """
import json, sys, time, torch
contender, sd_dir, clip_dir, taesd_dir, device, prompt, size, calls = sys.argv[1:9]
size, calls = int(size), int(calls)
if contender == "plain":
    from diffusers import AutoPipelineForText2Image
    pipe = AutoPipelineForText2Image.from_pretrained(sd_dir, torch_dtype=torch.float32).to(device)
    pipe.set_progress_bar_config(disable=True)
    runs = {"plain": lambda: pipe(prompt, num_inference_steps=1, guidance_scale=0.0, height=size, width=size)}
else:
    from clipdemo import GenerationRequest, Studio, resolve_settings
    studio = Studio(resolve_settings(sd_model=sd_dir, clip_model=clip_dir, decoder=taesd_dir if device == "cpu" else "full",
                                     pick_model="none", moderation="off", device=device))
    studio.pipeline().set_progress_bar_config(disable=True)
    def generate(text):
        return studio.generate(GenerationRequest(text, n=1, steps=1, guidance=0.0, width=size, height=size, seed=0))
    # The same prompt again (its embeddings come from the cache), and a new prompt each call (the text
    # encoder runs, as for a user's first try of a prompt).
    runs = {"ours": lambda: generate(prompt), "ours_new_prompt": lambda: generate(f"{prompt} {time.perf_counter()}")}
for run in runs.values():
    run()  # warm-up: kernels picked, caches filled
    run()  # at N=1 the UNet's layers keep their Winograd weights from the second image (clipdemo/speedups/fastconv.py)
times = {name: [] for name in runs}
for _ in range(calls):
    for name, run in runs.items():
        start = time.perf_counter()
        run()  # returns PIL images: any GPU work has finished
        times[name].append(time.perf_counter() - start)
print("TIMES=" + json.dumps(times))
print("PEAK_RSS_KB=" + next(line for line in open("/proc/self/status") if line.startswith("VmHWM:")).split()[1])
"""


def per_image_in_fresh_processes(sd_dir: Path, clip_dir: Path, taesd_dir: Path,
                                 rounds: int = 2) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Seconds per N=1 image of plain diffusers and the product, each in its own fresh processes, and
    each contender's highest peak RSS in MB over those processes (repeated calls: the product's kept
    Winograd weights included).

    The processes alternate (plain, ours, ours, plain, ...) so that the machine's drift slows both alike.
    """
    times: dict[str, list[float]] = {"plain": [], "ours": [], "ours_new_prompt": []}
    peak_rss_mb = {"plain": 0.0, "ours": 0.0}
    for i in range(rounds):
        for contender in (["plain", "ours"] if i % 2 == 0 else ["ours", "plain"]):
            calls = 5 if DEVICE == "cuda" else (2 if contender == "plain" else 3)
            proc = subprocess.run(
                [sys.executable, "-c", PER_IMAGE_CHILD, contender, str(sd_dir), str(clip_dir), str(taesd_dir),
                 DEVICE, PROMPT, str(SIZE), str(calls)], capture_output=True, text=True)
            found = [line for line in proc.stdout.splitlines() if line.startswith("TIMES=")]
            if proc.returncode != 0 or not found:
                raise RuntimeError(proc.stderr[-2000:])
            for name, values in json.loads(found[-1].split("=", 1)[1]).items():
                times[name] += values
            peak = [line for line in proc.stdout.splitlines() if line.startswith("PEAK_RSS_KB=")]
            peak_rss_mb[contender] = max(peak_rss_mb[contender], int(peak[-1].split("=")[1]) / 1024)
    return times, peak_rss_mb


def cold_start(sd_dir: Path, clip_dir: Path, taesd_dir: Path, out: Path) -> tuple[float, float]:
    """(seconds from process start to the first ranked result on disk, peak RSS in MB of that process)."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, "generate", PROMPT, "-n", "1", "--seed", "0", "--out", str(out),
         "--sd-model", str(sd_dir), "--clip-model", str(clip_dir), "--decoder", str(taesd_dir),
         "--pick-model", "none", "--moderation", "off", "--device", DEVICE],
        capture_output=True, text=True,
    )
    elapsed = time.perf_counter() - started
    peak = [line for line in proc.stderr.splitlines() if line.startswith("PEAK_RSS_KB=")]
    if proc.returncode != 0 or not peak:
        raise RuntimeError(proc.stderr[-2000:])
    return elapsed, int(peak[-1].split("=")[1]) / 1024


def memory_over_calls(calls: int = 50) -> dict:
    """RSS across successive generate calls (demo models: the leak check does not depend on size)."""
    from clipdemo import GenerationRequest, Studio, resolve_settings

    studio = Studio(resolve_settings(preset="demo", device=DEVICE))  # the full product path, moderation included
    samples, gpu_samples = [], []
    for i in range(calls):
        studio.generate(GenerationRequest(f"a red circle number {i % 7}", n=4, steps=20, guidance=4.0,
                                          width=64, height=64, seed=i))
        gc.collect()
        samples.append(rss_mb())
        if DEVICE == "cuda":
            gpu_samples.append(torch.cuda.memory_allocated() / 2**20)
    settled = samples[9]  # after caches and allocator pools have warmed up
    result = {"calls": calls, "rss_mb_after_10": round(settled, 1), "rss_mb_after_50": round(samples[-1], 1),
              "growth_mb_10_to_50": round(samples[-1] - settled, 1), "rss_mb_samples": [round(s, 1) for s in samples]}
    if gpu_samples:
        result["cuda_allocated_mb_growth_10_to_50"] = round(gpu_samples[-1] - gpu_samples[9], 1)
    return result


def compile_on_off() -> dict:
    """torch.compile of the UNet, measured on the demo pipeline (compiling SD 2.1 on 2 cores takes too long)."""
    from clipdemo import GenerationRequest, Studio, resolve_settings

    request = GenerationRequest("a red circle", n=4, steps=20, guidance=4.0, width=64, height=64, seed=0)
    times = {}
    for compiled in (False, True):
        studio = Studio(resolve_settings(preset="demo", compile="on" if compiled else "off", moderation="off",
                                         device=DEVICE))
        studio.pipeline().set_progress_bar_config(disable=True)
        start = time.perf_counter()
        studio.generate(request)  # the first call compiles
        first = time.perf_counter() - start
        times["compiled" if compiled else "eager"] = {"first_call_s": first,
                                                      "warm_s": median_time(lambda: studio.generate(request), 3, 0)}
    return times


def run() -> dict:
    from diffusers import AutoencoderKL
    from diffusers.models.attention_processor import AttnProcessor

    from clipdemo import GenerationRequest, Studio, resolve_settings
    from clipdemo.generation import Candidate
    from clipdemo.generation.ranking import rank_candidates

    figures: dict = {}
    tmp = scratch_folder("clipdemo-bench-")
    print("building random-weight sd-turbo (SD 2.1 UNet), TAESD and CLIP ViT-B/32 ...", flush=True)
    sd_dir = save_sd_turbo_architecture(tmp / "sd-turbo-architecture")
    taesd_dir = save_taesd_architecture(tmp / "taesd-architecture")
    clip_dir = save_clip_b32_architecture(tmp / "clip-vit-b32-architecture")

    # -- plain diffusers and the product per image, each in fresh processes, alternating ---------------
    print("plain diffusers and clipdemo's default path, alternating fresh processes ...", flush=True)
    per_image_samples, repeated_calls_peak_rss = per_image_in_fresh_processes(sd_dir, clip_dir, taesd_dir)
    per_image = {name: statistics.median(values) for name, values in per_image_samples.items()}
    plain_one, ours_one, ours_one_new_prompt = per_image["plain"], per_image["ours"], per_image["ours_new_prompt"]

    # The measured path is text encoding, UNet, decode and CLIP scoring: no PickScore or safety checker.
    # The default decoder is TAESD on CPU and the pipeline's full VAE on a GPU (decoding is cheap there).
    decoder = str(taesd_dir) if DEVICE == "cpu" else "full"
    studio = Studio(resolve_settings(sd_model=str(sd_dir), clip_model=str(clip_dir), decoder=decoder,
                                     pick_model="none", moderation="off", device=DEVICE))
    studio.pipeline().set_progress_bar_config(disable=True)
    dtype = studio.dtype

    def generate_four():
        return studio.generate(GenerationRequest(PROMPT, n=4, steps=1, guidance=0.0, width=SIZE, height=SIZE, seed=0))

    latents = torch.randn(1, 4, SIZE // 8, SIZE // 8, device=DEVICE)
    fast_conv_used = any(isinstance(m, FastCPUConv2d) for m in studio.pipeline().unet.modules())

    def fast_conv_on_off(model, fn, rounds: int, warmup: int = 1, rewarm: bool = False) -> tuple[float, float]:
        """(seconds with the product's convolutions, seconds with PyTorch's own), alternating rounds.

        Switching off frees the kept Winograd weights; `rewarm` rebuilds them untimed after switching
        back on (at batch 1 a layer keeps them from its second image), so that "on" is timed as a user's
        third and later calls run.
        """
        def switch(enabled: bool):
            def call():
                use_fast_cpu_convolutions(model, enabled=enabled)
                if enabled and rewarm:
                    fn()
                    fn()
            return call

        with torch.inference_mode():
            times = interleaved_times({"on": fn, "off": fn}, rounds, warmup,
                                      prepare={"on": switch(fast_conv_used), "off": switch(False)})
        use_fast_cpu_convolutions(model, enabled=fast_conv_used)
        return times["on"], times["off"]

    def kl_decode_once(vae, dtype):
        vae.decode(latents.to(dtype) / vae.config.scaling_factor)
        sync()

    # Plain diffusers' KL decode ("off"), and the same VAE with the fast convolutions.
    plain_vae = AutoencoderKL.from_pretrained(sd_dir, subfolder="vae", torch_dtype=torch.float32).to(DEVICE)
    kl_decode_fast_conv, kl_decode = fast_conv_on_off(plain_vae, lambda: kl_decode_once(plain_vae, torch.float32),
                                                      rounds=2, warmup=0)
    del plain_vae
    gc.collect()

    # Warm up the batch-4 shapes first (cuDNN/oneDNN pick kernels per shape on the first call), twice
    # as the N=1 processes do.
    generate_four()
    result4 = generate_four()
    scorer = studio.scorer()
    # As generate hands them over: the 8-bit batch on the device, scored there.
    candidates = [Candidate(seed=i, image=item.image, pixels=torch.from_numpy(np.array(item.image)).permute(2, 0, 1)
                            .to(DEVICE)) for i, item in enumerate(result4.images)]

    def rerank_three_times():  # a new prompt each time: its embedding is not cached
        for _ in range(3):
            rank_candidates(candidates, f"{PROMPT} {time.perf_counter()}", [("clip", scorer)])

    # Alternated, so that the share's numerator and denominator see the same machine speed.
    n4_times = interleaved_times({"generate": generate_four, "rerank": rerank_three_times}, rounds=2, warmup=0)
    ours_four, rerank = n4_times["generate"], n4_times["rerank"] / 3

    pipe = studio.pipeline()
    from clipdemo.loading import ModelSpec, load_tiny_decoder

    taesd = load_tiny_decoder(ModelSpec("TAESD", str(taesd_dir), "--decoder", "CLIPDEMO_DECODER"), studio.device, dtype)

    def taesd_decode_once():
        taesd.decode(latents.to(dtype))
        sync()

    def text_encode_once():
        pipe.encode_prompt(PROMPT, pipe.device, 1, False)
        sync()

    taesd_decode, taesd_decode_default_conv = fast_conv_on_off(taesd, taesd_decode_once, rounds=3)
    with torch.inference_mode():
        # The product's own decoder in its dtype (fp16 full VAE on a GPU), against plain fp32 KL.
        product_decode = taesd_decode if DEVICE == "cpu" else median_time(lambda: kl_decode_once(pipe.vae, dtype), 2)
        text_encode = median_time(text_encode_once, repeats=2)

    # -- UNet efficiency and on/off measurements -------------------------------------------------
    print("UNet FLOP/s and switches ...", flush=True)
    unet = pipe.unet
    # FLOPs of the direct algorithms (the counter cannot see inside NNPACK's Winograd call).
    use_fast_cpu_convolutions(unet, enabled=False)
    flops = unet_flops(unet, dtype)
    latents_in, t, states = unet_inputs(unet, dtype)

    def unet_step():
        unet(latents_in, t, encoder_hidden_states=states)
        sync()

    # Four rounds end with "on", so the kept Winograd weights are in place for the timings below.
    unet_inference, unet_default_conv = fast_conv_on_off(unet, unet_step, rounds=4, rewarm=True)
    fast_attention_used = any(isinstance(p, CPUBlockedAttnProcessor) for p in unet.attn_processors.values())
    if fast_attention_used:  # bf16 on the CPU: blocked attention against PyTorch's fused kernel
        with torch.inference_mode():
            attention = interleaved_times({"on": unet_step, "off": unet_step}, rounds=4, warmup=1, prepare={
                "on": lambda: use_fast_cpu_attention(unet, True), "off": lambda: use_fast_cpu_attention(unet, False)})
        use_fast_cpu_attention(unet, True)
        unet_fused_attention = attention["off"]
    else:
        unet_fused_attention = unet_inference
    processors = unet.attn_processors

    def step_under(context):
        def step():
            with context():
                unet_step()
        return step

    # The step under no_grad, and with diffusers' classic attention, alternating with the product's step.
    product_attention = lambda: unet.set_attn_processor(dict(processors))  # noqa: E731 (it empties the dict)
    variants = interleaved_times(
        {"product": step_under(torch.inference_mode), "no_grad": step_under(torch.no_grad),
         "classic": step_under(torch.inference_mode)},
        rounds=3, warmup=1, prepare={"product": product_attention, "no_grad": product_attention,
                                     "classic": lambda: unet.set_attn_processor(AttnProcessor())})
    unet.set_attn_processor(processors)
    unet_product, unet_no_grad, unet_classic_attention = variants["product"], variants["no_grad"], variants["classic"]

    dtypes = [("fp32", torch.float32), ("bf16", torch.bfloat16)] + ([("fp16", torch.float16)] if DEVICE == "cuda" else [])
    size = 8192 if DEVICE == "cuda" else 2048
    peak = {name: gemm_peak_gflops(dt, DEVICE, size=size) for name, dt in dtypes}
    dtype_name = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
    # In fp32 the Winograd routes do fewer multiplications than counted, so the share is taken over the
    # step with PyTorch's convolutions; bf16's routes (im2col, blocked attention) do exactly the counted work.
    # The step and a square GEMM in the same dtype are timed in alternating rounds, so that the machine's
    # drifting speed (10-30% over minutes on this VM) cancels out of the share.
    winograd = dtype == torch.float32 and fast_conv_used
    a, b = (torch.randn(size, size, dtype=dtype, device=DEVICE) for _ in range(2))
    with torch.inference_mode():
        paired = interleaved_times({"unet": unet_step, "gemm": lambda: (torch.mm(a, b), sync())}, rounds=3, warmup=1,
                                   prepare={"unet": lambda: use_fast_cpu_convolutions(unet, enabled=not winograd)})
    use_fast_cpu_convolutions(unet, enabled=fast_conv_used)
    paired_peak = 2 * size**3 / paired["gemm"] / 1e9
    unet_gflops = flops / paired["unet"] / 1e9
    unet_effective_gflops = flops / unet_inference / 1e9

    gpu_peak_mb = torch.cuda.max_memory_allocated() / 2**20 if DEVICE == "cuda" else None
    del studio, pipe, unet, scorer, taesd
    gc.collect()
    if DEVICE == "cuda":
        torch.cuda.empty_cache()
    print("cold start and memory ...", flush=True)
    cold_seconds, peak_rss = cold_start(sd_dir, clip_dir, taesd_dir, tmp / "cold")
    memory = memory_over_calls(50)

    figures.update({
        "device": DEVICE,
        "decoder": "TAESD" if DEVICE == "cpu" else "full VAE",
        "dtype": dtype_name,
        "plain_diffusers_s_per_image": plain_one,
        "per_image_samples_s": per_image_samples,
        "clipdemo_s_per_image_n1": ours_one,
        "clipdemo_s_per_image_n1_new_prompt": ours_one_new_prompt,
        "fast_conv": fast_conv_used,
        "fast_attention": fast_attention_used,
        "unet_step_fused_attention_s": unet_fused_attention,
        "clipdemo_s_per_image_n4": ours_four / 4,
        "rerank_s_n4": rerank,
        "kl_vae_decode_s": kl_decode,
        "taesd_decode_s": taesd_decode,
        "taesd_decode_default_conv_s": taesd_decode_default_conv,
        "kl_vae_decode_fast_conv_s": kl_decode_fast_conv,
        "unet_step_default_conv_s": unet_default_conv,
        "product_decode_s": product_decode,
        "text_encoder_s": text_encode,
        "unet_step_s": unet_inference,
        "unet_step_beside_variants_s": unet_product,  # alternating with the two below
        "unet_step_no_grad_s": unet_no_grad,
        "unet_step_classic_attention_s": unet_classic_attention,
        "unet_gflop_per_step": flops / 1e9,
        "unet_gflops": unet_gflops,
        "unet_effective_gflops": unet_effective_gflops,
        "gemm_peak_gflops": peak,
        "gemm_peak_gflops_beside_unet": paired_peak,  # the share's denominator, alternating with the step
        "unet_step_beside_gemm_s": paired["unet"],
        "cold_start_s": cold_seconds,
        "peak_rss_mb_generate_and_rank": peak_rss,
        # The per-image processes after ten calls each (kept Winograd weights in place), and plain diffusers.
        "peak_rss_mb_repeated_calls": repeated_calls_peak_rss,
        "memory_50_calls": memory,
        "cuda_peak_allocated_mb": gpu_peak_mb,
    })
    summary = {
        "speedup_vs_plain_diffusers": plain_one / ours_one,
        "speedup_vs_plain_diffusers_n4_batched": plain_one / (ours_four / 4),
        "speedup_vs_plain_diffusers_new_prompt": plain_one / ours_one_new_prompt,
        "rerank_share": rerank / ours_four,
        "unet_peak_share": unet_gflops / paired_peak,
        "unet_peak_dtype": dtype_name,
        "unet_effective_peak_share": unet_effective_gflops / paired_peak,
        "fast_conv_vs_default_unet": unet_inference / unet_default_conv,
        "fast_conv_vs_default_taesd": taesd_decode / taesd_decode_default_conv,
        "fast_conv_vs_default_kl_decode": kl_decode_fast_conv / kl_decode,
        "fast_attention_vs_fused_unet": unet_inference / unet_fused_attention,
        "batched_n4_vs_n1_per_image": (ours_four / 4) / ours_one,
        "taesd_vs_kl_decode": taesd_decode / kl_decode,
        "inference_mode_vs_no_grad": unet_product / unet_no_grad,
        "product_attention_vs_classic": unet_product / unet_classic_attention,
        "bf16_vs_fp32_gemm": peak["bf16"] / peak["fp32"],
        "product_decode_vs_plain_kl_decode": product_decode / kl_decode,
        "prompt_cache_saves_share": text_encode / ours_one,
        "memory_growth_share_10_to_50_calls": memory["growth_mb_10_to_50"] / memory["rss_mb_after_10"],
    }
    return {"benchmark": "generation", "machine": machine(), "versions": library_versions(),
            "figures": figures, "summary": summary}


def report(data: dict) -> None:
    s, f = data["summary"], data["figures"]
    where = data["machine"]["cuda"] if f["device"] == "cuda" else data["machine"]["cpu"]
    print_table(f"generation benchmark ({where}, {f['dtype']}, decoder {f['decoder']})", [
        ("speed-up vs plain diffusers, per image (N=1)", f"{s['speedup_vs_plain_diffusers']:.2f}x  (goal 7x)"),
        ("speed-up vs plain diffusers, per image (N=4)", f"{s['speedup_vs_plain_diffusers_n4_batched']:.2f}x"),
        ("same, N=1 with a new prompt each call", f"{s['speedup_vs_plain_diffusers_new_prompt']:.2f}x"),
        ("re-rank share of N=4 generate", f"{s['rerank_share']:.4f}  (goal <= 0.02)"),
        (f"UNet share of {s['unet_peak_dtype']} matmul peak", f"{s['unet_peak_share']:.2f}  (goal >= 0.60 in bf16)"),
        ("  same, counted FLOPs / time of the product's convolutions", f"{s['unet_effective_peak_share']:.2f}"),
        ("fast convolutions / PyTorch's own: UNet step", f"{s['fast_conv_vs_default_unet']:.3f}"),
        ("blocked bf16 attention / fused kernel: UNet step", f"{s['fast_attention_vs_fused_unet']:.3f}"),
        ("fast convolutions / PyTorch's own: TAESD, full VAE decode",
         f"{s['fast_conv_vs_default_taesd']:.3f}, {s['fast_conv_vs_default_kl_decode']:.3f}"),
        ("batched N=4 / N=1, per image", f"{s['batched_n4_vs_n1_per_image']:.2f}"),
        ("TAESD / KL VAE decode", f"{s['taesd_vs_kl_decode']:.3f}"),
        ("product decode / plain fp32 KL decode", f"{s['product_decode_vs_plain_kl_decode']:.3f}"),
        ("inference_mode / no_grad (UNet)", f"{s['inference_mode_vs_no_grad']:.3f}"),
        ("product's attention / diffusers' classic (UNet)", f"{s['product_attention_vs_classic']:.3f}"),
        ("bf16 / fp32 GEMM throughput", f"{s['bf16_vs_fp32_gemm']:.3f}"),
        ("text encoder share saved by the prompt cache", f"{s['prompt_cache_saves_share']:.3f}"),
        ("RSS growth, calls 10 -> 50 (share)", f"{s['memory_growth_share_10_to_50_calls']:.4f}"),
        ("peak RSS of one generate+rank process (MB)", f"{f['peak_rss_mb_generate_and_rank']:.0f}"),
        ("peak RSS over repeated N=1 calls, ours / plain (MB)",
         f"{f['peak_rss_mb_repeated_calls']['ours']:.0f} / {f['peak_rss_mb_repeated_calls']['plain']:.0f}"),
        ("cold start to first ranked result / warm N=1", f"{f['cold_start_s'] / f['clipdemo_s_per_image_n1']:.2f}"),
        ("torch.compile / eager (demo pipeline, warm)", f"{s.get('torch_compile_vs_eager_demo', float('nan')):.3f}"),
    ])


def main(argv: list[str] | None = None) -> None:
    global DEVICE
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--out", type=Path, default=None, help="folder for the JSON (default benchmarks/results)")
    parser.add_argument("--skip-compile", action="store_true", help="skip the torch.compile on/off measurement")
    args = parser.parse_args(argv)
    DEVICE = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device

    data = run()
    path = write_result("generation", data, args.out)  # written now, so a slow compile step cannot lose it
    if not args.skip_compile:
        print("torch.compile on the demo pipeline ...", flush=True)
        try:
            compiled = compile_on_off()
            data["summary"]["torch_compile_vs_eager_demo"] = compiled["compiled"]["warm_s"] / compiled["eager"]["warm_s"]
        except Exception as exc:  # a compiler toolchain problem must not lose the other figures
            compiled = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        data["figures"]["torch_compile_demo"] = compiled
        path = write_result("generation", data, args.out)
    report(data)
    print(f"\nwrote {path}")
    print(json.dumps(data["summary"], indent=2))
