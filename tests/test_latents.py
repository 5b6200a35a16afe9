"""The latent objects against exact values: the posterior's density, sample and entropy against
torch.distributions, the analytic KL against Monte Carlo; a sampled code's independence from its
batch; interpolation paths' ends."""

import math

import numpy as np
import pytest
import torch
from torch.distributions import Independent, Normal, kl_divergence as torch_kl

import sentvae
from sentvae.kl import kl_divergence
from sentvae.latent import lerp, slerp
from sentvae.noise import SeededNoise, StreamNoise
from sentvae.posteriors import Gaussian
from sentvae.priors import StandardNormal
from conftest import run_cli

SENTENCES = ["the old man read a book in the park .", "did the dogs chase two cats ?", "she will not sing ."]


def _gaussian(B=5, nz=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Gaussian(torch.randn(B, nz, generator=g, dtype=torch.float64),
                    torch.randn(B, nz, generator=g, dtype=torch.float64) * 0.5)


def test_gaussian_posterior_density_sample_and_entropy_match_torch():
    q = _gaussian()
    ref = Independent(Normal(q.mu, torch.exp(0.5 * q.logvar)), 1)
    z = torch.randn(7, 5, 3, dtype=torch.float64)              # (..., B, nz): broadcasts over a leading dim
    assert torch.allclose(q.log_prob(z), ref.log_prob(z), atol=1e-10)
    assert torch.allclose(q.entropy(), ref.entropy(), atol=1e-10)
    zs, log_q = q.rsample(StreamNoise(5, 11, dtype=torch.float64, generator=torch.Generator().manual_seed(3)))
    assert zs.shape == (5, 11, 3) and log_q.shape == (5, 11)
    assert torch.allclose(log_q, ref.log_prob(zs.transpose(0, 1)).T, atol=1e-10)   # log q of the samples drawn


def test_a_sample_has_the_posterior_spread_not_its_variance():
    """Drawn with sigma = exp(logvar / 2): with the variance instead, the spread below is off by far."""
    q = Gaussian(torch.tensor([[1.0, -2.0]]), torch.tensor([[math.log(4.0), math.log(0.25)]]))
    z, _ = q.rsample(SeededNoise(0, np.array([0]), 0, 20_000))
    assert torch.allclose(z[0].mean(0), q.mu[0], atol=0.03)
    assert torch.allclose(z[0].std(0), torch.tensor([2.0, 0.5]), rtol=0.03)


def test_standard_normal_prior_matches_torch():
    z = torch.randn(6, 2, 3, dtype=torch.float64)
    ref = Independent(Normal(torch.zeros(3, dtype=torch.float64), 1.0), 1)
    assert torch.allclose(StandardNormal(3).log_prob(z), ref.log_prob(z))
    x = StandardNormal(3).sample(20_000, torch.Generator().manual_seed(0))
    assert torch.allclose(x.mean(0), torch.zeros(3), atol=0.03) and torch.allclose(x.std(0), torch.ones(3), rtol=0.03)


def test_gaussian_kl_is_analytic_and_agrees_with_monte_carlo():
    q = _gaussian()
    kl = kl_divergence(q, StandardNormal(3))
    assert kl.exact and kl.dims.shape == (5, 3)
    ref = torch_kl(Independent(Normal(q.mu, torch.exp(0.5 * q.logvar)), 1),
                   Independent(Normal(torch.zeros(3, dtype=torch.float64), 1.0), 1))
    assert torch.allclose(kl.total, ref, atol=1e-10)
    z, log_q = q.rsample(StreamNoise(5, 40_000, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
    mc = (log_q - StandardNormal(3).log_prob(z)).mean(1)
    assert torch.allclose(mc, kl.total, atol=0.05)


def test_a_sampled_code_does_not_depend_on_the_batch(trained, monkeypatch, capsys):
    out, _ = trained
    args = ["reconstruct", "-c", out / "best.pt", "--posterior", "sample", "--seed", "4", "--device", "cpu",
            *SENTENCES, *SENTENCES]
    outputs = []
    for size in ("1", "2", "256"):
        code, stdout, err = run_cli([*args, "--batch-size", size], monkeypatch, capsys)
        assert code == 0, err
        outputs.append(stdout)
    assert outputs[0] == outputs[1] == outputs[2]
    model = sentvae.load(out / "best.pt", device="cpu")
    a = model.codes(SENTENCES * 2, "sample", seed=4)
    b = torch.cat([model.codes(SENTENCES, "sample", seed=4), model.codes(SENTENCES, "sample", seed=4, first=3)])
    assert torch.allclose(a, b, atol=1e-6) and not torch.allclose(a[:3], a[3:])   # the same sentence twice: two samples


def test_interpolation_paths_run_from_the_first_code_to_the_second():
    a, b = torch.tensor([1.0, 0.0, 2.0]), torch.tensor([-1.0, 3.0, 0.5])
    t = torch.linspace(0, 1, 5)
    for path in (lerp(a, b, t), slerp(a, b, t)):
        assert torch.allclose(path[0], a, atol=1e-6) and torch.allclose(path[-1], b, atol=1e-6)
    # slerp stays on the great circle: with |a| = |b| every point has that norm
    a2, b2 = a / a.norm() * 3, b / b.norm() * 3
    assert torch.allclose(slerp(a2, b2, t).norm(dim=1), torch.full((5,), 3.0), atol=1e-5)
