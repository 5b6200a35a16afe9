import json
import os
import signal

import pytest
import torch

from sentvae.checkpoint import load_checkpoint
from sentvae.config import ModelConfig, TrainConfig
from sentvae.errors import SentvaeError, TrainingInterrupted
from sentvae.train import train
from conftest import TINY_MODEL, tiny_train_config


def _rows(path, split="train"):
    return [json.loads(line) for line in open(path) if json.loads(line)["split"] == split]


def test_training_improves_the_validation_elbo(trained):
    out, result = trained
    rows = _rows(out / "metrics.jsonl", "valid")
    assert len(rows) == 2
    assert rows[-1]["elbo"] < rows[0]["elbo"]
    # the true -ELBO is rec + KL, not the annealed surrogate
    assert rows[-1]["elbo"] == pytest.approx(rows[-1]["rec"] + rows[-1]["kl"])
    assert result.best["elbo"] == min(r["elbo"] for r in rows)
    assert load_checkpoint(out / "best.pt")["info"]["valid"]["elbo"] == result.best["elbo"]
    assert "train_state" not in load_checkpoint(out / "best.pt")    # best.pt is for use, last.pt resumes


def test_ctrl_c_then_resume_equals_an_uninterrupted_run(tmp_path, tok, corpora):
    mcfg = ModelConfig(vocab_size=tok.vocab_size, **TINY_MODEL)
    # stops mid-epoch, between validations, with cyclical annealing spanning the break
    full = tiny_train_config(max_steps=24, kl_anneal="cyclical", cycles=2, log_every=2, eval_every=6)
    train(mcfg, full, tok, *corpora, tmp_path / "a")

    def ctrl_c_at_11(kind, info):
        if kind == "step" and info["step"] == 11:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterrupted):
        train(mcfg, full, tok, *corpora, tmp_path / "b", on_event=ctrl_c_at_11)
    assert load_checkpoint(tmp_path / "b" / "last.pt")["train_state"]["position"]["step"] == 11
    train(mcfg, full, tok, *corpora, tmp_path / "b", resume=True)
    a, b = _rows(tmp_path / "a" / "metrics.jsonl"), _rows(tmp_path / "b" / "metrics.jsonl")
    assert [r["step"] for r in a if r["step"] > 12] == [r["step"] for r in b if r["step"] > 12]
    for ra, rb in zip([r for r in a if r["step"] > 12], [r for r in b if r["step"] > 12]):
        assert ra["loss"] == pytest.approx(rb["loss"], abs=1e-4)
        assert ra["kl_weight"] == rb["kl_weight"]
    wa = load_checkpoint(tmp_path / "a" / "last.pt")["model"]
    wb = load_checkpoint(tmp_path / "b" / "last.pt")["model"]
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-6), k


def test_resume_with_other_data_is_refused(tmp_path, tok, corpora):
    from sentvae.data import split_corpus
    mcfg = ModelConfig(vocab_size=tok.vocab_size, **TINY_MODEL)
    train(mcfg, tiny_train_config(max_steps=3), tok, *corpora, tmp_path)
    smaller, _ = split_corpus(corpora[0], fraction=0.5)
    with pytest.raises(SentvaeError, match="same --data"):
        train(mcfg, tiny_train_config(max_steps=6), tok, smaller, corpora[1], tmp_path, resume=True)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, tok, corpora, monkeypatch):
    mcfg = ModelConfig(vocab_size=tok.vocab_size, **TINY_MODEL)
    train(mcfg, tiny_train_config(max_steps=10, eval_every=10), tok, *corpora, tmp_path)
    good = (tmp_path / "last.pt").read_bytes()
    import sentvae.step as T
    real = T.elbo_loss

    def poisoned(log_px_z, *a, **k):
        return real(log_px_z * float("nan"), *a, **k)

    monkeypatch.setattr(T, "elbo_loss", poisoned)
    with pytest.raises(SentvaeError, match="non-finite loss") as e:
        train(mcfg, tiny_train_config(max_steps=30, eval_every=10), tok, *corpora, tmp_path, resume=True)
    assert e.value.exit_code == 1
    assert (tmp_path / "last.pt").read_bytes() == good


def test_config_errors_name_the_flag():
    with pytest.raises(SentvaeError, match="--word-dropout"):
        TrainConfig(word_dropout=1.5)
    with pytest.raises(SentvaeError, match="--kl-anneal"):
        TrainConfig(kl_anneal="sometimes")
    with pytest.raises(SentvaeError, match="--latent"):
        ModelConfig(vocab_size=100, latent=0)
    with pytest.raises(SentvaeError, match="unknown TrainConfig key"):
        TrainConfig.from_dict({"lr": 1e-3, "learning_rate": 2})


def test_bf16_autocast_trains_on_cpu_and_fp16_needs_cuda(tmp_path, tok, corpora):
    mcfg = ModelConfig(vocab_size=tok.vocab_size, **TINY_MODEL)
    result = train(mcfg, tiny_train_config(max_steps=6, eval_every=6, precision="bf16"), tok, *corpora, tmp_path)
    rows = _rows(tmp_path / "metrics.jsonl")
    assert rows and all(r["loss"] == r["loss"] and r["loss"] < 1e6 for r in rows)   # finite
    assert result.best["elbo"] < 1e6
    with pytest.raises(SentvaeError, match="--precision fp16: needs a CUDA device"):
        train(mcfg, tiny_train_config(precision="fp16"), tok, *corpora, tmp_path / "b")
    with pytest.raises(SentvaeError, match="--precision"):
        tiny_train_config(precision="fp8")


def test_time_budget_stops_training(tmp_path, tok, corpora):
    import time as _time
    mcfg = ModelConfig(vocab_size=tok.vocab_size, **TINY_MODEL)
    t = _time.perf_counter()
    result = train(mcfg, tiny_train_config(max_steps=0, epochs=0, time_budget=1.0, eval_every=10_000),
                   tok, *corpora, tmp_path)
    assert result.stopped == "time budget" and result.position.step > 0
    assert _time.perf_counter() - t < 30
    assert load_checkpoint(tmp_path / "last.pt")["info"]["step"] == result.position.step
