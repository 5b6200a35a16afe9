"""The learning-rate schedule and early stopping: the pure pieces, then the training loop with a
scripted validation curve (decay on a plateau, restart from the best weights, stop, exact resume)."""

import json
import os
import signal

import pytest
import torch

from sentvae import schedule
from sentvae.checkpoint import load_checkpoint
from sentvae.config import ModelConfig, TrainConfig
from sentvae.errors import SentvaeError, TrainingInterrupted
from sentvae.trainer import Position, train
from conftest import TINY_MODEL, tiny_train_config


def test_cosine_warms_up_then_falls_to_min_lr():
    cfg = TrainConfig(lr=1e-3, lr_schedule="cosine", warmup_steps=10, min_lr=1e-5)
    rates = [schedule.learning_rate(s, cfg, 110) for s in range(110)]
    assert rates[0] == pytest.approx(1e-4)            # 1/10 of the way up
    assert rates[9] == pytest.approx(1e-3)            # warm
    assert all(a >= b for a, b in zip(rates[9:], rates[10:]))
    assert rates[60] == pytest.approx((1e-3 + 1e-5) / 2)   # half way down
    assert schedule.learning_rate(110, cfg, 110) == pytest.approx(1e-5)


def test_plateau_counts_only_settled_validations_and_decays_then_stops():
    cfg = TrainConfig(lr_schedule="plateau", patience=2, lr_decay=0.5, max_decays=1)
    st = Position()
    # while annealing, no number of bad validations decays the rate
    assert [schedule.on_validation(False, st, cfg, settled=False) for _ in range(5)] == ["continue"] * 5
    assert st.bad == 0
    seq = [schedule.on_validation(imp, st, cfg, settled=True) for imp in (True, False, False, True, False, False)]
    assert seq == ["continue", "continue", "decay", "continue", "continue", "stop"]
    assert st.lr_scale == 0.5 and st.decays == 1
    assert schedule.learning_rate(0, cfg, None, st.lr_scale) == pytest.approx(cfg.lr / 2)


def test_early_stop_without_a_schedule():
    cfg = TrainConfig(early_stop=3)
    st = Position()
    seq = [schedule.on_validation(imp, st, cfg, settled=True) for imp in (True, False, False, True, False, False, False)]
    assert seq == ["continue"] * 6 + ["stop"]
    assert st.lr_scale == 1.0


def test_settling_waits_for_pretraining_and_annealing():
    assert schedule.settled_from(TrainConfig(kl_anneal="linear", anneal_steps=100, pretrain_steps=50), None) == 150
    assert schedule.settled_from(TrainConfig(kl_anneal="none"), None) == 0
    cyc = TrainConfig(kl_anneal="cyclical", cycles=4, cycle_ratio=0.5)
    assert schedule.settled_from(cyc, 400) == 350


def test_schedule_options_name_the_flag():
    with pytest.raises(SentvaeError, match="--lr-schedule"):
        TrainConfig(lr_schedule="step")
    with pytest.raises(SentvaeError, match="--lr-decay"):
        TrainConfig(lr_decay=1.5)
    with pytest.raises(SentvaeError, match="--min-lr"):
        TrainConfig(lr=1e-3, min_lr=1e-2)


class ScriptedValidation:
    """Replaces the validation pass: real figures, but -ELBO taken from a script, one value per
    validation (the same object across an interrupted run and its resume continues the script)."""

    def __init__(self, script, monkeypatch):
        import sentvae.trainer as T
        from sentvae.evaluate import evaluate_elbo
        self.script, self.calls, self.real = list(script), 0, evaluate_elbo
        monkeypatch.setattr(T, "evaluate_elbo", self)

    def __call__(self, *a, **k):
        figures = self.real(*a, **k)
        figures["elbo"] = self.script[self.calls]
        self.calls += 1
        return figures


# validations every 4 steps: improve, improve, bad, bad -> decay (step 16), improve, bad, bad -> stop (28)
SCRIPT = [50.0, 40.0, 41.0, 42.0, 39.0, 39.5, 39.6, 39.7, 39.8]


def _plateau_cfg(**kw):
    kw = {"decay_restart": True, "max_steps": 36, "kl_anneal": "none", "max_decays": 1, **kw}
    return tiny_train_config(eval_every=4, log_every=2, lr=3e-3,
                             lr_schedule="plateau", patience=2, lr_decay=0.1, **kw)


def _valid_rows(out):
    return [r for r in map(json.loads, open(out / "metrics.jsonl")) if r["split"] == "valid"]


# a crawl: 0.01 nats a validation after step 8, then one step of 0.03 (39.94 at step 24)
CRAWL = [50.0, 40.0, 39.99, 39.98, 39.97, 39.94, 39.93, 39.92, 39.91]


def test_min_improvement_turns_a_crawl_into_a_plateau_and_best_pt_still_follows(tmp_path, tok, corpora, monkeypatch):
    mcfg = ModelConfig(vocab_size=tok.vocab_size, **TINY_MODEL)
    ScriptedValidation(CRAWL, monkeypatch)
    result = train(mcfg, _plateau_cfg(decay_restart=False, min_improvement=0.05), tok, *corpora, tmp_path / "a")
    # 39.99, 39.98: under 40 - 0.05, two without a gain -> decay; 39.94 is 0.06 under the mark (40):
    # a gain, the new mark; 39.93, 39.92 -> the plateau after the last decay: stop
    assert [r["decision"] for r in _valid_rows(tmp_path / "a")] == \
        ["continue"] * 3 + ["decay", "continue", "continue", "continue", "stop"]
    assert result.position.step == 32 and result.stopped.startswith("converged")
    best = load_checkpoint(tmp_path / "a" / "best.pt")["info"]
    assert best["step"] == 32 and best["valid"]["elbo"] == pytest.approx(39.92)   # every improvement
    # without it (the default), each of those validations is an improvement: no decay, no stop
    ScriptedValidation(CRAWL, monkeypatch)
    result = train(mcfg, _plateau_cfg(decay_restart=False), tok, *corpora, tmp_path / "b")
    assert {r["decision"] for r in _valid_rows(tmp_path / "b")} == {"continue"}
    assert result.position.step == 36 and result.stopped == "max steps"
    with pytest.raises(SentvaeError, match="--min-improvement"):
        TrainConfig(min_improvement=-0.1)


def test_plateau_decays_restarts_from_best_and_stops(tmp_path, tok, corpora, monkeypatch):
    mcfg = ModelConfig(vocab_size=tok.vocab_size, **TINY_MODEL)
    ScriptedValidation(SCRIPT, monkeypatch)
    snapshots = {}

    def keep(kind, info):
        if kind == "valid" and info["step"] in (8, 16):
            snapshots[info["step"]] = load_checkpoint(tmp_path / "last.pt")

    result = train(mcfg, _plateau_cfg(), tok, *corpora, tmp_path, on_event=keep)
    rows = _valid_rows(tmp_path)
    assert [r["decision"] for r in rows] == ["continue"] * 3 + ["decay"] + ["continue"] * 2 + ["stop"]
    assert result.position.step == 28 and result.stopped.startswith("converged")
    # after the decay at step 16: the best weights (step 8's), fresh optimizer moments
    best8, at16 = snapshots[8]["model"], snapshots[16]["model"]
    for k in best8:
        assert torch.equal(best8[k], at16[k]), k
    assert snapshots[16]["train_state"]["optimizer"]["state"] == {}
    train_rows = [r for r in map(json.loads, open(tmp_path / "metrics.jsonl")) if r["split"] == "train"]
    assert all(r["lr"] == pytest.approx(3e-3) for r in train_rows if r["step"] <= 16)
    assert all(r["lr"] == pytest.approx(3e-4) for r in train_rows if r["step"] > 16)
    # a finished run stays finished: --resume has nothing left to do, and does not validate again
    again = train(mcfg, _plateau_cfg(), tok, *corpora, tmp_path, resume=True)
    assert again.position.step == 28 and again.stopped.startswith("converged")
    assert len(_valid_rows(tmp_path)) == len(rows)
    assert again.best["elbo"] == 39.0 and again.best["step"] == 20     # what best.pt holds, not nothing


def test_a_better_validation_before_settling_is_not_the_plateau_s_reference(tmp_path, tok, corpora, monkeypatch):
    # a VAE started from an LM: its first validation (KL still near 0) has the best -ELBO the run
    # will see for a while. Settled from step 8 (linear anneal); after that -ELBO falls every time,
    # so no decay is due, however far above the unsettled 30.0 it stays.
    mcfg = ModelConfig(vocab_size=tok.vocab_size, **TINY_MODEL)
    ScriptedValidation([30.0, 45.0, 44.0, 43.0, 42.0, 41.0], monkeypatch)
    cfg = _plateau_cfg(max_steps=24, kl_anneal="linear", anneal_steps=8, decay_restart=False)
    train(mcfg, cfg, tok, *corpora, tmp_path)
    rows = _valid_rows(tmp_path)
    assert [r["step"] for r in rows] == [4, 8, 12, 16, 20, 24]
    assert [r["decision"] for r in rows] == ["continue"] * 6
    assert rows[0]["best"] and not any(r["best"] for r in rows[1:])      # best.pt: still step 4's


def test_no_restart_keeps_the_current_weights(tmp_path, tok, corpora, monkeypatch):
    mcfg = ModelConfig(vocab_size=tok.vocab_size, **TINY_MODEL)
    ScriptedValidation(SCRIPT, monkeypatch)
    seen = {}
    train(mcfg, _plateau_cfg(decay_restart=False), tok, *corpora, tmp_path,
          on_event=lambda k, i: seen.setdefault(i["step"], load_checkpoint(tmp_path / "last.pt"))
          if k == "valid" and i["step"] in (8, 16) else None)
    assert any(not torch.equal(seen[8]["model"][k], seen[16]["model"][k]) for k in seen[8]["model"])
    assert seen[16]["train_state"]["optimizer"]["state"] != {}


def test_resume_across_a_decay_is_exact(tmp_path, tok, corpora, monkeypatch):
    mcfg = ModelConfig(vocab_size=tok.vocab_size, **TINY_MODEL)
    ScriptedValidation(SCRIPT, monkeypatch)
    train(mcfg, _plateau_cfg(), tok, *corpora, tmp_path / "a")

    def ctrl_c_at_14(kind, info):
        if kind == "step" and info["step"] == 14:
            os.kill(os.getpid(), signal.SIGINT)

    ScriptedValidation(SCRIPT, monkeypatch)          # one script across the break
    with pytest.raises(TrainingInterrupted):
        train(mcfg, _plateau_cfg(), tok, *corpora, tmp_path / "b", on_event=ctrl_c_at_14)
    b = train(mcfg, _plateau_cfg(), tok, *corpora, tmp_path / "b", resume=True)
    assert b.position.step == 28 and b.position.decays == 1
    wa = load_checkpoint(tmp_path / "a" / "last.pt")["model"]
    wb = load_checkpoint(tmp_path / "b" / "last.pt")["model"]
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-6), k


def test_reopen_a_stopped_schedule_with_a_raised_max_decays():
    cfg = TrainConfig(lr_schedule="plateau", patience=2, lr_decay=0.5, max_decays=1)
    st = Position(decays=1, bad=2, lr_scale=0.5, stop="converged: no improvement after 1 learning-rate decays")
    assert schedule.reopen(st, cfg) == "stop" and st.stop            # same options: still stopped
    assert schedule.reopen(st, TrainConfig(**{**vars(cfg), "max_decays": 3})) == "decay"
    assert st.stop == "" and st.decays == 2 and st.lr_scale == 0.25 and st.bad == 0
    early = Position(bad=2, stop="early stop: no improvement in 2 validations")
    assert schedule.reopen(early, TrainConfig(early_stop=4)) == "continue" and early.stop == ""


def test_resuming_a_converged_run_with_more_decays_goes_on_as_one_run_would(tmp_path, tok, corpora, monkeypatch):
    # one run with --max-decays 2 against one stopped by --max-decays 1 at step 28, resumed with 2:
    # the stop becomes the decay (and restart from the best weights) the longer run made there
    mcfg = ModelConfig(vocab_size=tok.vocab_size, **TINY_MODEL)
    ScriptedValidation(SCRIPT, monkeypatch)
    a = train(mcfg, _plateau_cfg(max_decays=2), tok, *corpora, tmp_path / "a")
    assert a.position.step == 36 and a.position.decays == 2
    ScriptedValidation(SCRIPT, monkeypatch)          # one script across the break
    stopped = train(mcfg, _plateau_cfg(), tok, *corpora, tmp_path / "b")
    assert stopped.position.step == 28 and stopped.stopped.startswith("converged")
    b = train(mcfg, _plateau_cfg(max_decays=2), tok, *corpora, tmp_path / "b", resume=True)
    assert b.position.step == 36 and b.position.decays == 2 and b.position.lr_scale == pytest.approx(0.01)
    assert load_checkpoint(tmp_path / "b" / "last.pt")["train_config"]["max_decays"] == 2
    wa = load_checkpoint(tmp_path / "a" / "last.pt")["model"]
    wb = load_checkpoint(tmp_path / "b" / "last.pt")["model"]
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-6), k


def test_early_stop_ends_the_run(tmp_path, tok, corpora, monkeypatch):
    mcfg = ModelConfig(vocab_size=tok.vocab_size, **TINY_MODEL)
    ScriptedValidation(SCRIPT, monkeypatch)
    result = train(mcfg, tiny_train_config(max_steps=36, eval_every=4, kl_anneal="none", early_stop=2),
                   tok, *corpora, tmp_path)
    assert result.position.step == 16 and result.stopped.startswith("early stop")
    assert load_checkpoint(tmp_path / "best.pt")["info"]["step"] == 8


def test_a_changed_lr_on_resume_takes_effect_and_is_recorded(tmp_path, tok, corpora):
    mcfg = ModelConfig(vocab_size=tok.vocab_size, **TINY_MODEL)
    train(mcfg, tiny_train_config(max_steps=6, eval_every=6), tok, *corpora, tmp_path)
    before = load_checkpoint(tmp_path / "last.pt")["model"]
    train(mcfg, tiny_train_config(max_steps=12, eval_every=6, lr=1e-12, weight_decay=0.5), tok, *corpora,
          tmp_path, resume=True)
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt["train_config"]["lr"] == 1e-12
    group = ckpt["train_state"]["optimizer"]["param_groups"][0]
    assert group["lr"] == 1e-12 and group["weight_decay"] == 0.5
    for k, w in ckpt["model"].items():       # a rate of 1e-12 moves nothing measurable
        assert torch.allclose(w, before[k], atol=1e-8), k


def test_cosine_needs_a_known_end(tmp_path, tok, corpora):
    mcfg = ModelConfig(vocab_size=tok.vocab_size, **TINY_MODEL)
    with pytest.raises(SentvaeError, match="--lr-schedule cosine"):
        train(mcfg, tiny_train_config(max_steps=0, epochs=0, time_budget=5, lr_schedule="cosine"),
              tok, *corpora, tmp_path)
