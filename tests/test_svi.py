"""Semi-amortized inference (sentvae/svi.py): the optimiser is the one documented (momentum SGD,
per-sentence steps and clipping), checked against a hand computation; refining lowers each
sentence's -ELBO; a sentence's refinement does not depend on its batch; 0 steps change nothing;
training backpropagates through the unrolled steps (checked against finite differences), reaches
the encoder, and resumes exactly; bad values are refused naming the flag."""

import json
import math
import os
import signal

import numpy as np
import pytest
import torch

import sentvae
from sentvae.categorical import Categorical
from sentvae.checkpoint import load_checkpoint, load_model
from sentvae.config import SVI_LR, ModelConfig, TrainConfig
from sentvae.corpus import collate, subset
from sentvae.errors import SentvaeError, TrainingInterrupted
from sentvae.evaluate import evaluate
from sentvae.model import build_model
from sentvae.noise import SeededNoise
from sentvae.objective import ELBO
from sentvae.posteriors import Gaussian, Point
from sentvae.priors import StandardNormal
from sentvae.svi import CLIP, MOMENTUM, SEED_OFFSET, Refiner, check, neg_elbo, refine_corpus
from sentvae.trainer import train
from sentvae.vmf import VonMisesFisher
from conftest import TINY_MODEL, run_cli, tiny_train_config


@pytest.fixture(scope="module")
def model_and_data(trained, corpora):
    out, _ = trained
    model, _, _ = load_model(out / "best.pt")
    model.eval()
    return model, subset(corpora[1], np.arange(40))


class Toy:
    """A stand-in decoder whose gradients are known: log p(x|z) = -a/2 ||z - t||^2, where t, the
    sentence's target (B, nz), is passed as its decoder input."""

    def __init__(self, nz: int, a: float):
        self.prior, self.a = StandardNormal(nz), a

    def log_likelihood(self, z, inp, tgt):
        return -0.5 * self.a * ((z - inp) ** 2).sum(dim=-1)


def by_hand(mu, logvar, t, eps, lr, a):
    """The refinement of ONE sentence, as the module docstring writes it, in float64: the -ELBO
    a/2 ||z - t||^2 + KL(N(mu, e^logvar) || N(0, I)) with z = mu + e^(logvar/2) eps_k, its
    gradient's norm clipped at CLIP per tensor, momentum SGD."""
    m, lv = mu.double().clone(), logvar.double().clone()
    vm, vl = torch.zeros_like(m), torch.zeros_like(lv)
    for e in eps.double():
        s = torch.exp(0.5 * lv)
        z = m + s * e
        gm = a * (z - t) + m
        gl = a * (z - t) * e * 0.5 * s + 0.5 * (torch.exp(lv) - 1)
        gm, gl = (g * min(1.0, CLIP / float(g.norm())) for g in (gm, gl))
        vm, vl = MOMENTUM * vm + gm, MOMENTUM * vl + gl
        m, lv = m - lr * vm, lv - lr * vl
    return m, lv


def test_the_steps_are_momentum_sgd_on_each_sentences_own_elbo_clipped_per_sentence():
    g = torch.Generator().manual_seed(3)
    B, nz, steps, lr, a, seed = 5, 4, 6, 0.1, 1.0, 11
    mu, logvar = 0.3 * torch.randn(B, nz, generator=g), 0.3 * torch.randn(B, nz, generator=g)
    # near targets and far ones, whose first gradients are clipped
    t = torch.randn(B, nz, generator=g) * torch.tensor([0.1, 0.1, 4.0, 4.0, 4.0]).unsqueeze(1)
    idx = np.array([4, 9, 1, 30, 7])
    toy = Toy(nz, a)
    q = Refiner(steps, lr, seed=seed).refine(toy, Gaussian(mu, logvar), t, None, sentences=idx)
    assert isinstance(q, Gaussian)
    eps = SeededNoise(seed + SEED_OFFSET, idx, 0, steps).normal(nz)            # (B, steps, nz): step k = sample k
    # not the samples evaluation then measures the refined posterior with (an optimistic -ELBO)
    assert not torch.allclose(eps, SeededNoise(seed, idx, 0, steps).normal(nz))
    clipped = 0
    for i in range(B):
        m, lv = by_hand(mu[i], logvar[i], t[i], eps[i], lr, a)
        assert torch.allclose(q.mu[i].double(), m, atol=1e-5) and torch.allclose(q.logvar[i].double(), lv, atol=1e-5), i
        clipped += float((a * (mu[i] + torch.exp(0.5 * logvar[i]) * eps[i, 0] - t[i]) + mu[i]).norm()) > CLIP
    assert 0 < clipped < B                           # both sides of the clip were exercised
    # one sentence alone, or in another batch: the same refinement
    alone = Refiner(steps, lr, seed=seed).refine(toy, Gaussian(mu[2:3], logvar[2:3]), t[2:3], None, sentences=idx[2:3])
    assert torch.equal(alone.mu[0], q.mu[2]) and torch.equal(alone.logvar[0], q.logvar[2])


class SameNoise(Refiner):
    """Every step draws the same 8 samples per sentence: the -ELBO is then a deterministic function
    of the posterior's parameters, and each sentence's can be compared before and after."""

    def noise(self, step, sentences, batch, device):
        return SeededNoise(5, sentences, 0, 8, device)


def test_the_refined_per_sentence_elbo_is_never_above_the_encoders(model_and_data):
    model, valid = model_and_data
    idx = np.arange(len(valid))
    batch = collate(valid, idx)
    x = batch.tokens
    with torch.no_grad():
        q0 = model.encode(x[:, 1:], batch.lengths)
    q = SameNoise(20, SVI_LR).refine(model, q0, x[:, :-1], x[:, 1:], sentences=idx)
    with torch.no_grad():
        before = neg_elbo(model, q0, x[:, :-1], x[:, 1:], SeededNoise(5, idx, 0, 8))
        after = neg_elbo(model, q, x[:, :-1], x[:, 1:], SeededNoise(5, idx, 0, 8))
    assert (after <= before).all(), (after - before).max()
    assert float((before - after).mean()) > 0.1                        # it did move
    # and evaluation's own refinement (fresh noise at each step, figures from other samples) lowers
    # the -ELBO beyond its noise: mean paired difference more than 3 standard errors below 0
    r0 = evaluate(model, valid, iw_samples=20, per_sentence=True, with_mi=False)
    r = evaluate(model, valid, iw_samples=20, per_sentence=True, with_mi=False, svi_steps=20)
    d = r.per_sentence["elbo"] - r0.per_sentence["elbo"]
    assert d.mean() < -3 * d.std(ddof=1) / math.sqrt(len(d)), d
    assert r.svi_steps == 20 and r.svi_lr == SVI_LR and r0.svi_lr is None


def test_zero_steps_give_todays_figures_exactly(model_and_data):
    model, valid = model_and_data
    a = evaluate(model, valid, iw_samples=13, seed=2, per_sentence=True)
    b = evaluate(model, valid, iw_samples=13, seed=2, per_sentence=True, svi_steps=0, svi_lr=0.7)
    assert a.to_dict() == b.to_dict()
    for k in a.per_sentence:
        assert np.array_equal(a.per_sentence[k], b.per_sentence[k]), k
    q = Gaussian(torch.zeros(2, 3), torch.zeros(2, 3))
    assert Refiner(0, SVI_LR).refine(None, q, None, None) is q
    assert TrainConfig().svi_steps == 0                  # training refines nothing unless asked


def test_a_sentences_refinement_does_not_depend_on_its_batch(model_and_data):
    model, valid = model_and_data
    small = refine_corpus(model, valid, 3, SVI_LR, seed=3, max_tokens=120)
    large = refine_corpus(model, valid, 3, SVI_LR, seed=3, max_tokens=5000)
    assert torch.allclose(small.mu, large.mu, atol=1e-5) and torch.allclose(small.logvar, large.logvar, atol=1e-5)
    moved = refine_corpus(model, valid, 3, SVI_LR, seed=4, max_tokens=5000)      # another seed: other noise
    assert not torch.allclose(moved.mu, large.mu, atol=1e-3)
    a = evaluate(model, valid, iw_samples=7, max_tokens=150, seed=3, per_sentence=True, svi_steps=3)
    b = evaluate(model, valid, iw_samples=7, max_tokens=5000, seed=3, per_sentence=True, svi_steps=3)
    for k in ("elbo", "iw_nll", "kl"):
        assert np.allclose(a.per_sentence[k], b.per_sentence[k], rtol=1e-4, atol=1e-4), k


def _loss(model, batch, refiner, seed=0):
    """The training surrogate of one batch with the posterior refined by `refiner` (None: not),
    its noise from a fixed seed."""
    torch.manual_seed(seed)
    return ELBO(tiny_train_config()).loss(model(batch, svi=refiner), 1.0)[0]


def test_training_gradients_flow_through_the_refinement_into_the_encoder(tok, corpora):
    torch.manual_seed(0)
    model = build_model(ModelConfig(vocab_size=tok.vocab_size, **TINY_MODEL))
    batch = collate(corpora[0], np.arange(8))
    enc = [*model.encoder.parameters(), *model.to_posterior.parameters()]
    grads = {}
    for name, refiner in (("plain", None), ("svi", Refiner(3, SVI_LR, through=True))):
        model.zero_grad()
        _loss(model, batch, refiner).backward()
        grads[name] = torch.cat([p.grad.flatten() for p in enc])
    assert grads["svi"].norm() > 0 and torch.isfinite(grads["svi"]).all()
    assert not torch.allclose(grads["svi"], grads["plain"], rtol=1e-3, atol=1e-6)
    # (that it is the gradient through the steps, Hessian terms included: the next test)


def test_the_unrolled_gradient_matches_finite_differences(tok, corpora):
    """d L(lambda_K(lambda_0, theta)) / d(lambda_0, theta) by autograd through the steps equals a
    central difference along a random direction, for the encoder's output and the decoder's
    weights; and the gradient that ignores the steps' dependence does not."""
    torch.manual_seed(1)
    model = build_model(ModelConfig(vocab_size=tok.vocab_size, **TINY_MODEL)).eval()
    idx = np.arange(6)
    batch = collate(corpora[0], idx)
    x = batch.tokens
    with torch.no_grad():
        q0 = model.encode(x[:, 1:], batch.lengths)
    dec = [*model.decoder.parameters(), model.out_bias]
    g = torch.Generator().manual_seed(2)
    d_lam = {k: torch.randn(v.shape, generator=g) for k, v in q0.free_params().items()}
    d_dec = [torch.randn(p.shape, generator=g) for p in dec]

    def final(lam, through):
        q = Refiner(4, 0.3, through=through, seed=0).refine(model, q0.with_params(lam), x[:, :-1], x[:, 1:],
                                                            sentences=idx)
        return neg_elbo(model, q, x[:, :-1], x[:, 1:], SeededNoise(9, idx, 0, 4)).sum()

    def directional(lam, loss):
        grads = torch.autograd.grad(loss, [*lam.values(), *dec])
        n = len(lam)
        return (sum(float((gr * d_lam[k]).sum()) for gr, k in zip(grads[:n], lam)),
                sum(float((gr * d).sum()) for gr, d in zip(grads[n:], d_dec)))

    lam = {k: v.clone().requires_grad_() for k, v in q0.free_params().items()}
    exact = directional(lam, final(lam, True))
    # straight through: lambda_K's own gradient passed to lambda_0, the decoder's direct one only
    # (what the steps give without create_graph=True)
    lam_k = Refiner(4, 0.3, seed=0).refine(model, q0, x[:, :-1], x[:, 1:], sentences=idx).free_params()
    lam_k = {k: v.requires_grad_() for k, v in lam_k.items()}
    ignored = directional(lam_k, neg_elbo(model, q0.with_params(lam_k), x[:, :-1], x[:, 1:],
                                          SeededNoise(9, idx, 0, 4)).sum())

    h = 1e-2
    with torch.no_grad():
        fd_lam = (final({k: v + h * d_lam[k] for k, v in q0.free_params().items()}, False)
                  - final({k: v - h * d_lam[k] for k, v in q0.free_params().items()}, False)) / (2 * h)
        for p, d in zip(dec, d_dec):
            p.add_(h * d)
        plus = final(q0.free_params(), False)
        for p, d in zip(dec, d_dec):
            p.sub_(2 * h * d)
        minus = final(q0.free_params(), False)
        for p, d in zip(dec, d_dec):
            p.add_(h * d)
        fd_dec = (plus - minus) / (2 * h)
    for i, fd in enumerate((float(fd_lam), float(fd_dec))):
        # the unrolled steps run in float32: the central difference of a loss of ~tens of nats over
        # 2h = 0.02 resolves ~1e-3 at best (the noise streams alone moved it by 9e-4), hence abs=2e-3
        assert exact[i] == pytest.approx(fd, rel=1e-2, abs=2e-3), (i, exact, fd)
        assert abs(ignored[i] - fd) > 10 * abs(exact[i] - fd), (i, exact, ignored, fd)


def _rows(path):
    return [json.loads(line) for line in open(path) if json.loads(line)["split"] == "train"]


def test_svi_training_runs_and_ctrl_c_then_resume_equals_an_uninterrupted_run(tmp_path, tok, corpora):
    mcfg = ModelConfig(vocab_size=tok.vocab_size, **{**TINY_MODEL, "dropout": 0.2})
    full = tiny_train_config(max_steps=12, log_every=2, eval_every=4, svi_steps=2)
    train(mcfg, full, tok, *corpora, tmp_path / "a")

    def ctrl_c_at_5(kind, info):
        if kind == "step" and info["step"] == 5:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterrupted):
        train(mcfg, full, tok, *corpora, tmp_path / "b", on_event=ctrl_c_at_5)
    assert load_checkpoint(tmp_path / "b" / "last.pt")["train_state"]["position"]["step"] == 5
    train(mcfg, full, tok, *corpora, tmp_path / "b", resume=True)
    a, b = _rows(tmp_path / "a" / "metrics.jsonl"), _rows(tmp_path / "b" / "metrics.jsonl")
    later = [r for r in a if r["step"] > 6]
    assert later and [r["step"] for r in later] == [r["step"] for r in b if r["step"] > 6]
    for ra, rb in zip(later, [r for r in b if r["step"] > 6]):
        assert ra["loss"] == pytest.approx(rb["loss"], abs=1e-4) and math.isfinite(ra["loss"])
    wa = load_checkpoint(tmp_path / "a" / "last.pt")["model"]
    wb = load_checkpoint(tmp_path / "b" / "last.pt")["model"]
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-6), k
    # the refinement changed the run: a plain run's weights differ
    train(mcfg, tiny_train_config(max_steps=12, log_every=2, eval_every=4), tok, *corpora, tmp_path / "c")
    wc = load_checkpoint(tmp_path / "c" / "last.pt")["model"]
    assert not torch.allclose(wa["to_posterior.weight"], wc["to_posterior.weight"], atol=1e-4)


@pytest.mark.parametrize("family", [dict(posterior="iaf", flow_steps=2), dict(prior="gmm", components=3),
                                    dict(posterior="iaf", prior="gmm", components=3)])
def test_every_family_with_tensor_parameters_is_refined(family, tok, corpora):
    torch.manual_seed(0)
    model = build_model(ModelConfig(vocab_size=tok.vocab_size, **TINY_MODEL, **family)).eval()
    idx = np.arange(8)
    batch = collate(corpora[0], idx)
    x = batch.tokens
    with torch.no_grad():
        q0 = model.encode(x[:, 1:], batch.lengths)
    q = SameNoise(5, SVI_LR).refine(model, q0, x[:, :-1], x[:, 1:], sentences=idx)
    assert type(q) is type(q0) and set(q.free_params()) == set(q0.free_params())
    with torch.no_grad():
        before = neg_elbo(model, q0, x[:, :-1], x[:, 1:], SeededNoise(5, idx, 0, 8))
        after = neg_elbo(model, q, x[:, :-1], x[:, 1:], SeededNoise(5, idx, 0, 8))
    assert float((before - after).mean()) > 0.1
    model.train()
    _loss(model, batch, Refiner(2, SVI_LR, through=True)).backward()
    head = torch.cat([p.grad.flatten() for p in model.to_posterior.parameters() if p.grad is not None])
    assert torch.isfinite(head).all() and head.norm() > 0


def test_a_point_latent_is_refused_in_training_and_in_evaluation(tmp_path, corpus_dir, monkeypatch, capsys, v1):
    with pytest.raises(SentvaeError, match="^--svi-steps: the LM baseline has no latent to refine$"):
        check(3, Point)
    check(0, Point)
    for family in (VonMisesFisher, Categorical):        # parameters, but no steps on them here: said so
        with pytest.raises(SentvaeError, match=f"^--svi-steps: refines a Gaussian or IAF posterior .*, not a "
                                               f"{family.__name__} posterior$"):
            check(3, family)
    with pytest.raises(SentvaeError, match="^--svi-steps: the LM baseline has no latent"):
        sentvae.train(data=corpus_dir / "train.txt", out=tmp_path / "r", max_steps=2, epochs=0, device="cpu",
                      no_latent=True, svi_steps=2, **TINY_MODEL)
    assert not (tmp_path / "r").exists()
    code, _, err = run_cli(["eval", "-c", v1["lm"], "--data", corpus_dir / "valid.txt",
                            "--svi-steps", "2", "--device", "cpu"], monkeypatch, capsys)
    assert code == 2 and err.count("\n") == 1 and "--svi-steps: the LM baseline has no latent" in err, err


@pytest.mark.parametrize("args,flag", [(["--svi-steps", "-1"], "--svi-steps"), (["--svi-lr", "nan"], "--svi-lr"),
                                       (["--svi-lr", "inf"], "--svi-lr"), (["--svi-lr", "0"], "--svi-lr"),
                                       (["--svi-steps", "3", "--svi-lr", "-1"], "--svi-lr")])
def test_bad_values_are_refused_naming_the_flag(args, flag, trained, monkeypatch, capsys):
    out, _ = trained
    code, _, err = run_cli(["eval", "-c", out / "best.pt", "--device", "cpu", *args], monkeypatch, capsys)
    assert code == 2 and err.count("\n") == 1 and f"{flag}: must be" in err, err
    code, _, err = run_cli(["train", "--out", out / "never", "--max-steps", "1", *args], monkeypatch, capsys)
    assert code == 2 and f"{flag}: must be" in err, err
    assert not (out / "never").exists()


def test_bad_values_are_refused_by_the_api(trained):
    out, _ = trained
    model = sentvae.load(out / "best.pt", device="cpu")
    for kw, flag in ((dict(svi_steps=-2), "--svi-steps"), (dict(svi_steps=2.5), "--svi-steps"),
                     (dict(svi_steps=1, svi_lr=float("nan")), "--svi-lr")):
        with pytest.raises(SentvaeError, match=f"^{flag}: must be"):
            model.evaluate(["the cat sat ."], k=2, **kw)
    for kw, flag in ((dict(svi_steps=-1), "--svi-steps"), (dict(svi_lr=math.inf), "--svi-lr")):
        with pytest.raises(SentvaeError, match=f"^{flag}: must be"):
            TrainConfig(**kw)


def test_eval_reports_the_refinement(trained, corpus_dir, monkeypatch, capsys):
    out, _ = trained
    args = ["eval", "-c", out / "best.pt", "--data", corpus_dir / "valid.txt", "-k", "5", "--device", "cpu", "--json"]
    code, plain, err = run_cli(args, monkeypatch, capsys)
    assert code == 0, err
    code, refined, err = run_cli([*args, "--svi-steps", "4", "--svi-lr", "0.05"], monkeypatch, capsys)
    assert code == 0, err
    plain, refined = json.loads(plain), json.loads(refined)
    assert (plain["svi_steps"], plain["svi_lr"]) == (0, None) and (refined["svi_steps"], refined["svi_lr"]) == (4, 0.05)
    assert refined["elbo"] < plain["elbo"]
    assert "4 SVI steps" in err
