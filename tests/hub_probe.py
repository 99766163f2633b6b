"""Run in a fresh process with HF_HOME at a cache from tests/hub_cache.py and HF_HUB_OFFLINE=1.

Loads every default model through clipdemo's loader and, for reference, through the libraries' own default
loading of the same cache (or, where the weights sit only on a conversion revision, straight from that
revision's safetensors file), then runs one default generate with a Chinese prompt. Prints one JSON line.
"""

from __future__ import annotations

import json
import sys

import torch
from PIL import Image

from clipdemo import GenerationRequest, Studio, resolve_settings
from clipdemo.config import DEFAULT_PICK_PROCESSOR
from clipdemo.hub import cached_conversion
from clipdemo.loading import (MODELS, ModelSpec, load_clip, load_safety_checker, load_text2image,
                              load_tiny_decoder, load_translator)

CPU, FP32 = torch.device("cpu"), torch.float32


def reference_state(cls, repo_id: str) -> dict[str, torch.Tensor]:
    """The weights as the library's own default loading reads them; from the conversion revision if main has none."""
    try:
        return cls.from_pretrained(repo_id).state_dict()
    except OSError:
        from safetensors.torch import load_file

        _, _, snapshot = cached_conversion(repo_id)
        return load_file(str(snapshot / "model.safetensors"))


def max_difference(ours: torch.nn.Module, reference: dict[str, torch.Tensor]) -> float:
    mine = ours.state_dict()
    shared = [k for k in reference if k in mine]
    if not shared:
        return float("inf")
    return max(float((mine[k].float() - reference[k].float()).abs().max()) if mine[k].numel() else 0.0
               for k in shared)


def main() -> None:
    from diffusers import AutoencoderTiny, AutoPipelineForText2Image
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import AutoModel, AutoModelForSeq2SeqLM

    # Every default model, PickScore and CompVis' checker (the GPU default) included.
    settings = resolve_settings(dtype="fp32", pickscore="on", safety_model="CompVis/stable-diffusion-safety-checker")
    report: dict = {"models": {}}
    clip_likes = {"clip": settings.clip_model, "zh_clip": settings.zh_clip_model, "pickscore": settings.pick_model}
    image = Image.new("RGB", (224, 224), (200, 30, 30))
    for role, repo_id in clip_likes.items():
        spec = ModelSpec(role, repo_id, "--x", "X")
        model, processor = load_clip(spec, CPU, FP32, DEFAULT_PICK_PROCESSOR if role == "pickscore" else None)
        reference = reference_state(AutoModel, repo_id)
        pixels = processor(images=[image], return_tensors="pt").pixel_values
        with torch.no_grad():
            features = model.get_image_features(pixel_values=pixels).pooler_output
            plain = type(model)(model.config).eval()
            plain.load_state_dict(reference, strict=False)
            expected = plain.get_image_features(pixel_values=pixels).pooler_output
        report["models"][role] = {"weights": MODELS.weights[repo_id], "max_weight_diff": max_difference(model, reference),
                                  "max_feature_diff": float((features - expected).abs().max())}
    others = {
        "safety_checker": (settings.safety_model, load_safety_checker, StableDiffusionSafetyChecker),
        "translator": (settings.translator, None, AutoModelForSeq2SeqLM),
        "decoder": ("madebyollin/taesd", load_tiny_decoder, AutoencoderTiny),
    }
    for role, (repo_id, loader, cls) in others.items():
        spec = ModelSpec(role, repo_id, "--x", "X")
        model = load_translator(spec, CPU)[0] if loader is None else loader(spec, CPU, FP32)
        model = model[0] if isinstance(model, tuple) else model
        report["models"][role] = {"weights": MODELS.weights[repo_id],
                                  "max_weight_diff": max_difference(model, reference_state(cls, repo_id))}
    pipe = load_text2image(ModelSpec("sd", settings.sd_model, "--x", "X"), CPU, FP32)
    plain = AutoPipelineForText2Image.from_pretrained(settings.sd_model)
    report["models"]["generator"] = {"weights": MODELS.weights[settings.sd_model],
                                     "max_weight_diff": max(max_difference(getattr(pipe, n), getattr(plain, n).state_dict())
                                                            for n in ("unet", "vae", "text_encoder"))}

    studio = Studio(settings)  # as `python app.py` builds it: no model named, nothing falls back to the demo
    result = studio.generate(GenerationRequest("一只戴眼镜的狗", n=2, steps=1, guidance=0.0, width=64, height=64, seed=0))
    # The translation transformers itself makes from the cached translator (the library's own loader, not ours).
    from transformers import AutoTokenizer

    try:  # a cache with the weights only on the conversion revision is not one transformers reads offline
        marian = AutoModelForSeq2SeqLM.from_pretrained(settings.translator).eval()
    except OSError:
        report["reference_translation"] = None
    else:
        tok = AutoTokenizer.from_pretrained(settings.translator)
        limit = min(96, marian.config.max_position_embeddings - 2)
        with torch.no_grad():
            out = marian.generate(**tok(["一只戴眼镜的狗"], return_tensors="pt"), max_new_tokens=limit, num_beams=4)
        report["reference_translation"] = tok.batch_decode(out, skip_special_tokens=True)[0].strip()
    report["studio_notices"] = studio.notices
    report["generate"] = {"sd_model": result.sd_model, "clip_model": result.clip_model,
                          "translated_prompt": result.translated_prompt, "notices": result.notices,
                          "scores": [item.scores for item in result.images],
                          "moderated": [item.moderation is not None for item in result.images],
                          "models": result.models}
    print("PROBE=" + json.dumps(report, ensure_ascii=False))


if __name__ == "__main__":
    sys.exit(main())
