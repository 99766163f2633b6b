"""Convert OpenAI's CLIP BPE file into the vocab.json + merges.txt that CLIPTokenizer reads.

Run once; the result is committed under assets/tokenizer/. The source file is
`open_clip/bpe_simple_vocab_16e6.txt.gz` from the open-clip-torch wheel (install it with
`pip download --no-deps open-clip-torch`, never with its dependencies).

    python scripts/convert_clip_bpe.py path/to/bpe_simple_vocab_16e6.txt.gz assets/tokenizer
"""

import gzip
import json
import sys
from pathlib import Path

# CLIP keeps this many merges: 49152 lines minus the 256 byte tokens and 2 special tokens.
N_MERGES = 49152 - 256 - 2


def byte_alphabet() -> list[str]:
    """The 256 printable characters CLIP's BPE uses to stand for raw bytes, in CLIP's vocabulary order.

    Printable bytes map to themselves and come first; the other bytes map to chr(256 + k) and follow.
    """
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return [chr(c) for c in chars]


def convert(bpe_gz: Path, out_dir: Path) -> None:
    lines = gzip.open(bpe_gz, "rt", encoding="utf-8").read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : N_MERGES + 1]]
    alphabet = byte_alphabet()
    tokens = alphabet + [c + "</w>" for c in alphabet] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    assert len(vocab) == 49408, len(vocab)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    with open(out_dir / "merges.txt", "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")


if __name__ == "__main__":
    convert(Path(sys.argv[1]), Path(sys.argv[2]))
