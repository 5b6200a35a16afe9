"""The training loop's parts, each on its own (sentvae.trainer.Trainer)."""

import json

import pytest
import torch

from sentvae.checkpoint import load_checkpoint
from sentvae.config import ModelConfig
from sentvae.rundir import RunDir
from sentvae.trainer import Trainer
from sentvae.trainstate import Meter
from conftest import TINY_MODEL, tiny_train_config


def _trainer(tok, corpora, out, **cfg):
    return Trainer(ModelConfig(vocab_size=tok.vocab_size, **TINY_MODEL), tiny_train_config(**cfg), tok,
                   *corpora, out)


def test_one_step_moves_the_weights_and_the_position(tok, corpora, tmp_path):
    t = _trainer(tok, corpora, tmp_path, lr=1e-2)
    before = {k: v.clone() for k, v in t.raw.state_dict().items()}
    batches = t.epoch_batches(0)
    t.step(batches)
    assert (t.pos.step, t.pos.batch, t.pos.epoch) == (1, 1, 0)
    assert t.meter.steps == 1 and t.meter.tokens == int(corpora[0].lengths[batches[0]].sum()) + len(batches[0])
    assert any(not torch.equal(before[k], v) for k, v in t.raw.state_dict().items())
    assert t.opt.param_groups[0]["lr"] == pytest.approx(1e-2)


def test_meter_averages_and_starts_afresh():
    m = Meter("cpu")
    for loss in (1.0, 3.0):
        m.add({k: torch.tensor(loss) for k in Meter.KEYS}, tokens=10, inner=4)
    means, steps, tokens, inner, seconds = m.take()
    assert means["loss"] == 2.0 and (steps, tokens, inner) == (2, 20, 8) and seconds >= 0
    assert m.take()[1:4] == (0, 0, 0) and m.sums["loss"] == 0


def test_finished_names_the_stop_condition(tok, corpora, tmp_path):
    t = _trainer(tok, corpora, tmp_path, max_steps=5)
    assert t.finished() == ""
    t.pos.step = 5
    assert t.finished() == "max steps"
    t = _trainer(tok, corpora, tmp_path, max_steps=0, epochs=2)
    t.pos.step = 2 * t.n_batches
    assert t.finished() == "epochs"
    t = _trainer(tok, corpora, tmp_path, max_steps=0, epochs=0, time_budget=0.001)
    t.run_start -= 1.0
    assert t.finished() == "time budget"
    t.pos.stop = "early stop: no improvement in 3 validations"
    assert t.finished().startswith("early stop")


def test_validate_and_save_writes_best_and_last_and_logs(tok, corpora, tmp_path):
    t = _trainer(tok, corpora, tmp_path)
    with RunDir(tmp_path) as run:
        run.open_metrics()
        t.run_dir = run
        t.step(t.epoch_batches(0))
        t.validate_and_save()
        first = load_checkpoint(tmp_path / "best.pt")["info"]["valid"]["elbo"]
        t.pos.best = -1.0                    # pretend a better model was seen: no new best.pt
        t.validate_and_save()
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["best"] for r in rows] == [True, False] and all(r["split"] == "valid" for r in rows)
    assert load_checkpoint(tmp_path / "best.pt")["info"]["valid"]["elbo"] == first
    assert load_checkpoint(tmp_path / "last.pt")["train_state"]["position"]["step"] == 1


def test_logged_kl_weight_is_the_schedules_and_zero_for_an_lm(tok, corpora, tmp_path):
    """metrics.jsonl's kl_weight is what multiplies the KL in the loss: an LM (--no-latent) has
    none, so 0 (its PTB rows logged the unused anneal's 0.99, read in plots as a weight)."""
    for no_latent in (False, True):
        out = tmp_path / str(no_latent)
        t = Trainer(ModelConfig(vocab_size=tok.vocab_size, no_latent=no_latent, **TINY_MODEL),
                    tiny_train_config(kl_anneal="linear", anneal_steps=4), tok, *corpora, out)
        with RunDir(out) as run:
            run.open_metrics()
            t.run_dir = run
            batches = t.epoch_batches(0)
            for _ in range(3):
                t.step(batches)
                t.log_train()
        rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        want = [0.0] * 3 if no_latent else [0.0, 0.25, 0.5]
        assert [r["kl_weight"] for r in rows] == pytest.approx(want), no_latent


def test_check_aggressive_phase_ends_when_mi_falls(tok, corpora, tmp_path, monkeypatch):
    import sentvae.trainer as T
    mis = iter([1.0, 2.0, 1.5])
    monkeypatch.setattr(T, "evaluate", lambda *a, **k: type("R", (), {"mi": next(mis)})())
    t = _trainer(tok, corpora, tmp_path, aggressive=True)
    for expect in (False, False, True):
        t.check_aggressive_phase()
        assert t.pos.aggressive_done is expect
    assert t.pos.best_mi == 2.0
