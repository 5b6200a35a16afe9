import json
import os
import signal

import pytest
import torch

from sentvae.checkpoint import load_checkpoint
from sentvae.config import ModelConfig, TrainConfig
from sentvae.errors import SentvaeError, TrainingInterrupted
from sentvae.trainer import train
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


def test_resuming_an_interrupted_run_with_nothing_left_to_do_validates_where_it_stopped(tmp_path, tok, corpora):
    # last.pt saved by Ctrl-C at step 11 carries the figures of the validation at step 6: they are
    # not step 11's, so a resume that has no step left to take must validate before it ends
    mcfg = ModelConfig(vocab_size=tok.vocab_size, **TINY_MODEL)

    def ctrl_c_at_11(kind, info):
        if kind == "step" and info["step"] == 11:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterrupted):
        train(mcfg, tiny_train_config(max_steps=12, eval_every=6), tok, *corpora, tmp_path, on_event=ctrl_c_at_11)
    assert load_checkpoint(tmp_path / "last.pt")["info"]["valid"]["step"] == 6
    result = train(mcfg, tiny_train_config(max_steps=11, eval_every=6), tok, *corpora, tmp_path, resume=True)
    assert result.last["step"] == 11
    assert [r["step"] for r in _rows(tmp_path / "metrics.jsonl", "valid")] == [6, 11]
    assert load_checkpoint(tmp_path / "last.pt")["info"]["valid"]["step"] == 11


def test_resume_with_other_data_is_refused(tmp_path, tok, corpora):
    from sentvae.corpus import split_corpus
    mcfg = ModelConfig(vocab_size=tok.vocab_size, **TINY_MODEL)
    train(mcfg, tiny_train_config(max_steps=3), tok, *corpora, tmp_path)
    smaller, _ = split_corpus(corpora[0], fraction=0.5)
    with pytest.raises(SentvaeError, match="same --data"):
        train(mcfg, tiny_train_config(max_steps=6), tok, smaller, corpora[1], tmp_path, resume=True)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, tok, corpora, monkeypatch):
    mcfg = ModelConfig(vocab_size=tok.vocab_size, **TINY_MODEL)
    train(mcfg, tiny_train_config(max_steps=10, eval_every=10), tok, *corpora, tmp_path)
    good = (tmp_path / "last.pt").read_bytes()
    from sentvae.objective import ELBO
    real = ELBO.loss

    def poisoned(self, terms, weight):
        terms.ll = terms.ll * float("nan")
        return real(self, terms, weight)

    monkeypatch.setattr(ELBO, "loss", poisoned)
    with pytest.raises(SentvaeError, match="non-finite loss") as e:
        train(mcfg, tiny_train_config(max_steps=30, eval_every=10), tok, *corpora, tmp_path, resume=True)
    assert e.value.exit_code == 1
    assert f"kept the last good checkpoint {tmp_path / 'last.pt'} (step 10)" in str(e.value)
    assert "lower --lr" not in str(e.value)             # nothing says it is the learning rate
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


def test_bf16_autocast_is_really_on_and_close_to_fp32(tmp_path, tok, corpora):
    import numpy as np
    from sentvae.corpus import collate
    from sentvae.model import build_model
    from sentvae.step import train_step
    mcfg = ModelConfig(vocab_size=tok.vocab_size, **TINY_MODEL)
    # inside a bf16 step the matrix products run in bfloat16; the loss itself stays float32
    torch.manual_seed(0)
    m = build_model(mcfg)
    seen = []
    m.to_posterior.register_forward_hook(lambda mod, inp, out: seen.append(out))
    figs = train_step(m, torch.optim.AdamW(m.parameters()), collate(corpora[0], np.arange(8)), 1.0,
                      tiny_train_config(precision="bf16"))
    assert [q.mu.dtype for q in seen] == [torch.bfloat16] and figs["loss"].dtype == torch.float32
    # a short run in bf16 lands near fp32's figures, but not on them (it did run in bf16)
    runs = {}
    for prec in ("fp32", "bf16"):
        runs[prec] = train(mcfg, tiny_train_config(max_steps=6, eval_every=6, precision=prec), tok, *corpora,
                           tmp_path / prec).best["elbo"]
    assert runs["bf16"] != runs["fp32"]
    assert abs(runs["bf16"] - runs["fp32"]) < 0.02 * runs["fp32"], runs
    with pytest.raises(SentvaeError, match="--precision fp16: needs a CUDA device"):
        train(mcfg, tiny_train_config(precision="fp16"), tok, *corpora, tmp_path / "b")
    with pytest.raises(SentvaeError, match="--precision"):
        tiny_train_config(precision="fp8")


def test_a_second_ctrl_c_aborts_at_once_and_keeps_the_previous_last_pt(tmp_path, corpus_dir):
    """The first Ctrl-C asks for a save at the next step; a second one during that (slowed) save
    aborts it: exit 130, and last.pt is the previous one, byte for byte."""
    import subprocess
    import sys
    import time
    from conftest import ROOT
    from test_reliability import SLOW_WRITER, TINY
    ck = tmp_path / "ck"
    common = ["train", "--data", str(corpus_dir / "train.txt"), "--out", str(ck), *TINY]
    subprocess.run([sys.executable, "-m", "sentvae", *common, "--max-steps", "3", "--eval-every", "3"],
                   cwd=ROOT, check=True, capture_output=True, timeout=120)
    before = (ck / "last.pt").read_bytes()
    p = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, *common, "--resume", "--max-steps", "100000",
                          "--epochs", "0", "--eval-every", "100000"],
                         cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    size = (ck / "metrics.jsonl").stat().st_size
    while time.time() < deadline and (ck / "metrics.jsonl").stat().st_size == size:   # training steps
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    while time.time() < deadline and not (ck / f".last.pt.tmp{p.pid}").exists():    # its save began
        time.sleep(0.002)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err[-500:]
    assert "Traceback" not in err
    assert (ck / "last.pt").read_bytes() == before
    assert not list(ck.glob(".*.tmp*"))


def test_time_budget_stops_training(tmp_path, tok, corpora):
    import time as _time
    mcfg = ModelConfig(vocab_size=tok.vocab_size, **TINY_MODEL)
    t = _time.perf_counter()
    result = train(mcfg, tiny_train_config(max_steps=0, epochs=0, time_budget=1.0, eval_every=10_000),
                   tok, *corpora, tmp_path)
    assert result.stopped == "time budget" and result.position.step > 0
    assert _time.perf_counter() - t < 30
    assert load_checkpoint(tmp_path / "last.pt")["info"]["step"] == result.position.step
