"""The categorical latent against exact values: its posterior and prior against torch.distributions,
the exact log p(x) against a brute-force sum computed token by token, the importance-weighted
estimate converging to it as K grows, the categorical-beside-Gaussian IW-NLL against quadrature,
MI by hand; the estimators: REINFORCE unbiased (its mean gradient within the Monte Carlo error of
the exact one, where the Gumbel relaxation's is not), the baseline learning apart from the rest,
the temperature schedule, straight-through's one-hot forward, the token budget counting copies."""

import math

import numpy as np
import pytest
import torch
from torch.distributions import Categorical as TorchCategorical, kl_divergence as torch_kl

from sentvae.categorical import Categorical, CategoricalAndNormal, UniformCategorical, WithCategory
from sentvae.config import ModelConfig, TrainConfig
from sentvae.corpus import collate, corpus_from_ids
from sentvae.estimators import Exact, Gumbel, Reinforce, temperature
from sentvae.evaluate import evaluate, mutual_information
from sentvae.kl import kl_divergence
from sentvae.model import build_model
from sentvae.noise import SeededNoise, StreamNoise
from sentvae.objective import build_objective
from sentvae.posteriors import Gaussian
from sentvae.step import train_step
from sentvae.tokenizer import BOS, EOS

SENTENCES = [[4], [5, 4], [4, 6, 5], [7, 7, 4, 5], [6, 5]]


def _tiny(latent_type="categorical", K=3, nz=3, seed=5):
    """vocab 8, a decoder that leans on the category and a posterior far from uniform."""
    torch.manual_seed(seed)
    m = build_model(ModelConfig(vocab_size=8, emb_dim=8, hidden=8, latent=nz, dropout=0.0, bidirectional=False,
                                latent_type=latent_type, categories=K)).eval()
    with torch.no_grad():
        m.conditioner.embed.weight.mul_(3.0)
        head = m.to_posterior if latent_type == "categorical" else m.to_posterior.categorical
        head.to_logits.weight.mul_(4.0)
    return m


def _train_cfg(**kw):
    return TrainConfig(**{"max_tokens": 4000, "max_len": 40, "epochs": 1, "word_dropout": 0.0, **kw})


# --- the objects
def test_categorical_posterior_and_prior_match_torch():
    logits = torch.randn(4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    q, ref = Categorical(logits), TorchCategorical(logits=logits)
    eye = torch.eye(5, dtype=torch.float64)
    z = eye[torch.tensor([[0, 3, 1, 4], [2, 2, 0, 1]])]                      # (2, B, K): broadcasts
    assert torch.allclose(q.log_prob(z), ref.log_prob(torch.tensor([[0, 3, 1, 4], [2, 2, 0, 1]])), atol=1e-12)
    assert torch.isinf(q.log_prob(torch.full((4, 5), 0.2, dtype=torch.float64))).all()   # off the vertices
    assert torch.allclose(q.entropy(), ref.entropy(), atol=1e-12)
    kl = kl_divergence(q, UniformCategorical(5))
    assert kl.exact and torch.allclose(kl.total, torch_kl(ref, TorchCategorical(logits=torch.zeros(5, dtype=torch.float64))))
    # Gumbel-max samples have q's frequencies, and log q of what they drew
    zs, log_q = q.rsample(StreamNoise(4, 40_000, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
    assert ((zs == 0) | (zs == 1)).all() and (zs.sum(-1) == 1).all()
    assert torch.allclose(zs.mean(1), ref.probs, atol=0.01)
    assert torch.allclose(log_q, (zs * torch.log_softmax(logits, -1).unsqueeze(1)).sum(-1))
    assert torch.equal(q.mean(), eye[logits.argmax(-1)])                     # the most probable category's code
    prior = UniformCategorical(5)
    assert torch.allclose(prior.log_prob(eye), torch.full((5,), -math.log(5), dtype=torch.float64))
    draws = prior.sample(20_000, torch.Generator().manual_seed(2))
    assert torch.allclose(draws.mean(0), torch.full((5,), 0.2), atol=0.01)
    assert torch.equal(prior.sample(3, category=4), eye[[4, 4, 4]].float())


def test_categorical_beside_gaussian_is_the_product_of_its_parts():
    g = torch.Generator().manual_seed(3)
    cat = Categorical(torch.randn(3, 4, dtype=torch.float64, generator=g))
    gau = Gaussian(torch.randn(3, 2, dtype=torch.float64, generator=g), torch.randn(3, 2, dtype=torch.float64, generator=g))
    q, p = WithCategory(cat, gau), CategoricalAndNormal(4, 2)
    z, log_q = q.rsample(SeededNoise(0, np.arange(3), 0, 5, dtype=torch.float64))
    assert z.shape == (3, 5, 6)
    assert torch.allclose(log_q, q.log_prob(z.transpose(0, 1)).T, atol=1e-12)
    assert torch.allclose(q.log_prob(z.transpose(0, 1)).T,
                          cat.log_prob(z[..., :4].transpose(0, 1)).T + gau.log_prob(z[..., 4:].transpose(0, 1)).T)
    kl = kl_divergence(q, p)
    assert kl.exact and torch.allclose(kl.total, kl_divergence(cat, p.category).total + kl_divergence(gau, p.normal).total)
    every, lq = q.enumerate(SeededNoise(0, np.arange(3), 0, 2, dtype=torch.float64))   # 2 samples of z x 4 values
    assert every.shape == (3, 8, 6) and torch.equal(every[:, :4, :4], torch.eye(4, dtype=torch.float64).expand(3, 4, 4))
    assert torch.equal(every[:, 0, 4:], every[:, 3, 4:]) and not torch.equal(every[:, 0, 4:], every[:, 4, 4:])
    assert torch.allclose(lq, q.log_prob(every.transpose(0, 1)).T)


def test_mutual_information_of_a_categorical_is_exact():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0], [-3.0, 1.0, 1.0], [0.5, 0.5, -2.0]], dtype=torch.float64)
    p = torch.softmax(logits, -1).numpy()
    agg = p.mean(0)
    by_hand = float(np.mean([(pi * np.log(pi / agg)).sum() for pi in p]))
    assert mutual_information(Categorical(logits)) == pytest.approx(by_hand, abs=1e-12)
    assert mutual_information(Categorical(torch.zeros(5, 3, dtype=torch.float64))) == pytest.approx(0.0, abs=1e-12)


# --- exact evaluation
def _log_p_by_steps(model, code, sentence) -> float:
    """log p(x|code) decoded one token at a time through init_state/step (not log_likelihood)."""
    state = model.init_state(code.unsqueeze(0))
    tok, total = torch.tensor([BOS]), 0.0
    for t in sentence + [EOS]:
        logits, state = model.step(tok, state)
        total += float(torch.log_softmax(logits.double(), -1)[0, t])
        tok = torch.tensor([t])
    return total


def test_exact_log_px_is_the_sum_over_the_categories_by_brute_force():
    model = _tiny()
    corpus = corpus_from_ids(SENTENCES)
    x = collate(corpus, np.arange(len(SENTENCES)))
    with torch.no_grad():
        q = model.encode(x.tokens[:, 1:], x.lengths).components().double()       # (B, K)
        eye = torch.eye(3)
        nll, elbo = [], []
        for i, s in enumerate(SENTENCES):
            ll = torch.tensor([_log_p_by_steps(model, eye[c], s) for c in range(3)], dtype=torch.float64)
            nll.append(-float(torch.logsumexp(ll - math.log(3), 0)))
            elbo.append(-float((q[i] * ll).sum()) + float((q[i] * torch.log(3 * q[i])).sum()))
    r = evaluate(model, corpus, iw_samples=500, per_sentence=True)
    assert r.nll_exact and r.kl_exact and r.iw_samples == 3 and r.iw_nll_se == 0.0
    assert np.allclose(r.per_sentence["iw_nll"], nll, atol=1e-4), (r.per_sentence["iw_nll"], nll)
    assert np.allclose(r.per_sentence["elbo"], elbo, atol=1e-4)
    assert (np.asarray(elbo) > np.asarray(nll) + 1e-3).all()      # a posterior off the true one: a gap


def test_exact_log_px_is_what_importance_weighting_converges_to():
    """The issue's 'done when': the IW estimate (c sampled from q(c|x)) approaches the exact sum as K grows.
    On average it lies above it (the log of a mean underestimates log p(x)): by the ELBO's gap at K = 1."""
    model = _tiny()
    corpus = corpus_from_ids(SENTENCES)
    exact = evaluate(model, corpus)
    gaps, se = {}, {}
    for K in (1, 32):
        runs = [evaluate(model, corpus, iw_samples=K, seed=s, exact=False, with_mi=False).iw_nll for s in range(64)]
        gaps[K], se[K] = np.mean(runs) - exact.iw_nll, np.std(runs) / math.sqrt(64)
    assert abs(gaps[1] - (exact.elbo - exact.iw_nll)) < 3 * se[1], (gaps, se)
    # the gap shrinks with K: by more than 3 standard errors of the difference (independent runs)
    assert 0.0 < gaps[32] + 3 * se[32] and gaps[32] < gaps[1] - 3 * math.hypot(se[1], se[32]), (gaps, se)
    large = evaluate(model, corpus, iw_samples=2048, seed=1, exact=False, with_mi=False)
    assert large.iw_nll_se < 0.01 and abs(large.iw_nll - exact.iw_nll) < 4 * large.iw_nll_se + 1e-4, large


def test_categorical_beside_gaussian_iw_nll_converges_to_quadrature():
    """nz = 1, K = 2: log p(x) = logsumexp_c [log 1/2 + log int N(z) p(x|c, z) dz] on a grid."""
    model = _tiny("categorical+gaussian", K=2, nz=1, seed=7)
    with torch.no_grad():
        model.to_posterior.inner.weight.mul_(0.5)
    corpus = corpus_from_ids(SENTENCES)
    x = collate(corpus, np.arange(len(SENTENCES))).tokens
    grid = torch.linspace(-10, 10, 4001).unsqueeze(1)
    exact = []
    with torch.no_grad():
        for i in range(len(SENTENCES)):
            xi = x[i:i + 1].expand(grid.size(0), -1)
            per_c = []
            for c in range(2):
                code = torch.cat([torch.eye(2)[c].expand(grid.size(0), 2), grid], dim=1)
                ll = model.log_likelihood(code, xi[:, :-1], xi[:, 1:]).double()
                per_c.append(torch.logsumexp(ll - 0.5 * grid[:, 0].double() ** 2, 0) - 0.5 * math.log(2 * math.pi)
                             + math.log(20 / 4000))
            exact.append(-float(torch.logsumexp(torch.stack(per_c), 0) - math.log(2)))
    r = evaluate(model, corpus, iw_samples=2000, seed=3, per_sentence=True)
    assert not r.nll_exact and r.kl_exact and r.latent == 3
    iw = np.asarray(r.per_sentence["iw_nll"])
    se = np.sqrt(np.clip(1 / np.asarray(r.per_sentence["ess"]) - 1 / 2000, 0, None))
    assert (np.abs(iw - exact) <= 4 * se + 2e-3).all(), (iw - exact, se)
    assert (np.asarray(r.per_sentence["elbo"]) >= np.asarray(exact) - 1e-6).all()


def test_exact_estimator_trains_the_exact_elbo():
    """Its figures are the true -ELBO of the batch, the very number eval sums to, and its loss adds
    only the baseline's error to it (w = 1, beta = 1)."""
    model = _tiny()
    corpus = corpus_from_ids(SENTENCES)
    batch = collate(corpus, np.arange(len(SENTENCES)))
    objective = Exact(_train_cfg(), 3)
    loss, figs = objective.loss(model(batch, draw=objective.draw), 1.0)
    r = evaluate(model, corpus)
    assert float(figs["elbo"]) == pytest.approx(r.elbo, abs=1e-4)
    assert float(loss.detach()) == pytest.approx(r.elbo + float(figs["baseline_rmse"]) ** 2, abs=1e-4)


# --- the estimators' gradients
def _grads(model, objective, batch, noise, skip=("baseline",)):
    model.zero_grad()
    objective.loss(model(batch, samples=objective.samples, noise=noise, draw=objective.draw), 1.0)[0].backward()
    return torch.cat([p.grad.flatten() for n, p in model.named_parameters()
                      if p.grad is not None and not any(s in n for s in skip)])


def _mean_and_se(model, objective, batch, groups=16, per=32):
    """The estimator's mean gradient from groups x per draws, and its standard error per coordinate
    (from the spread of the group means)."""
    gen = torch.Generator().manual_seed(11)
    g = torch.stack([_grads(model, objective, batch, StreamNoise(len(batch), per, generator=gen))
                     for _ in range(groups)]).double()
    return g.mean(0), g.std(0) / math.sqrt(groups)


def test_reinforce_is_unbiased_and_the_relaxation_is_not():
    """Every parameter's REINFORCE gradient (encoder through the score function, decoder pathwise),
    with and without the baseline, averages to the exact gradient: the mean squared z-score of the
    difference is about 1. The Gumbel-softmax relaxation's average is off by many standard errors
    (which shows the test can tell)."""
    model = _tiny()
    batch = collate(corpus_from_ids(SENTENCES), np.arange(len(SENTENCES)))
    exact = _grads(model, Exact(_train_cfg(), 3), batch, None).double()

    def z2(objective):
        mean, se = _mean_and_se(model, objective, batch)
        keep = se > 1e-9
        # a coordinate with no spread over the draws must be the exact one (a dropped score-function
        # term gives the encoder a deterministic zero gradient, which the z-scores cannot see)
        assert torch.allclose(mean[~keep], exact[~keep], atol=1e-6), float((mean - exact)[~keep].abs().max())
        return float((((mean - exact) / se)[keep] ** 2).mean())

    cfg = _train_cfg(train_samples=32, max_tokens=32 * 41)
    plain = Reinforce(cfg, 3)
    plain.use_baseline = False
    assert z2(Reinforce(cfg, 3)) < 1.6
    assert z2(plain) < 1.6
    assert z2(Gumbel(_train_cfg(train_samples=32, max_tokens=64 * 41, estimator="gumbel"), 3)) > 5.0


def test_the_baseline_learns_from_its_own_error_alone():
    """The reward reaches the baseline only as a target: every other weight's gradient is what it
    would be without the baseline's squared error, and the baseline's own is that error's gradient."""
    model = _tiny()
    batch = collate(corpus_from_ids(SENTENCES), np.arange(len(SENTENCES)))
    objective = Reinforce(_train_cfg(), 3)

    def run(with_error: bool):
        model.zero_grad()
        terms = model(batch, noise=StreamNoise(len(batch), 1, generator=torch.Generator().manual_seed(4)),
                      draw=objective.draw)
        if with_error:
            objective.loss(terms, 1.0)[0].backward()
        else:
            objective.loss(terms, 1.0)[0].sub(objective.baseline_loss(terms, terms.ll)).backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    full, without = run(True), run(False)
    for name, grad in full.items():
        if "baseline" not in name:
            assert torch.allclose(grad, without[name], atol=1e-7), name
    model.zero_grad()
    terms = model(batch, noise=StreamNoise(len(batch), 1, generator=torch.Generator().manual_seed(4)))
    objective.baseline_loss(terms, terms.ll).backward()
    own = [(n, p.grad) for n, p in model.named_parameters() if "baseline" in n]
    assert own and all(torch.allclose(full[n], g, atol=1e-7) for n, g in own)
    assert all(float(without[n].abs().max()) == 0.0 for n, _ in own)          # the score term gives it none


def test_temperature_schedule():
    cfg = _train_cfg(estimator="gumbel", tau=2.0, tau_min=0.5, tau_rate=1e-3)
    assert temperature(0, cfg) == 2.0
    assert temperature(100, cfg) == pytest.approx(2.0 * math.exp(-0.1))
    floor_at = math.log(4.0) / 1e-3                                            # 2 e^(-r t) = 0.5
    assert temperature(int(floor_at) - 1, cfg) > 0.5 and temperature(int(floor_at) + 1, cfg) == 0.5
    taus = [temperature(t, cfg) for t in range(0, 3000, 50)]
    assert all(a >= b for a, b in zip(taus, taus[1:]))
    assert Gumbel(cfg, 3, step=100).tau == temperature(100, cfg)
    # train_step hands its step to the objective: the figure is the scheduled temperature
    model = build_model(ModelConfig(vocab_size=8, emb_dim=8, hidden=8, latent=3, latent_type="categorical", categories=3))
    batch = collate(corpus_from_ids(SENTENCES), np.arange(len(SENTENCES)))
    figs = train_step(model, torch.optim.SGD(model.parameters(), lr=0.0), batch, 1.0, cfg, step=700)
    assert float(figs["tau"]) == pytest.approx(temperature(700, cfg))


def test_relaxed_samples_round_to_q_and_straight_through_decodes_the_one_hot():
    logits = torch.tensor([[1.0, 0.0, -1.0, 0.5]], requires_grad=True)
    q = Categorical(logits)
    y, c = q.relaxed(StreamNoise(1, 20_000, generator=torch.Generator().manual_seed(0)), 0.7)
    assert torch.allclose(y.sum(-1), torch.ones(1, 20_000)) and ((y >= 0) & (y <= 1)).all()
    assert ((y > 0) & (y < 1)).float().mean() > 0.9                                    # mostly strictly inside
    assert torch.equal(c, y.argmax(-1))                                                  # Gumbel-max: y's argmax
    assert torch.allclose(torch.nn.functional.one_hot(c, 4).float().mean(1), torch.softmax(logits, -1), atol=0.01)
    cold, _ = q.relaxed(StreamNoise(1, 500, generator=torch.Generator().manual_seed(1)), 0.01)
    assert (cold.max(-1).values > 0.99).float().mean() > 0.95                           # tau -> 0: near one-hot
    w = torch.randn(4)
    soft, _ = q.relaxed(StreamNoise(1, 8, generator=torch.Generator().manual_seed(2)), 0.7)
    (soft * w).sum().backward()
    g_soft = logits.grad.clone()
    logits.grad = None
    hard, c = q.relaxed(StreamNoise(1, 8, generator=torch.Generator().manual_seed(2)), 0.7, hard=True)
    assert torch.equal(hard, torch.nn.functional.one_hot(c, 4).float())                  # exactly one-hot
    (hard * w).sum().backward()
    assert torch.allclose(logits.grad, g_soft)                                           # the relaxed gradient


@pytest.mark.parametrize("latent_type", ["categorical", "categorical+gaussian"])
@pytest.mark.parametrize("estimator", ["exact", "reinforce", "gumbel", "straight-through"])
def test_every_estimator_takes_a_step(latent_type, estimator):
    model = _tiny(latent_type)
    model.train()
    kw = dict(estimator="gumbel", straight_through=True) if estimator == "straight-through" else dict(estimator=estimator)
    cfg = _train_cfg(**kw)
    objective = build_objective(cfg, model.cfg)
    objective.check(model.to_posterior.family, type(model.prior))
    batch = collate(corpus_from_ids(SENTENCES), np.arange(len(SENTENCES)))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    figs = train_step(model, torch.optim.SGD(model.parameters(), lr=0.1), batch, 1.0, cfg)
    assert all(math.isfinite(float(v)) for v in figs.values())
    moved = {n.split(".")[0] for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert {"encoder", "to_posterior", "decoder", "conditioner"} <= moved, moved
    assert float(figs["elbo"]) == pytest.approx(float(figs["rec"]) + float(figs["kl"]), abs=1e-4)


def test_the_token_budget_counts_every_copy(corpora, tok):
    from sentvae.trainer import Trainer
    expect = {"exact": 400 // 4, "reinforce": 400, "gumbel": 400 // 2, "st": 400}
    for name, per in expect.items():
        kw = dict(estimator="gumbel", straight_through=True) if name == "st" else dict(estimator=name)
        cfg = TrainConfig(max_tokens=400, max_len=40, max_steps=1, epochs=0, **kw)
        trainer = Trainer(ModelConfig(vocab_size=tok.vocab_size, emb_dim=8, hidden=8, latent=2,
                                      latent_type="categorical", categories=4), cfg, tok, *corpora, "unused")
        assert trainer.batch_tokens == per, name
