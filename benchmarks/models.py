"""Architecture-faithful models with random weights, saved in diffusers/transformers format.

No downloads: configs only. sd-turbo is the SD 2.1 UNet at 512 px with the OpenCLIP ViT-H text tower;
the CLIP scorer is ViT-B/32 (CLIPConfig's defaults).
"""

from __future__ import annotations

from pathlib import Path

import torch

from clipdemo.config import TOKENIZER_DIR


def tokenizer():
    from transformers import CLIPTokenizer

    return CLIPTokenizer(str(TOKENIZER_DIR / "vocab.json"), str(TOKENIZER_DIR / "merges.txt"), model_max_length=77)


def save_sd_turbo_architecture(folder: Path) -> Path:
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=64, cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20), use_linear_projection=True,
        block_out_channels=(320, 640, 1280, 1280),
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(
        hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
        projection_dim=1024, hidden_act="gelu", vocab_size=49408,
    ))
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4, sample_size=512,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    )
    scheduler = EulerDiscreteScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, timestep_spacing="trailing", steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer(), unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)
    return folder


def save_taesd_architecture(folder: Path) -> Path:
    from diffusers import AutoencoderTiny

    torch.manual_seed(0)
    AutoencoderTiny().save_pretrained(folder)  # the defaults are TAESD's architecture
    return folder


def save_clip_b32_architecture(folder: Path) -> Path:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    torch.manual_seed(0)
    CLIPModel(CLIPConfig()).save_pretrained(folder)
    CLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=tokenizer()).save_pretrained(folder)
    return folder


def save_pickscore_architecture(folder: Path) -> Path:
    """PickScore_v1 is a CLIP ViT-H/14 (LAION's OpenCLIP-H as a transformers CLIPModel)."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                         hidden_act="gelu", vocab_size=49408),
        vision_config=dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16,
                           patch_size=14, image_size=224, hidden_act="gelu"),
        projection_dim=1024,
    )
    CLIPModel(config).save_pretrained(folder)
    CLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=tokenizer()).save_pretrained(folder)
    return folder


def save_safety_checker_architecture(folder: Path) -> Path:
    """CompVis' checker: the CLIP ViT-L/14 vision tower, its 768-d projection and 17 + 3 concept embeddings."""
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor

    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12),
        vision_config=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                           patch_size=14, image_size=224),
        projection_dim=768,
    )
    StableDiffusionSafetyChecker(config).save_pretrained(folder)
    CLIPImageProcessor().save_pretrained(folder)
    return folder


def save_chinese_clip_b16_architecture(folder: Path) -> Path:
    """OFA-Sys/chinese-clip-vit-base-patch16: RoBERTa-wwm-base text tower (21128 tokens) and ViT-B/16."""
    from transformers import (BertTokenizer, ChineseCLIPConfig, ChineseCLIPImageProcessor, ChineseCLIPModel,
                              ChineseCLIPProcessor)

    folder.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    characters = [chr(c) for c in range(0x4E00, 0x4E00 + 21128 - len(specials))]  # the vocab's size, CJK filled
    (folder / "vocab.txt").write_text("\n".join(specials + characters) + "\n", encoding="utf-8")
    tokenizer_ = BertTokenizer(vocab=str(folder / "vocab.txt"), model_max_length=52)
    torch.manual_seed(0)
    config = ChineseCLIPConfig(
        text_config=dict(vocab_size=21128, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                         num_attention_heads=12, max_position_embeddings=512),
        vision_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                           patch_size=16, image_size=224),
        projection_dim=512,
    )
    ChineseCLIPModel(config).save_pretrained(folder)
    ChineseCLIPProcessor(image_processor=ChineseCLIPImageProcessor(), tokenizer=tokenizer_).save_pretrained(folder)
    return folder


def save_opus_mt_architecture(folder: Path) -> Path:
    """Helsinki-NLP/opus-mt-zh-en: a 6+6-layer MarianMT, d_model 512, 65001 tokens (SentencePiece trained here)."""
    from transformers import MarianConfig, MarianMTModel

    from tests.multilingual_models import save_marian_tokenizer

    tokenizer_ = save_marian_tokenizer(folder, size=65001, model_max_length=512)
    torch.manual_seed(0)
    pad, eos = tokenizer_.pad_token_id, tokenizer_.eos_token_id
    config = MarianConfig(vocab_size=65001, d_model=512, encoder_layers=6, decoder_layers=6,
                          encoder_attention_heads=8, decoder_attention_heads=8, encoder_ffn_dim=2048,
                          decoder_ffn_dim=2048, max_position_embeddings=512, pad_token_id=pad,
                          decoder_start_token_id=pad, eos_token_id=eos, forced_eos_token_id=eos)
    MarianMTModel(config).save_pretrained(folder)
    tokenizer_.save_pretrained(folder)
    return folder
