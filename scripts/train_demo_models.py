"""Train the offline demo models on the procedural worlds: coloured shapes (demo_world/world.py) and
coloured animals with accessories (demo_world/animals.py).

    python scripts/train_demo_models.py            # under an hour on 2 CPU cores, seed 0

Writes, under assets/models/:
  demo-clip/  a tiny bilingual CLIPModel (transformers format), trained contrastively on both worlds
  demo-sd/    a tiny StableDiffusionPipeline (diffusers format): the CLIP text tower (frozen) as its
              text encoder, a small AutoencoderKL, and a UNet trained with the noise-prediction loss in
              SD 2's v-parametrisation over a zero-terminal-SNR schedule (see noise_schedules)
  judge/      the animals world's judge (demo_world/judge.py): its own small CNN and seed, for the quality
              gates and the tests only
  TRAINING.json  steps, minutes by stage and the CPU
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

from dataclasses import dataclass
from typing import Callable

from demo_world import animals, judge, world
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


@dataclass
class Text:
    """A caption and which images it describes (several may: "a dog" fits every plain dog)."""

    text: str
    fits: Callable[[object], bool]


def shape_text(text: str, label: int) -> Text:
    return Text(text, lambda item, label=label: isinstance(item, int) and item == label)


def animal_text(caption: animals.Caption) -> Text:
    return Text(caption.text, lambda item, c=caption: isinstance(item, animals.Scene) and c.fits(item))


class Pools:
    """Both worlds' training images; an item's key is its shape class (int) or its animal Scene."""

    def __init__(self, seed: int, n_shapes: int, n_animals: int) -> None:
        self.shapes = world.sample(seed + 1, n_shapes)
        self.animals = animals.sample(seed + 11, n_animals)
        self.keys = [s.label for s in self.shapes] + [s.scene for s in self.animals]
        self.pixels = clip_pixels([s.image for s in self.shapes] + [s.image for s in self.animals])
        self.shape_by_class = [np.flatnonzero(np.array([s.label for s in self.shapes]) == c)
                               for c in range(len(world.CLASSES))]
        offset = len(self.shapes)
        labels = np.array([s.scene.label for s in self.animals])
        self.animal_by_class = [offset + np.flatnonzero(labels == c) for c in range(len(animals.CLASSES))]

    def batch(self, rng, shapes_per_class: int, animals_per_class: int, caption_rng=None) -> tuple[np.ndarray, list[Text]]:
        """Class-balanced image indices, and captions: one English and one Chinese per shape class (from other
        images of the class), and one fresh caption per animal image in either language."""
        caption_rng = caption_rng or rng
        idx, texts = [], []
        for c, members in enumerate(self.shape_by_class):
            idx += list(rng.choice(members, shapes_per_class, replace=False))
            a, b = rng.choice(members, 2, replace=False)
            texts += [shape_text(self.shapes[a].caption_en, c), shape_text(self.shapes[b].caption_zh, c)]
        for members in self.animal_by_class:
            chosen = rng.choice(members, animals_per_class, replace=False)
            idx += list(chosen)
            for k, i in enumerate(chosen):
                scene = self.keys[i]
                texts.append(animal_text(animals.caption(scene, ("en", "zh")[k % 2], caption_rng)))
        return np.array(idx), texts

    def match(self, idx: np.ndarray, texts: list[Text]) -> torch.Tensor:
        return torch.tensor([[t.fits(self.keys[i]) for t in texts] for i in idx], dtype=torch.float32)


def contrastive_loss(logits: torch.Tensor, match: torch.Tensor) -> torch.Tensor:
    """Every caption that fits an image counts as a match: soft targets spread over them, both ways."""
    loss_i = -(match / match.sum(1, keepdim=True) * logits.log_softmax(1)).sum(1).mean()
    has = match.sum(0) > 0
    loss_t = -(match.T[has] / match.T[has].sum(1, keepdim=True) * logits.T[has].log_softmax(1)).sum(1).mean()
    return (loss_i + loss_t) / 2


def train_clip(steps: int, seed: int, pools: Pools):
    torch.manual_seed(seed)
    tok = tokenizer()
    model = build_clip().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
    rng = np.random.default_rng(seed)
    for step in range(steps):
        idx, texts = pools.batch(rng, 1, 2)
        tokens = tok([t.text for t in texts], padding=True, return_tensors="pt")
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, steps, 2e-3)
        out = model(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask, pixel_values=pools.pixels[idx])
        match = pools.match(idx, texts)
        loss = contrastive_loss(out.logits_per_image, match)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if step % 200 == 0 or step == steps - 1:
            top = match[torch.arange(len(idx)), out.logits_per_image.argmax(1)].mean()
            log(f"clip step {step}/{steps} loss {loss.item():.3f} batch top1 {top.item():.2f}")
    return model.eval()


def finetune_clip_vision(model, steps: int, seed: int, pools: Pools):
    """Second CLIP stage: the text tower is frozen and only the vision side learns.

    The joint stage learns colours fast but shapes and accessories slowly; with the captions' embeddings
    fixed, the image tower gets a stable target and a lower learning rate finishes the job. The text tower
    (also the SD text encoder) is not changed by this stage.
    """
    torch.manual_seed(seed)
    tok = tokenizer()
    rng, caption_rng = np.random.default_rng(seed), np.random.default_rng(seed + 5)
    batches = [pools.batch(rng, 2, 3, caption_rng) for _ in range(steps)]
    captions = sorted({t.text for _, texts in batches for t in texts})
    caption_index = {c: i for i, c in enumerate(captions)}
    with torch.no_grad():
        rows = []
        for start in range(0, len(captions), 512):
            tokens = tok(captions[start:start + 512], padding=True, return_tensors="pt")
            rows.append(model.get_text_features(input_ids=tokens.input_ids,
                                                attention_mask=tokens.attention_mask).pooler_output)
        text = torch.cat(rows)
        text = text / text.norm(dim=-1, keepdim=True)
    for p in model.text_model.parameters():
        p.requires_grad_(False)
    model.text_projection.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-3, betas=(0.9, 0.98), weight_decay=0.05)
    model.train()
    for step, (idx, texts) in enumerate(batches):
        image = model.get_image_features(pixel_values=pools.pixels[idx]).pooler_output
        image = image / image.norm(dim=-1, keepdim=True)
        logits = model.logit_scale.exp() * image @ text[[caption_index[t.text] for t in texts]].T
        match = pools.match(idx, texts)
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
            top = match[torch.arange(len(idx)), logits.argmax(1)].mean()
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


def generator_weights(pools: "Pools", accessory_share: float) -> np.ndarray:
    """How often the UNet sees each training image (shapes, then animals). Like web images, its data seldom shows
    an animal dressed up: `accessory_share` of its animal images wear something (the CLIP's batches stay
    balanced). This is what makes it forget the glasses now and then, the case CLIP re-ranking is for."""
    worn = np.array([s.scene.accessory != animals.NONE for s in pools.animals])
    animal = np.where(worn, accessory_share / worn.mean(), (1 - accessory_share) / (1 - worn.mean()))
    weights = np.concatenate([np.ones(len(pools.shapes)), animal])
    return weights / weights.sum()


def train_unet(steps: int, seed: int, latents: torch.Tensor, captions: list[list[str]], text_states: dict,
               empty_state: torch.Tensor, scheduler, weights: np.ndarray, batch: int = 64, lr: float = 1e-3,
               log_every: int = 200):
    torch.manual_seed(seed)
    dim = empty_state.shape[-1]
    unet = build_unet(dim).train()
    ema = copy.deepcopy(unet).eval()
    optimizer = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=0.01)
    rng = np.random.default_rng(seed)
    alphas = scheduler.alphas_cumprod
    v_prediction = scheduler.config.prediction_type == "v_prediction"
    for step in range(steps):
        idx = rng.choice(len(latents), batch, p=weights)
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


def caption_options(pools: "Pools", seed: int) -> list[list[str]]:
    """Several wordings of each training image (shapes, then animals), in both languages."""
    rng = np.random.default_rng(seed + 3)
    captions = []
    for s in pools.shapes:
        options = {s.caption_en, s.caption_zh}
        for language in ("en", "zh", "en", "zh"):
            options.add(world.caption(s.colour, s.shape, s.size, language, rng))
        captions.append(sorted(options))
    for s in pools.animals:
        options = {s.caption_en.text, s.caption_zh.text}
        for language in ("en", "zh", "en", "zh", "en", "zh"):
            options.add(animals.caption(s.scene, language, rng).text)
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


def cpu_name() -> str:
    """The CPU's model name and family/model numbers, as /proc/cpuinfo gives them."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        import platform

        return platform.processor() or "unknown"
    field = lambda key: next((line.split(":", 1)[1].strip() for line in info.splitlines()  # noqa: E731
                              if line.startswith(key)), "?")
    bf16 = " with AVX512-BF16" if "avx512_bf16" in info else (" with AMX" if "amx_bf16" in info else "")
    return f"{field('model name')} (family {field('cpu family')}, model {field('model')}){bf16}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ASSETS_DIR / "models")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clip-steps", type=int, default=1600)
    parser.add_argument("--clip-vision-steps", type=int, default=1200)
    parser.add_argument("--vae-steps", type=int, default=300)
    parser.add_argument("--unet-steps", type=int, default=2100)
    parser.add_argument("--judge-steps", type=int, default=900)
    parser.add_argument("--generator-accessory-share", type=float, default=0.4,
                        help="share of the UNet's animal images that wear an accessory (balanced: 0.8)")
    parser.add_argument("--shapes", type=int, default=6000, help="training images of the shapes world")
    parser.add_argument("--animals", type=int, default=10000, help="training images of the animals world")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import save_file
    from transformers import CLIPImageProcessor, CLIPProcessor, CLIPTextConfig, CLIPTextModel

    started = time.time()
    minutes: dict[str, float] = {}

    def lap(stage: str, since: float) -> float:
        minutes[stage] = round((time.time() - since) / 60, 1)
        return time.time()

    tok = tokenizer()
    mark = time.time()
    pools = Pools(args.seed, args.shapes, args.animals)
    mark = lap("render", mark)
    clip = train_clip(args.clip_steps, args.seed, pools)
    mark = lap("clip_joint", mark)
    clip = finetune_clip_vision(clip, args.clip_vision_steps, args.seed, pools)
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

    images = to_tensor([s.image for s in pools.shapes] + [s.image for s in pools.animals])
    vae = train_vae(args.vae_steps, args.seed, images)
    vae.register_to_config(scaling_factor=1.0)
    latents = encode_latents(vae, images)
    vae.register_to_config(scaling_factor=float(1.0 / latents.std()))
    latents = latents * vae.config.scaling_factor  # encoded once: the scale is the unit latent std
    log(f"vae latent std scaled by {vae.config.scaling_factor:.3f}")
    mark = lap("vae", mark)

    captions = caption_options(pools, args.seed)
    states = text_hidden_states(text_encoder, tok, sorted({c for options in captions for c in options} | {""}))
    train_scheduler, sampler = noise_schedules(zero_snr=True)
    weights = generator_weights(pools, args.generator_accessory_share)
    unet = train_unet(args.unet_steps, args.seed, latents, captions, states, states[""], train_scheduler, weights)
    mark = lap("unet", mark)

    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tok, unet=unet, scheduler=sampler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    sd_dir = args.out / "demo-sd"
    pipe.to(torch.float16).save_pretrained(sd_dir)
    log(f"saved {sd_dir}")

    judge_seed = args.seed + 1234  # the judge's own seed and renders, never the ranking CLIP's
    judge_net = judge.train(animals.sample(judge_seed, 6000), args.judge_steps, judge_seed, log)
    agreement = judge.agreement(judge_net, animals.sample(judge_seed + 1, 1000))
    (args.out / "judge").mkdir(parents=True, exist_ok=True)
    save_file(judge_net.state_dict(), str(args.out / "judge" / "model.safetensors"))
    log(f"judge agrees with the renderer on {agreement['all']:.1%} of 1000 held-out renders")
    mark = lap("judge", mark)

    total = round((time.time() - started) / 60, 1)
    (args.out / "TRAINING.json").write_text(json.dumps({
        "command": "python scripts/train_demo_models.py",
        "seed": args.seed, "clip_steps": args.clip_steps, "clip_vision_steps": args.clip_vision_steps,
        "vae_steps": args.vae_steps, "unet_steps": args.unet_steps, "judge_steps": args.judge_steps,
        "training_images": {"shapes": args.shapes, "animals": args.animals},
        "generator_accessory_share": args.generator_accessory_share,
        "unet_objective": "v-prediction, zero terminal SNR",
        "judge_agreement_held_out": agreement,
        "minutes": total, "minutes_by_stage": minutes, "threads": torch.get_num_threads(),
        "cpu": cpu_name(), "torch": torch.__version__,
    }, indent=2) + "\n")
    log(f"total {total} min")


if __name__ == "__main__":
    main()
