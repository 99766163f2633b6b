"""Train the offline demo models on the procedural shapes world (demo_world/world.py).

    python scripts/train_demo_models.py            # about 27 minutes on 2 CPU cores, seed 0

Writes, under assets/models/:
  demo-clip/  a tiny bilingual CLIPModel (transformers format), trained contrastively
  demo-sd/    a tiny StableDiffusionPipeline (diffusers format): the CLIP text tower (frozen) as its
              text encoder, a small AutoencoderKL, and a UNet trained with the noise-prediction loss in
              SD 2's v-parametrisation over a zero-terminal-SNR schedule (see noise_schedules)
Weights are stored as fp16 safetensors (the 49408-token embedding dominates their size).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python scripts/...` from anywhere
    sys.path.insert(0, str(ROOT))

from demo_world import world
from clipdemo.config import ASSETS_DIR, TOKENIZER_DIR

IMAGE_SIZE = 64


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def tokenizer():
    from transformers import CLIPTokenizer

    return CLIPTokenizer(str(TOKENIZER_DIR / "vocab.json"), str(TOKENIZER_DIR / "merges.txt"), model_max_length=77)


def to_tensor(images) -> torch.Tensor:
    """PIL images to a float tensor in [-1, 1], NCHW."""
    array = np.stack([np.asarray(im, dtype=np.float32) for im in images]) / 127.5 - 1.0
    return torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()


def cosine_lr(step: int, total: int, peak: float, warmup: int = 200) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    return 0.5 * peak * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


# --- CLIP --------------------------------------------------------------------------------------
def build_clip():
    from transformers import CLIPConfig, CLIPModel

    config = CLIPConfig(
        text_config=dict(hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
                         vocab_size=49408, max_position_embeddings=77),
        vision_config=dict(hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
                           image_size=IMAGE_SIZE, patch_size=16),
        projection_dim=128,
    )
    return CLIPModel(config)


def clip_pixels(images) -> torch.Tensor:
    """The CLIP processor's normalisation, applied to 64 px images directly (the processor resizes too)."""
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    return ((to_tensor(images) + 1) / 2 - mean) / std


def train_clip(steps: int, seed: int):
    torch.manual_seed(seed)
    tok = tokenizer()
    model = build_clip().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
    pool = world.sample(seed + 1, 6000)
    labels = torch.tensor([s.label for s in pool])
    pixels = clip_pixels([s.image for s in pool])
    rng = np.random.default_rng(seed)
    n_classes = len(world.CLASSES)
    per_class = 2
    by_class = [np.flatnonzero(labels.numpy() == c) for c in range(n_classes)]
    for step in range(steps):
        idx = np.concatenate([rng.choice(by_class[c], per_class, replace=False) for c in range(n_classes)])
        batch_labels = labels[idx]
        texts, text_labels = [], []
        for c in range(n_classes):  # one English and one Chinese caption per class, from its images
            a, b = rng.choice(by_class[c], 2, replace=False)
            texts += [pool[a].caption_en, pool[b].caption_zh]
            text_labels += [c, c]
        text_labels = torch.tensor(text_labels)
        tokens = tok(texts, padding=True, return_tensors="pt")
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, steps, 2e-3)
        out = model(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask, pixel_values=pixels[idx])
        logits = out.logits_per_image  # (images, texts)
        # Every caption of the image's class is a match: soft targets spread over them.
        match = (batch_labels[:, None] == text_labels[None, :]).float()
        loss_i = -(match / match.sum(1, keepdim=True) * logits.log_softmax(1)).sum(1).mean()
        loss_t = -(match.T / match.T.sum(1, keepdim=True) * logits.T.log_softmax(1)).sum(1).mean()
        loss = (loss_i + loss_t) / 2
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if step % 200 == 0 or step == steps - 1:
            top = (text_labels[logits.argmax(1)] == batch_labels).float().mean()
            log(f"clip step {step}/{steps} loss {loss.item():.3f} batch top1 {top.item():.2f}")
    return model.eval()


def finetune_clip_vision(model, steps: int, seed: int):
    """Second CLIP stage: the text tower is frozen and only the vision side learns.

    The joint stage learns colours fast but shapes slowly; with the captions' embeddings fixed,
    the image tower gets a stable target and a lower learning rate finishes the job. The text tower
    (also the SD text encoder) is not changed by this stage.
    """
    torch.manual_seed(seed)
    tok = tokenizer()
    pool = world.sample(seed + 4, 24000)  # a large pool: 6000 images overfit (train 88%, held-out 66%)
    labels = torch.tensor([s.label for s in pool])
    pixels = clip_pixels([s.image for s in pool])
    captions = sorted({c for s in pool for c in (s.caption_en, s.caption_zh)})
    caption_index = {c: i for i, c in enumerate(captions)}
    with torch.no_grad():
        tokens = tok(captions, padding=True, return_tensors="pt")
        text = model.get_text_features(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask).pooler_output
        text = text / text.norm(dim=-1, keepdim=True)
    for p in model.text_model.parameters():
        p.requires_grad_(False)
    model.text_projection.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-3, betas=(0.9, 0.98), weight_decay=0.05)
    rng = np.random.default_rng(seed)
    n_classes = len(world.CLASSES)
    by_class = [np.flatnonzero(labels.numpy() == c) for c in range(n_classes)]
    model.train()
    for step in range(steps):
        idx = np.concatenate([rng.choice(by_class[c], 4, replace=False) for c in range(n_classes)])
        text_rows, text_labels = [], []
        for c in range(n_classes):
            a, b = rng.choice(by_class[c], 2, replace=False)
            text_rows += [caption_index[pool[a].caption_en], caption_index[pool[b].caption_zh]]
            text_labels += [c, c]
        text_labels = torch.tensor(text_labels)
        image = model.get_image_features(pixel_values=pixels[idx]).pooler_output
        image = image / image.norm(dim=-1, keepdim=True)
        logits = model.logit_scale.exp() * image @ text[text_rows].T
        match = (labels[idx][:, None] == text_labels[None, :]).float()
        loss = -(match / match.sum(1, keepdim=True) * logits.log_softmax(1)).sum(1).mean()
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, steps, 1e-3, warmup=100)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if step % 200 == 0 or step == steps - 1:
            top = (text_labels[logits.argmax(1)] == labels[idx]).float().mean()
            log(f"clip vision step {step}/{steps} loss {loss.item():.3f} batch top1 {top.item():.2f}")
    for p in model.parameters():
        p.requires_grad_(True)
    return model.eval()


# --- VAE ---------------------------------------------------------------------------------------
def build_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32, 64), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3, norm_num_groups=8,
        sample_size=IMAGE_SIZE,
    )


def train_vae(steps: int, seed: int, images: torch.Tensor):
    """On whole images. Crops would be 4x cheaper, but GroupNorm then sees other statistics than at
    use time: a crop-trained VAE decoded purple as blue and red as orange (measured, then dropped)."""
    torch.manual_seed(seed)
    vae = build_vae().train()
    optimizer = torch.optim.AdamW(vae.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    for step in range(steps):
        idx = torch.randint(0, len(images), (24,), generator=generator)
        x = images[idx]
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample(generator=generator)).sample
        kl = posterior.kl().mean() / x[0].numel()
        loss = F.mse_loss(recon, x) + 1e-3 * kl
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, steps, 1e-3, warmup=100)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % 200 == 0 or step == steps - 1:
            log(f"vae step {step}/{steps} mse {F.mse_loss(recon, x).item():.4f}")
    return vae.eval()


# --- UNet --------------------------------------------------------------------------------------
def build_unet(cross_attention_dim: int):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=IMAGE_SIZE // 4, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(32, 64, 128), norm_num_groups=16,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=cross_attention_dim, attention_head_dim=8,
        addition_embed_type="text", addition_embed_type_num_heads=4,
    )


def noise_schedules(zero_snr: bool = True):
    """(training scheduler, sampler) for the demo UNet.

    Zero terminal SNR with v-prediction (Lin et al. 2024, "Common diffusion noise schedules and sample
    steps are flawed"): with SD's usual schedule the last training step still keeps 7% of the image,
    and over a 16x16 latent that is enough to read the mean colour from the "noise". The UNet then
    learned to take the colour from the starting noise instead of the prompt, so at sampling time
    (pure noise) colours drifted to a yellowish average. With zero terminal SNR the prompt is the
    only source of the colour.
    """
    from diffusers import DDPMScheduler, DPMSolverMultistepScheduler

    common = dict(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    if zero_snr:
        common.update(rescale_betas_zero_snr=True, prediction_type="v_prediction")
    train = DDPMScheduler(**common)
    sampler = DPMSolverMultistepScheduler(**common, algorithm_type="dpmsolver++", solver_order=2,
                                          timestep_spacing="trailing" if zero_snr else "linspace")
    return train, sampler


def train_unet(steps: int, seed: int, latents: torch.Tensor, captions: list[list[str]], text_states: dict,
               empty_state: torch.Tensor, scheduler, batch: int = 64, lr: float = 1e-3, log_every: int = 200):
    torch.manual_seed(seed)
    dim = empty_state.shape[-1]
    unet = build_unet(dim).train()
    ema = copy.deepcopy(unet).eval()
    optimizer = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=0.01)
    rng = np.random.default_rng(seed)
    alphas = scheduler.alphas_cumprod
    v_prediction = scheduler.config.prediction_type == "v_prediction"
    for step in range(steps):
        idx = rng.integers(0, len(latents), batch)
        x0 = latents[idx]
        states = []
        for i in idx:
            if rng.random() < 0.1:  # empty caption: lets guidance work at sampling time
                states.append(empty_state)
            else:
                options = captions[i]
                states.append(text_states[options[rng.integers(len(options))]])
        cond = torch.stack(states)
        noise = torch.randn_like(x0)
        t = torch.from_numpy(rng.integers(0, len(alphas), batch))
        a = alphas[t].view(-1, 1, 1, 1)
        noisy = a.sqrt() * x0 + (1 - a).sqrt() * noise
        target = a.sqrt() * noise - (1 - a).sqrt() * x0 if v_prediction else noise
        pred = unet(noisy, t, encoder_hidden_states=cond).sample
        # Per-sample means, then their mean: the computation the shipped weights were trained with.
        loss = F.mse_loss(pred, target, reduction="none").mean(dim=(1, 2, 3)).mean()
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, steps, lr)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        decay = min(0.999, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ema.parameters(), unet.parameters()):
                e.mul_(decay).add_(p.detach(), alpha=1 - decay)
        if step % log_every == 0 or step == steps - 1:
            log(f"unet step {step}/{steps} loss {loss.item():.4f}")
    return ema


def encode_latents(vae, images: torch.Tensor) -> torch.Tensor:
    """VAE latents (the posterior mode), scaled by the VAE's scaling factor as the pipeline expects."""
    with torch.no_grad():
        latents = torch.cat([vae.encode(images[i : i + 256]).latent_dist.mode() for i in range(0, len(images), 256)])
    return latents * vae.config.scaling_factor


def caption_options(pool: list[world.Sample], seed: int) -> list[list[str]]:
    """Several wordings of each training image, in both languages."""
    rng = np.random.default_rng(seed + 3)
    captions = []
    for s in pool:
        options = {s.caption_en, s.caption_zh}
        for language in ("en", "zh", "en", "zh"):
            options.add(world.caption(s.colour, s.shape, s.size, language, rng))
        captions.append(sorted(options))
    return captions


def text_hidden_states(text_encoder, tok, texts: list[str]) -> dict[str, torch.Tensor]:
    """Last hidden state of each distinct caption, unpadded (the pipeline pads to 77 with the end token)."""
    states = {}
    with torch.no_grad():
        for start in range(0, len(texts), 256):
            chunk = texts[start : start + 256]
            tokens = tok(chunk, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
            hidden = text_encoder(tokens.input_ids).last_hidden_state
            for text, h in zip(chunk, hidden):
                states[text] = h
    return states


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ASSETS_DIR / "models")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clip-steps", type=int, default=1600)
    parser.add_argument("--clip-vision-steps", type=int, default=2500)
    parser.add_argument("--vae-steps", type=int, default=300)
    parser.add_argument("--unet-steps", type=int, default=350)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPImageProcessor, CLIPProcessor, CLIPTextConfig, CLIPTextModel

    started = time.time()
    minutes: dict[str, float] = {}

    def lap(stage: str, since: float) -> float:
        minutes[stage] = round((time.time() - since) / 60, 1)
        return time.time()

    tok = tokenizer()
    mark = time.time()
    clip = train_clip(args.clip_steps, args.seed)
    mark = lap("clip_joint", mark)
    clip = finetune_clip_vision(clip, args.clip_vision_steps, args.seed)
    mark = lap("clip_vision", mark)
    clip_dir = args.out / "demo-clip"
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}),
        tokenizer=tok,
    )
    clip.half().save_pretrained(clip_dir)
    processor.save_pretrained(clip_dir)
    # The SD text encoder is the trained CLIP text tower, frozen, exactly as saved (fp16 values).
    text_encoder = CLIPTextModel(CLIPTextConfig(**clip.config.text_config.to_dict()))
    text_encoder.load_state_dict(clip.float().text_model.state_dict())
    text_encoder.eval()
    log(f"saved {clip_dir} after {time.time() - started:.0f} s")

    pool = world.sample(args.seed + 2, 6000)
    images = to_tensor([s.image for s in pool])
    vae = train_vae(args.vae_steps, args.seed, images)
    vae.register_to_config(scaling_factor=1.0)
    vae.register_to_config(scaling_factor=float(1.0 / encode_latents(vae, images).std()))
    log(f"vae latent std scaled by {vae.config.scaling_factor:.3f}")
    mark = lap("vae", mark)

    latents = encode_latents(vae, images)
    captions = caption_options(pool, args.seed)
    states = text_hidden_states(text_encoder, tok, sorted({c for options in captions for c in options} | {""}))
    train_scheduler, sampler = noise_schedules(zero_snr=True)
    unet = train_unet(args.unet_steps, args.seed, latents, captions, states, states[""], train_scheduler)
    mark = lap("unet", mark)

    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tok, unet=unet, scheduler=sampler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    sd_dir = args.out / "demo-sd"
    pipe.to(torch.float16).save_pretrained(sd_dir)
    total = round((time.time() - started) / 60, 1)
    (args.out / "TRAINING.json").write_text(json.dumps({
        "command": "python scripts/train_demo_models.py",
        "seed": args.seed, "clip_steps": args.clip_steps, "clip_vision_steps": args.clip_vision_steps,
        "vae_steps": args.vae_steps, "unet_steps": args.unet_steps,
        "unet_objective": "v-prediction, zero terminal SNR",
        "minutes": total, "minutes_by_stage": minutes, "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }, indent=2) + "\n")
    log(f"saved {sd_dir}; total {total} min")


if __name__ == "__main__":
    main()
