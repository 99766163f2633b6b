"""Assemble a text-to-image pipeline from a loaded one: its decoder, the CPU speed-ups, compile, offload.

The loaded pipeline is shared through the process-wide model cache; what is assembled here is one
studio's view of it (another decoder, another sampler) and never changes the shared components' dtype.
"""

from __future__ import annotations

from typing import Any

import torch

from ..config import DEFAULT_TAESD, Settings
from ..errors import InputError
from ..loading import ModelSpec, has_sd_latents
from ..speedups.attention import use_fast_cpu_attention
from ..speedups.fastconv import use_fast_cpu_convolutions

SCHEDULERS = {
    "default": None,
    "euler": "EulerDiscreteScheduler",
    "euler_a": "EulerAncestralDiscreteScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
    "ddim": "DDIMScheduler",
    "unipc": "UniPCMultistepScheduler",
}


def generation_models(settings: Settings) -> list[str]:
    """Models a request may pick: the configured ones only (a web user never types a path)."""
    models = [settings.sd_model]
    if settings.zh_mode == "native" and settings.zh_sd_model not in models:
        models.append(settings.zh_sd_model)
    return models + [m for m in settings.compare_models if m not in models]


def pipeline_spec(settings: Settings, model_id: str) -> ModelSpec:
    """The configured pipeline's spec, or the Chinese one's flags for any other configured model."""
    return settings.spec("sd_model") if model_id == settings.sd_model else settings.spec("zh_sd_model", model_id)


def decoder_spec(settings: Settings, device: torch.device, vae: Any) -> ModelSpec | None:
    """The AutoencoderTiny to decode with, or None for the pipeline's own VAE.

    auto: TAESD on CPU when the pipeline uses SD latents. taesd: TAESD wherever. full: never.
    PATH: that folder, as named.
    """
    choice = settings.decoder
    if choice == "full" or (choice == "auto" and (device.type != "cpu" or not has_sd_latents(vae))):
        return None
    return settings.spec("decoder", DEFAULT_TAESD if decoder_is_builtin(settings) else choice)


def decoder_is_builtin(settings: Settings) -> bool:
    """True for TAESD chosen by the app (auto, taesd): one that cannot load falls back to the full VAE."""
    return settings.decoder in ("auto", "taesd")


def compile_enabled(settings: Settings, device: torch.device) -> bool:
    """--compile auto compiles on CUDA, where it pays (see benchmarks/README.md), and not on the CPU."""
    return settings.compile == "on" or (settings.compile == "auto" and device.type == "cuda")


def assemble(base: Any, decoder: Any | None, settings: Settings, device: torch.device, dtype: torch.dtype) -> Any:
    """`base` with `decoder` as its VAE (when given) and the speed-ups these settings and this device allow."""
    # from_pipe casts every component to its dtype argument, fp32 when none is given, in place: without
    # it the shared UNet and TAESD would silently leave bf16/fp16.
    pipe = base if decoder is None else type(base).from_pipe(base, vae=decoder, dtype=dtype)
    compiled = compile_enabled(settings, device)
    cpu = device.type == "cpu" and not compiled  # torch.compile picks its own kernels
    # fp32 or bf16 on the CPU: faster convolution algorithms, same images.
    fast_conv = settings.fast_conv and cpu and dtype in (torch.float32, torch.bfloat16)
    for model in (pipe.unet, pipe.vae):
        use_fast_cpu_convolutions(model, enabled=fast_conv)
    # bf16 on the CPU: attention as blocked bf16 matrix multiplies instead of the fp32-bound fused kernel.
    use_fast_cpu_attention(pipe.unet, enabled=settings.fast_attention and cpu and dtype == torch.bfloat16)
    if settings.channels_last and device.type == "cuda":
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
    if compiled:  # shapes turn dynamic after the first change of size or batch, not one graph per slider value
        pipe.unet = torch.compile(pipe.unet, mode=settings.compile_mode)
        pipe.vae.decoder = torch.compile(pipe.vae.decoder, mode=settings.compile_mode)
    if settings.cpu_offload and device.type == "cuda":
        pipe.enable_model_cpu_offload()
    return pipe


def scheduler_class(name: str):
    import diffusers

    return None if SCHEDULERS[name] is None else getattr(diffusers, SCHEDULERS[name])


def with_scheduler(pipe: Any, name: str, dtype: torch.dtype) -> Any:
    """The same components with another sampler; the cached pipeline is left as it was."""
    if name not in SCHEDULERS:
        raise InputError(f"Unknown scheduler '{name}'. Choose one of: {', '.join(SCHEDULERS)}.")
    cls = scheduler_class(name)
    if cls is None:
        return pipe
    # dtype: from_pipe would otherwise cast the shared components to fp32 in place (see assemble).
    # vae: from_pipe drops a TAESD that replaced the pipeline's own VAE, then fails for want of one.
    return type(pipe).from_pipe(pipe, scheduler=cls.from_config(pipe.scheduler.config), vae=pipe.vae, dtype=dtype)
