"""Shared fixtures: a tiny corpus cut from the bundled one, a tokenizer, a tiny trained model.

Everything is small enough that the whole suite runs in a few minutes on 2 CPU cores.
"""

import os
import sys
import tempfile
from pathlib import Path

# datasets reads these at import time: keep every test local and its cache out of $HOME
_CACHE = tempfile.mkdtemp(prefix="sentvae-test-hf-")
os.environ.setdefault("HF_DATASETS_CACHE", _CACHE)
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(2)

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "data"

TINY_MODEL = {"emb_dim": 32, "hidden": 32, "latent": 8, "dropout": 0.0}


@pytest.fixture(scope="session")
def v1(tmp_path_factory) -> dict:
    """{"vae": path, "lm": path}: checkpoints of format version 1 (sentvae 0.2.0), written for this
    session by tests/fixtures/v1_format.py (no checkpoint is tracked)."""
    sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
    from v1_format import write
    return write(tmp_path_factory.mktemp("v1"))


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("corpus")
    lines = (BUNDLED / "train.txt").read_text(encoding="utf-8").splitlines()
    (d / "train.txt").write_text("\n".join(lines[:600]) + "\n", encoding="utf-8")
    valid = (BUNDLED / "valid.txt").read_text(encoding="utf-8").splitlines()
    (d / "valid.txt").write_text("\n".join(valid[:80]) + "\n", encoding="utf-8")
    return d


@pytest.fixture(scope="session")
def tok(corpus_dir):
    from sentvae.data import read_texts
    from sentvae.tokenizer import train_tokenizer
    return train_tokenizer(read_texts([str(corpus_dir / "train.txt")]), "word", 1000)


@pytest.fixture(scope="session")
def corpora(corpus_dir, tok):
    from sentvae.corpus import load_corpus
    return (load_corpus([str(corpus_dir / "train.txt")], tok, 40),
            load_corpus([str(corpus_dir / "valid.txt")], tok, 40))


def tiny_train_config(**kw):
    from sentvae.config import TrainConfig
    base = dict(max_tokens=400, epochs=0, max_steps=20, eval_every=10, log_every=5,
                anneal_steps=20, word_dropout=0.3, seed=0)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="session")
def trained(tmp_path_factory, tok, corpora):
    """A tiny model trained for a few dozen steps: (out dir, result)."""
    from sentvae.config import ModelConfig
    from sentvae.trainer import train
    out = tmp_path_factory.mktemp("trained")
    cfg = tiny_train_config(max_steps=60, eval_every=30)
    result = train(ModelConfig(vocab_size=tok.vocab_size, **TINY_MODEL), cfg, tok, *corpora, out)
    return out, result


def run_cli(args, monkeypatch, capsys, stdin=None):
    """Run `sentvae ARGS` in-process: -> (exit code, stdout, stderr)."""
    from sentvae import cli
    monkeypatch.setattr(sys, "argv", ["sentvae", *map(str, args)])
    if stdin is not None:
        import io
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
    capsys.readouterr()
    try:
        cli.main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err
