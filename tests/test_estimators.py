"""The evaluator against exactly computed values.

A VAE with a one-dimensional latent has log p(x) = log ∫ p(x|z) N(z; 0, 1) dz, which quadrature
computes to high precision: the importance-weighted NLL must converge to it, its standard error
must match the spread over seeds, and on the very samples it drew, IW-NLL and ESS must equal
the formulas computed here by hand. MI must be ~0 for a collapsed posterior and ~log N for
well-separated ones."""

import math

import numpy as np
import pytest
import torch

from sentvae.config import ModelConfig
from sentvae.corpus import collate, corpus_from_ids
from sentvae.evaluate import evaluate, mutual_information, sample_noise
from sentvae.model import build_model
from sentvae.posteriors import Gaussian

LOG_2PI = math.log(2 * math.pi)
SENTENCES = [[4], [5, 4], [4, 4, 5], [5, 5, 1, 4], [1, 5], [4, 5, 5, 4, 1]]


@pytest.fixture(scope="module")
def exact_model():
    """A tiny LSTM VAE, nz = 1, whose decoder leans on z and whose q(z|x) is off the true
    posterior (so -ELBO sits measurably above the true NLL) but not so far that the importance
    weights degenerate (ESS 25-80% of K), with log p(x) by quadrature."""
    torch.manual_seed(3)
    model = build_model(ModelConfig(vocab_size=6, emb_dim=8, hidden=8, latent=1, dropout=0.0,
                                    bidirectional=False)).eval()
    with torch.no_grad():
        model.decoder.z_to_state.weight.mul_(20.0)
        model.to_posterior.weight.mul_(0.5)
        model.to_posterior.bias.copy_(torch.tensor([0.2, -0.5]))
    corpus = corpus_from_ids(SENTENCES)
    x = collate(corpus, np.arange(len(SENTENCES))).tokens
    grid = torch.linspace(-12, 12, 8001).unsqueeze(1)                  # (G, 1)
    log_dz = math.log(24 / 8000)
    exact = []
    with torch.no_grad():
        for i in range(len(SENTENCES)):
            xi = x[i:i + 1].expand(grid.size(0), -1)
            ll = model.log_likelihood(grid, xi[:, :-1], xi[:, 1:]).double()          # (G,)
            log_prior = -0.5 * (LOG_2PI + grid[:, 0].double() ** 2)
            exact.append(-float(torch.logsumexp(ll + log_prior, 0) + log_dz))
    return model, corpus, torch.tensor(exact, dtype=torch.float64)


def test_iw_nll_converges_to_the_exact_nll(exact_model):
    model, corpus, exact = exact_model
    r = evaluate(model, corpus, iw_samples=4000, seed=1, per_sentence=True)
    iw = torch.tensor(r.per_sentence["iw_nll"], dtype=torch.float64)
    elbo = torch.tensor(r.per_sentence["elbo"], dtype=torch.float64)
    se = torch.sqrt((1 / torch.tensor(r.per_sentence["ess"]) - 1 / 4000).clamp_min(0))
    assert (elbo - exact).mean() > 0.15 and ((elbo - exact) > 2 * se).all(), \
        "the -ELBO must sit clearly above the NLL for this test to bite"
    assert ((iw - exact).abs() <= 4 * se + 2e-3).all(), (iw - exact, se)
    assert abs(r.iw_nll - float(exact.mean())) < 0.02
    assert r.iw_nll_se == pytest.approx(float(torch.sqrt((se ** 2).sum())) / len(exact), rel=1e-6)


def test_iw_nll_and_ess_on_the_samples_drawn_equal_the_formulas(exact_model):
    model, corpus, _ = exact_model
    K = 300
    r = evaluate(model, corpus, iw_samples=K, seed=7, per_sentence=True, max_tokens=90)
    b = collate(corpus, np.arange(len(SENTENCES)))
    x = b.tokens
    with torch.no_grad():
        q = model.encode(x[:, 1:], b.lengths)
        mu, logvar = q.mu, q.logvar
        for i in range(len(SENTENCES)):
            eps = sample_noise(7, np.array([i]), 0, K, 1)[0].double()           # (K, 1), as eval drew them
            z = mu[i].double() + torch.exp(0.5 * logvar[i].double()) * eps
            xi = x[i:i + 1].expand(K, -1)
            ll = model.log_likelihood(z.float(), xi[:, :-1], xi[:, 1:]).double()
            log_pz = -0.5 * (LOG_2PI + z[:, 0] ** 2)
            log_qz = -0.5 * (LOG_2PI + logvar[i, 0].double() + eps[:, 0] ** 2)
            lw = ll + log_pz - log_qz
            nll = -(torch.logsumexp(lw, 0) - math.log(K))
            ess = torch.exp(2 * torch.logsumexp(lw, 0) - torch.logsumexp(2 * lw, 0))
            assert r.per_sentence["iw_nll"][i] == pytest.approx(float(nll), abs=2e-4), i
            assert r.per_sentence["ess"][i] == pytest.approx(float(ess), rel=1e-3), i
            kl = 0.5 * (mu[i, 0] ** 2 + logvar[i, 0].exp() - 1 - logvar[i, 0])
            assert r.per_sentence["elbo"][i] == pytest.approx(float(-ll.mean() + kl), abs=2e-4), i


def test_standard_error_matches_the_spread_over_seeds(exact_model):
    model, corpus, _ = exact_model
    K, seeds = 40, range(40)
    runs = [evaluate(model, corpus, iw_samples=K, seed=s, per_sentence=True) for s in seeds]
    est = np.array([r.per_sentence["iw_nll"] for r in runs])              # (seeds, sentences)
    predicted = np.array([np.sqrt(np.clip(1 / np.asarray(r.per_sentence["ess"]) - 1 / K, 0, None)) for r in runs])
    ratio = est.std(axis=0, ddof=1) / predicted.mean(axis=0)
    assert ((ratio > 0.6) & (ratio < 1.6)).all(), ratio
    totals = est.mean(axis=1)                                             # the summary figure per seed
    reported = np.mean([r.iw_nll_se for r in runs])
    assert 0.6 < totals.std(ddof=1) / reported < 1.6


def test_mi_is_zero_for_a_collapsed_posterior_and_log_n_for_separated_ones():
    N, nz = 4000, 4
    # identical posteriors: the estimate is 0 up to Monte Carlo noise (sd ~ sqrt(nz / 2N) = 0.022)
    assert abs(mutual_information(Gaussian(torch.zeros(N, nz), torch.zeros(N, nz)))) < 0.08
    # far apart and narrow: z tells which x, MI = log N (Monte Carlo sd ~ sqrt(nz / 2N) = 0.045)
    mu = torch.zeros(1000, nz)
    mu[:, 0] = torch.arange(1000) * 20.0
    assert mutual_information(Gaussian(mu, torch.full((1000, nz), -4.0))) == pytest.approx(math.log(1000), abs=0.15)
    # two clusters of identical posteriors: exactly one bit, log 2
    mu2 = torch.zeros(N, nz)
    mu2[N // 2:, 0] = 50.0
    assert mutual_information(Gaussian(mu2, torch.full((N, nz), -4.0))) == pytest.approx(math.log(2), abs=0.08)
