"""Tiny random-weight multilingual models (Chinese-CLIP, AltCLIP, Marian zh->en, PickScore, SD safety checker).

The real checkpoints are hundreds of MB and the Hub is not reachable from the tests, so each function builds a
tiny model from a config, builds its tokenizer from scratch (a hand-written vocab.txt, or SentencePiece models
trained in a few milliseconds on a handful of sentences) and saves both with `save_pretrained`. The folders load
with `from_pretrained(folder, local_files_only=True, use_safetensors=True)` through the Auto classes, so the
real loading and inference code runs. The outputs are meaningless (random weights); only shapes and plumbing
are real.

Gotchas in transformers 5 that shaped this file:
- `BertTokenizer(vocab_file=...)` and `CLIPTokenizer(vocab_file=..., merges_file=...)` silently ignore the
  files and give a 5-token (or 2-token) vocabulary; pass `vocab=` / `merges=` instead.
- `XLMRobertaTokenizer` is backed by `tokenizers`; building it from a `.model` file needs `protobuf`, which is
  not installed, so it is built from the (piece, score) list that the `sentencepiece` package reads itself.
- Without torchvision, `CLIPImageProcessor()` and `ChineseCLIPImageProcessor()` return the PIL variants.
"""

from __future__ import annotations

import io
import json
import string
from pathlib import Path

import torch

TOKENIZER_DIR = Path(__file__).resolve().parent.parent / "assets" / "tokenizer"

# Text the Chinese-CLIP vocab must cover: the prompts and labels used by the demo.
CHINESE_TEXT = "一只戴眼镜的狗 红色绿色蓝色黄色紫色橙色 圆形正方形三角形星形十字形 一张照片 猫 狗 蔡徐坤 周淑怡 李佳琪 个"
ENGLISH_WORDS = ["a", "photo", "of", "dog", "cat", "the", "red", "circle"]
PUNCTUATION = [".", ",", "!", "?"]

EN_COLORS = ["red", "green", "blue", "yellow", "purple", "orange"]
ZH_COLORS = ["红色", "绿色", "蓝色", "黄色", "紫色", "橙色"]
EN_SHAPES = ["circle", "square", "triangle", "star", "cross"]
ZH_SHAPES = ["圆形", "正方形", "三角形", "星形", "十字形"]


def _tiny_vision_config() -> dict:
    """Same tiny ViT for every CLIP-like model: 224 px input, 32 px patches, so the real image processors fit."""
    return dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                image_size=224, patch_size=32)


def _english_sentences() -> list[str]:
    lines = ["a photo of a dog", "a photo of a cat", "a dog wearing glasses", "a photo of the dog."]
    for color in EN_COLORS:
        for shape in EN_SHAPES:
            lines += [f"a {color} {shape}", f"a photo of a {color} {shape}"]
    return lines


def _chinese_sentences() -> list[str]:
    lines = ["一只戴眼镜的狗", "一张猫的照片", "一张狗的照片", "一张蔡徐坤的照片", "周淑怡", "李佳琪", "一个红色的圆形"]
    for color in ZH_COLORS:
        for shape in ZH_SHAPES:
            lines += [f"{color}的{shape}", f"一张{color}{shape}的照片"]
    return lines


def _train_sentencepiece(lines: list[str], vocab_size: int, model_type: str = "unigram") -> bytes:
    """Train a SentencePiece model in memory; a few ms on one thread, and deterministic.

    On so little text a unigram model stops near 100 pieces and splits common English words into letters,
    while BPE reaches the requested size; both are fine for plumbing tests.
    """
    import sentencepiece

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, vocab_size=vocab_size, model_type=model_type,
        character_coverage=1.0, hard_vocab_limit=False, num_threads=1, minloglevel=2,
    )
    return model.getvalue()


def _sentencepiece_pieces(model_bytes: bytes) -> list[tuple[str, float]]:
    """(piece, score) for the ordinary pieces, i.e. without <unk>, <s>, </s>."""
    import sentencepiece

    sp = sentencepiece.SentencePieceProcessor(model_proto=model_bytes)
    return [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())
            if not (sp.is_control(i) or sp.is_unknown(i))]


def chinese_clip_vocab() -> list[str]:
    """WordPiece vocab: the specials, every Chinese character the demo uses, and enough ASCII to spell English."""
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokens += [char for char in CHINESE_TEXT if not char.isspace()]
    tokens += list(string.ascii_lowercase) + list(string.digits) + ENGLISH_WORDS + PUNCTUATION
    # Continuation pieces, so any lower-case English word splits into letters instead of becoming [UNK].
    tokens += ["##" + char for char in string.ascii_lowercase]
    return list(dict.fromkeys(tokens))  # drop repeats, keep order


def save_tiny_chinese_clip(folder: Path, seed: int = 0) -> Path:
    """Tiny ChineseCLIPModel + BertTokenizer (hand-made vocab.txt) + ChineseCLIPProcessor."""
    from transformers import BertTokenizer, ChineseCLIPConfig, ChineseCLIPImageProcessor, ChineseCLIPModel, ChineseCLIPProcessor

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = chinese_clip_vocab()
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(vocab=str(vocab_file), model_max_length=52)
    assert len(tokenizer) == len(vocab)

    torch.manual_seed(seed)
    config = ChineseCLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=64),
        vision_config=_tiny_vision_config(),
        projection_dim=32,
    )
    ChineseCLIPModel(config).eval().save_pretrained(folder)
    ChineseCLIPProcessor(image_processor=ChineseCLIPImageProcessor(), tokenizer=tokenizer).save_pretrained(folder)
    return folder


def xlm_roberta_tokenizer(model_bytes: bytes):
    """XLM-R tokenizer from a SentencePiece model, with fairseq's layout: <s>=0 <pad>=1 </s>=2 <unk>=3 ... <mask>."""
    from transformers import XLMRobertaTokenizer

    specials = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    vocab = specials + _sentencepiece_pieces(model_bytes) + [("<mask>", 0.0)]
    return XLMRobertaTokenizer(vocab=vocab, model_max_length=77)


def save_tiny_altclip(folder: Path, seed: int = 0) -> Path:
    """Tiny AltCLIPModel (XLM-R text tower) + XLM-R tokenizer from a SentencePiece model trained here."""
    from transformers import AltCLIPConfig, AltCLIPModel, AltCLIPProcessor, CLIPImageProcessor

    folder = Path(folder)
    lines = _english_sentences() + _chinese_sentences()
    tokenizer = xlm_roberta_tokenizer(_train_sentencepiece(lines, vocab_size=250, model_type="bpe"))

    torch.manual_seed(seed)
    config = AltCLIPConfig(
        # Roberta positions start at pad_token_id + 1, hence 77 + 2 positions for 77 tokens.
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=80, project_dim=32,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id),
        vision_config=_tiny_vision_config(),
        projection_dim=32,
    )
    AltCLIPModel(config).eval().save_pretrained(folder)
    AltCLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=tokenizer).save_pretrained(folder)
    return folder


def save_marian_tokenizer(folder: Path, size: int | None = None, model_max_length: int = 64):
    """MarianTokenizer: source/target SentencePiece models trained here and one shared vocab.json like the
    opus-mt models (</s>=0, <unk>=1, the pieces of both languages, <pad> last). `size` fills the vocab with
    placeholder pieces up to that many ids, the size of a real model's embedding."""
    from transformers import MarianTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    source = _train_sentencepiece(_chinese_sentences(), vocab_size=100)
    target = _train_sentencepiece(_english_sentences(), vocab_size=100)
    (folder / "source.spm").write_bytes(source)
    (folder / "target.spm").write_bytes(target)
    tokens = ["</s>", "<unk>"] + [piece for piece, _ in _sentencepiece_pieces(source) + _sentencepiece_pieces(target)]
    tokens = list(dict.fromkeys(tokens))
    tokens += [f"▁w{i}" for i in range((size or len(tokens) + 1) - len(tokens) - 1)] + ["<pad>"]
    (folder / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(tokens)}, ensure_ascii=False),
                                       encoding="utf-8")
    tokenizer = MarianTokenizer(source_spm=str(folder / "source.spm"), target_spm=str(folder / "target.spm"),
                                vocab=str(folder / "vocab.json"), source_lang="zh", target_lang="en",
                                model_max_length=model_max_length)
    assert len(tokenizer) == len(tokens)
    return tokenizer


def save_tiny_marian(folder: Path, seed: int = 0) -> Path:
    """Tiny Chinese->English MarianMTModel + MarianTokenizer (source/target SentencePiece models trained here)."""
    from transformers import GenerationConfig, MarianConfig, MarianMTModel

    folder = Path(folder)
    tokenizer = save_marian_tokenizer(folder)
    torch.manual_seed(seed)
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    config = MarianConfig(
        vocab_size=len(tokenizer), d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64,
        pad_token_id=pad, decoder_start_token_id=pad, eos_token_id=eos, forced_eos_token_id=eos,
    )
    model = MarianMTModel(config).eval()
    model.generation_config = GenerationConfig(
        pad_token_id=pad, decoder_start_token_id=pad, eos_token_id=eos, forced_eos_token_id=eos,
        bad_words_ids=[[pad]], num_beams=1,
    )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def clip_tokenizer():
    """The real CLIP BPE tokenizer from assets/ (note: `vocab=`/`merges=`, not `vocab_file=`, in transformers 5)."""
    from transformers import CLIPTokenizer

    return CLIPTokenizer(vocab=str(TOKENIZER_DIR / "vocab.json"), merges=str(TOKENIZER_DIR / "merges.txt"),
                         model_max_length=77)


def save_tiny_pickscore(folder: Path, seed: int = 0) -> Path:
    """Tiny CLIPModel laid out like PickScore (a CLIP-H fine-tune: plain CLIPModel, gelu, real CLIP tokenizer)."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    folder = Path(folder)
    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                         vocab_size=49408, max_position_embeddings=77, hidden_act="gelu"),
        vision_config=dict(_tiny_vision_config(), hidden_act="gelu"),
        projection_dim=32,
    )
    CLIPModel(config).eval().save_pretrained(folder)
    CLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=clip_tokenizer()).save_pretrained(folder)
    return folder


def save_tiny_safety_checker(folder: Path, concept_embeddings=None, thresholds=None, special_care_embeddings=None,
                             special_care_thresholds=None, seed: int = 0) -> Path:
    """Tiny diffusers StableDiffusionSafetyChecker + its CLIPImageProcessor (feature_extractor) in one folder.

    diffusers flags an image when round(cos(image_embed, concept_embeds[i]) - concept_embeds_weights[i], 3) > 0
    for any of the 17 concepts (plus 0.01 when one of the 3 special-care concepts also fires). The defaults
    from diffusers (all-ones embeddings, thresholds 1.0) never flag anything, since a cosine is at most 1.
    """
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor

    folder = Path(folder)
    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                         vocab_size=49408, max_position_embeddings=77),
        vision_config=_tiny_vision_config(),
        projection_dim=32,
    )
    checker = StableDiffusionSafetyChecker(config).eval()
    replacements = {
        "concept_embeds": concept_embeddings,
        "concept_embeds_weights": thresholds,
        "special_care_embeds": special_care_embeddings,
        "special_care_embeds_weights": special_care_thresholds,
    }
    with torch.no_grad():
        for name, value in replacements.items():
            if value is None:
                continue
            parameter = getattr(checker, name)
            value = torch.as_tensor(value, dtype=parameter.dtype)
            if value.shape != parameter.shape:  # from_pretrained would refuse a different shape
                raise ValueError(f"{name} must have shape {tuple(parameter.shape)}, got {tuple(value.shape)}")
            parameter.copy_(value)
    checker.save_pretrained(folder, safe_serialization=True)
    CLIPImageProcessor().save_pretrained(folder)
    return folder


@torch.no_grad()
def image_embedding(folder: Path, pil_image) -> torch.Tensor:
    """The L2-normalised projected embedding the checker compares with its concepts, shape [projection_dim].

    Setting a concept embedding to this vector makes its cosine with that image exactly 1.
    """
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPImageProcessor

    checker = StableDiffusionSafetyChecker.from_pretrained(folder, use_safetensors=True, local_files_only=True).eval()
    pixels = CLIPImageProcessor.from_pretrained(folder, local_files_only=True)(images=[pil_image], return_tensors="pt")
    pooled = checker.vision_model(pixels.pixel_values)[1]  # same as the checker's forward
    return torch.nn.functional.normalize(checker.visual_projection(pooled), dim=-1)[0]
