"""On a CUDA GPU: training in each precision, exact resume, and evaluations that agree with
the CPU's. CI has no GPU: these skip there, with the reason shown (`-ra`); they run on a GPU
machine with the rest of the suite (`make test`, or `python -m pytest tests/test_cuda.py`)."""

import math
import os
import signal

import pytest
import torch

from sentvae.checkpoint import load_checkpoint
from sentvae.config import ModelConfig
from sentvae.errors import TrainingInterrupted
from sentvae.trainer import train
from conftest import TINY_MODEL, tiny_train_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device (these run on a GPU machine)")


def _valid_rows(out):
    import json
    return [json.loads(line) for line in open(out / "metrics.jsonl") if json.loads(line)["split"] == "valid"]


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("arch", ["lstm", "transformer"])
def test_training_on_the_gpu_learns_in_every_precision(tmp_path, tok, corpora, precision, arch):
    mcfg = ModelConfig(vocab_size=tok.vocab_size, arch=arch, **TINY_MODEL)
    result = train(mcfg, tiny_train_config(max_steps=40, eval_every=20, precision=precision), tok, *corpora,
                   tmp_path / "run", device="cuda")
    rows = _valid_rows(tmp_path / "run")
    assert [r["step"] for r in rows] == [20, 40]
    assert all(math.isfinite(r["elbo"]) for r in rows)
    assert rows[1]["elbo"] < rows[0]["elbo"]
    assert result.best["elbo"] == min(r["elbo"] for r in rows)
    # what was saved on the GPU loads on a machine without one
    assert load_checkpoint(tmp_path / "run" / "best.pt", map_location="cpu")["info"]["valid"]["elbo"] == result.best["elbo"]


def test_ctrl_c_then_resume_on_the_gpu_equals_an_uninterrupted_run(tmp_path, tok, corpora):
    mcfg = ModelConfig(vocab_size=tok.vocab_size, **TINY_MODEL)
    cfg = tiny_train_config(max_steps=24, log_every=2, eval_every=6)
    train(mcfg, cfg, tok, *corpora, tmp_path / "a", device="cuda")

    def ctrl_c_at_11(kind, info):
        if kind == "step" and info["step"] == 11:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterrupted):
        train(mcfg, cfg, tok, *corpora, tmp_path / "b", device="cuda", on_event=ctrl_c_at_11)
    train(mcfg, cfg, tok, *corpora, tmp_path / "b", device="cuda", resume=True)
    a, b = _valid_rows(tmp_path / "a"), _valid_rows(tmp_path / "b")
    assert [r["step"] for r in a] == [r["step"] for r in b] == [6, 12, 18, 24]
    for ra, rb in zip(a, b):       # the GPU's RNG state travels in last.pt, as the CPU's does
        assert ra["elbo"] == pytest.approx(rb["elbo"], abs=1e-3)


def test_an_evaluation_on_the_gpu_gives_the_cpus_figures(trained, corpora):
    """The importance samples are drawn on the CPU from the seed: a GPU changes only rounding."""
    from sentvae.evaluate import evaluate
    from sentvae.checkpoint import load_model
    out, _ = trained
    figs = {}
    for dev in ("cpu", "cuda"):
        model, _, _ = load_model(out / "best.pt", dev)
        figs[dev] = evaluate(model, corpora[1], iw_samples=50, device=dev)
    for key in ("iw_nll", "elbo", "rec", "kl", "mi"):
        assert getattr(figs["cuda"], key) == pytest.approx(getattr(figs["cpu"], key), rel=2e-3, abs=1e-3), key
    assert figs["cuda"].au == figs["cpu"].au
