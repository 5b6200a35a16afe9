"""Shared by the benchmarks: where Penn Treebank is, and its word tokenizer (V = 10,000).

Importing it (before sentvae) also puts the repository on sys.path and keeps datasets off
the Hugging Face Hub, which this machine cannot reach."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
PTB = ROOT.parent / "shared" / "data" / "ptb"
TOKENIZER_CACHE = ROOT / "bench" / ".ptb-word10k.model"   # ignored by git


def ptb_tokenizer(ptb: Path = PTB):
    """Trained once on ptb.train.txt, then read from the cache."""
    from sentvae.data import read_texts
    from sentvae.tokenizer import Tokenizer, train_tokenizer

    if TOKENIZER_CACHE.is_file():
        return Tokenizer.load(TOKENIZER_CACHE)
    tok = train_tokenizer(read_texts([str(ptb / "ptb.train.txt")]), "word", 10000)
    tok.save(TOKENIZER_CACHE)
    return tok
