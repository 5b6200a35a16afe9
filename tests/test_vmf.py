"""The vMF posterior and the uniform prior on the sphere (sentvae/vmf.py) against exact values:
log I_v against scipy and mpmath (where scipy's scaled form underflows), the closed forms of d = 3,
Wood's sampler's moments (E[mu.z] = A_d(kappa) and the second-moment matrix), the density
integrating to 1 and matching scipy.stats.vonmises_fisher, the closed-form KL against Monte Carlo,
the reparameterised gradient against its analytic value, draws that do not depend on batching
under SeededNoise; and the options that do not fit a vMF refused with one line."""

import math

import numpy as np
import pytest
import torch

import sentvae
from sentvae.config import ModelConfig
from sentvae.errors import SentvaeError
from sentvae.kl import kl_divergence
from sentvae.model import build_model, latent_families
from sentvae.noise import SeededNoise, StreamNoise
from sentvae.vmf import SphereUniform, VMFHead, VonMisesFisher, _log_iv_series, constants, log_iv
from conftest import TINY_MODEL, run_cli

# (nz, kappa): a circle, the 2-sphere, and latents as trained (Xu & Durrett's PTB runs: nz 50, kappa 35-80)
SETTINGS = [(2, 1.5), (3, 5.0), (16, 10.0), (32, 35.0), (50, 80.0)]


def _directions(B, d, seed=0):
    """B unit vectors, among them e1, -e1, and two on either side of mu_1 = 0 (the rotation's two branches)."""
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(B, d, generator=g, dtype=torch.float64)
    mu[0], mu[1] = 0.0, 0.0
    mu[0, 0], mu[1, 0] = 1.0, -1.0
    if B > 3:
        mu[2, 0], mu[3, 0] = 1e-9, -1e-9
    return mu / mu.norm(dim=1, keepdim=True)


def test_log_bessel_matches_scipy_and_mpmath_where_scipy_underflows():
    from scipy.special import ive
    for v in (0.0, 0.5, 1.0, 7.5, 15.0, 24.0, 200.0):
        for x in (1e-3, 0.7, 5.0, 35.0, 80.0, 1e4):
            if ive(v, x) == 0.0:            # underflows (v = 200 at x = 1e-3): mpmath's turn, below
                continue
            want = math.log(ive(v, x)) + x
            assert log_iv(v, x) == pytest.approx(want, rel=1e-12, abs=1e-12), (v, x)
            assert _log_iv_series(v, x) == pytest.approx(want, rel=1e-10, abs=1e-10), (v, x)   # the fallback itself
    mpmath = pytest.importorskip("mpmath")
    for v, x in ((2047.0, 100.0), (2047.0, 1000.0), (15.0, 1e-30)):      # ive(v, x) == 0.0 in float64 here
        assert ive(v, x) == 0.0
        assert log_iv(v, x) == pytest.approx(float(mpmath.log(mpmath.besseli(v, x))), rel=1e-12)


def test_constants_match_the_closed_forms_of_the_two_sphere():
    for kappa in (0.3, 5.0, 80.0):
        c = constants(kappa, 3)
        # C_3(k) = k / (4 pi sinh k), A_3(k) = coth k - 1/k; the uniform density is 1 / (4 pi)
        assert c["log_c"] == pytest.approx(math.log(kappa) - math.log(4 * math.pi) - math.log(math.sinh(kappa)), rel=1e-12)
        assert c["mean_cos"] == pytest.approx(1 / math.tanh(kappa) - 1 / kappa, rel=1e-12)
        assert c["kl"] == pytest.approx(kappa * c["mean_cos"] + c["log_c"] + math.log(4 * math.pi), rel=1e-12)
    assert SphereUniform(3).log_area == pytest.approx(math.log(4 * math.pi))
    for d in (2, 16, 50):                  # a tighter posterior costs more: the KL grows with kappa
        kls = [constants(k, d)["kl"] for k in (1e-3, 1.0, 10.0, 35.0, 100.0, 1e4)]
        assert kls[0] == pytest.approx(0.0, abs=1e-4) and kls == sorted(kls)


@pytest.mark.parametrize("d,kappa", SETTINGS)
def test_samples_lie_on_the_sphere_with_the_mean_and_second_moments_of_the_vmf(d, kappa):
    """E[mu.z] = A_d(kappa); E[z] = A_d mu; E[z z^T] = (A/k) I + (1 - d A/k) mu mu^T (so the tangent
    part is isotropic and E[(mu.z)^2] = 1 - (d-1) A/k). Within 5 standard errors."""
    B, S = 6, 6000
    mu = _directions(B, d)
    q = VonMisesFisher(mu, kappa)
    z, log_q = q.rsample(StreamNoise(B, S, dtype=torch.float64, generator=torch.Generator().manual_seed(d)))
    assert z.shape == (B, S, d) and log_q.shape == (B, S)
    assert torch.allclose(z.norm(dim=-1), torch.ones(B, S, dtype=torch.float64), atol=1e-12)
    A = constants(kappa, d)["mean_cos"]
    cos = (z * mu.unsqueeze(1)).sum(-1)                                      # (B, S)
    se = cos.std(dim=1) / math.sqrt(S)
    assert ((cos.mean(dim=1) - A).abs() <= 5 * se).all(), (cos.mean(dim=1), A, se)
    assert torch.allclose(z.mean(dim=1), q.mean(), atol=5 * 1 / math.sqrt(S))
    second = torch.einsum("bsi,bsj->bij", z, z) / S                          # (B, d, d)
    want = (A / kappa) * torch.eye(d, dtype=torch.float64) + (1 - d * A / kappa) * mu.unsqueeze(2) * mu.unsqueeze(1)
    assert (second - want).abs().max() < 6 / math.sqrt(S), (second - want).abs().max()
    assert torch.allclose(log_q, q.log_prob(z.transpose(0, 1)).T, atol=1e-9)   # log q of the sample drawn


def test_the_density_integrates_to_one_on_the_circle_and_the_two_sphere():
    n = 20_000
    theta = (torch.arange(n, dtype=torch.float64) + 0.5) * (2 * math.pi / n)       # midpoints: exact for periodic
    circle = torch.stack([torch.cos(theta), torch.sin(theta)], dim=1)               # (n, 2)
    for kappa in (0.5, 4.0, 60.0):
        q = VonMisesFisher(_directions(3, 2, seed=1), kappa)
        dens = q.log_prob(circle.unsqueeze(1)).exp()                                  # (n, 3)
        assert torch.allclose(dens.sum(0) * (2 * math.pi / n), torch.ones(3, dtype=torch.float64), atol=1e-10)
    assert math.exp(SphereUniform(2).log_prob(circle[:1])[0]) * 2 * math.pi == pytest.approx(1.0)
    # d = 3: integrate over the polar angle from mu (the density depends on it alone), area 2 pi sin t dt
    t = (torch.arange(n, dtype=torch.float64) + 0.5) * (math.pi / n)
    mu = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)
    pts = torch.stack([torch.sin(t), torch.zeros_like(t), torch.cos(t)], dim=1).unsqueeze(1)   # (n, 1, 3)
    for kappa in (0.5, 30.0):
        dens = VonMisesFisher(mu, kappa).log_prob(pts)[:, 0].exp()
        assert float((dens * 2 * math.pi * torch.sin(t)).sum() * (math.pi / n)) == pytest.approx(1.0, abs=1e-7)


@pytest.mark.parametrize("d,kappa", [(3, 2.0), (8, 20.0), (32, 35.0), (64, 150.0)])
def test_density_and_entropy_match_scipy(d, kappa):
    stats = pytest.importorskip("scipy.stats")
    if not hasattr(stats, "vonmises_fisher"):
        pytest.skip("scipy < 1.11 has no vonmises_fisher")
    mu = _directions(2, d, seed=3)
    q = VonMisesFisher(mu, kappa)
    z, _ = q.rsample(StreamNoise(2, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    other = torch.randn(2, 5, d, dtype=torch.float64)
    other = other / other.norm(dim=-1, keepdim=True)                              # points far from mu too
    for pts in (z, other):
        for b in range(2):
            ref = stats.vonmises_fisher(mu[b].numpy(), kappa)
            assert q.log_prob(pts[b].unsqueeze(1))[:, b].numpy() == pytest.approx(ref.logpdf(pts[b].numpy()), rel=1e-9)
            assert float(q.entropy()[b]) == pytest.approx(ref.entropy(), rel=1e-9)


@pytest.mark.parametrize("d,kappa", SETTINGS)
def test_kl_to_the_uniform_prior_is_closed_form_and_agrees_with_monte_carlo(d, kappa):
    mu = _directions(4, d, seed=2)
    q, p = VonMisesFisher(mu, kappa), SphereUniform(d)
    kl = kl_divergence(q, p)
    assert kl.exact and kl.total.shape == (4,) and torch.allclose(kl.total, kl.total[:1].expand(4))
    z, log_q = q.rsample(StreamNoise(4, 20_000, dtype=torch.float64, generator=torch.Generator().manual_seed(5)))
    terms = log_q - p.log_prob(z)                                               # (4, S)
    se = terms.std(dim=1) / math.sqrt(terms.size(1))
    assert ((terms.mean(dim=1) - kl.total).abs() <= 5 * se + 1e-12).all(), (terms.mean(1), kl.total, se)
    assert float(q.entropy()[0]) == pytest.approx(p.log_area - float(kl.total[0]), rel=1e-12)


def test_the_gradient_flows_through_mu_and_is_that_of_the_expectation():
    """E_q[a.z] = A_d (a.mu) with mu = v / |v|: its gradient in v is A (I - mu mu^T) a / |v|. The mean of
    per-sample reparameterised gradients (one row per sample) must agree within 5 standard errors."""
    d, kappa, S = 8, 12.0, 4000
    g = torch.Generator().manual_seed(4)
    v0 = torch.randn(d, generator=g, dtype=torch.float64) * 2
    a = torch.randn(d, generator=g, dtype=torch.float64)
    v = v0.expand(S, d).clone().requires_grad_(True)
    mu = v / v.norm(dim=1, keepdim=True)
    z, log_q = VonMisesFisher(mu, kappa).rsample(StreamNoise(S, 1, dtype=torch.float64, generator=g))
    (z[:, 0] @ a).sum().backward()
    m0 = v0 / v0.norm()
    want = constants(kappa, d)["mean_cos"] * (a - (a @ m0) * m0) / v0.norm()
    se = v.grad.std(dim=0) / math.sqrt(S)
    assert ((v.grad.mean(dim=0) - want).abs() <= 5 * se + 1e-9).all(), (v.grad.mean(0), want)
    assert not log_q.requires_grad or torch.autograd.grad(log_q.sum(), v, allow_unused=True)[0] is None


def test_seeded_draws_do_not_depend_on_batching_or_chunking():
    d, kappa = 12, 20.0
    mu = _directions(5, d, seed=6).float()
    q = VonMisesFisher(mu, kappa)
    idx = np.array([10, 11, 12, 13, 14])
    whole, log_q = q.rsample(SeededNoise(3, idx, 0, 40))                        # (5, 40, d)
    for i in range(5):                                                          # each sentence alone
        alone, lq = q.index(torch.tensor([i])).rsample(SeededNoise(3, idx[i:i + 1], 0, 40))
        assert torch.equal(alone[0], whole[i]) and torch.equal(lq[0], log_q[i])
    order = torch.tensor([3, 0, 4])                                             # another batch, in another order
    part, _ = q.index(order).rsample(SeededNoise(3, idx[order.numpy()], 0, 40))
    assert torch.equal(part, whole[order])
    chunks = [q.rsample(SeededNoise(3, idx, s, c))[0] for s, c in ((0, 5), (5, 11), (16, 24))]  # K in chunks
    assert torch.equal(torch.cat(chunks, dim=1), whole)
    assert torch.equal(q.rsample(SeededNoise(3, idx, 0, 7))[0], whole[:, :7])   # the first K of a larger K
    assert not torch.equal(q.rsample(SeededNoise(4, idx, 0, 40))[0], whole)     # another seed, other draws


def test_stream_noise_draws_follow_its_generator():
    q = VonMisesFisher(_directions(3, 6, seed=7).float(), 9.0)
    a = q.rsample(StreamNoise(3, 50, generator=torch.Generator().manual_seed(1)))[0]
    b = q.rsample(StreamNoise(3, 50, generator=torch.Generator().manual_seed(1)))[0]
    c = q.rsample(StreamNoise(3, 50, generator=torch.Generator().manual_seed(2)))[0]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_the_uniform_prior_samples_the_sphere_evenly():
    x = SphereUniform(5).sample(40_000, torch.Generator().manual_seed(0))
    assert torch.allclose(x.norm(dim=1), torch.ones(40_000), atol=1e-6)
    assert torch.allclose(x.mean(0), torch.zeros(5), atol=0.02)
    assert torch.allclose(x.T @ x / 40_000, torch.eye(5) / 5, atol=0.01)       # E[x x^T] = I / d


def test_the_head_gives_a_unit_mean_direction_and_a_family_with_its_prior():
    head = VMFHead(10, 4, 7.0)
    q = head(torch.randn(6, 10))
    assert isinstance(q, VonMisesFisher) and torch.allclose(q.mu.norm(dim=1), torch.ones(6), atol=1e-6)
    assert set(q.params()) == {"z", "mu", "kappa"} and torch.allclose(q.params()["z"], q.mean())
    assert torch.allclose(q.mean().norm(dim=1), torch.full((6,), constants(7.0, 4)["mean_cos"]), atol=1e-6)
    cfg = ModelConfig(vocab_size=30, posterior="vmf", kappa=7.0, latent=4, emb_dim=8, hidden=8)
    assert cfg.prior == "uniform" and latent_families(cfg) == (VonMisesFisher, SphereUniform)
    model = build_model(cfg)
    assert isinstance(model.to_posterior, VMFHead) and isinstance(model.prior, SphereUniform)


@pytest.mark.parametrize("opts,message", [
    (dict(posterior="vmf"), "^--kappa: --posterior vmf needs its concentration"),
    (dict(kappa=10.0), "^--kappa: applies to --posterior vmf, not gaussian"),
    (dict(posterior="vmf", kappa=10.0, prior="gmm"), "^--prior: --posterior vmf lives on the unit sphere"),
    (dict(posterior="vmf", kappa=10.0, prior="normal"), "^--prior: --posterior vmf lives on the unit sphere"),
    (dict(prior="uniform"), "^--prior: uniform is the unit sphere's prior, for --posterior vmf"),
    (dict(posterior="vmf", kappa=10.0, latent=1), "^--latent: --posterior vmf needs 2 or more dimensions"),
    (dict(posterior="vmf", kappa=0.0), "^--kappa: must be a finite number in \\(0, "),
    (dict(posterior="vmf", kappa=10.0, no_latent=True), "^--posterior: a --no-latent model"),
])
def test_options_that_do_not_fit_a_vmf_are_refused(opts, message):
    with pytest.raises(SentvaeError, match=message):
        ModelConfig(vocab_size=30, **opts)


@pytest.mark.parametrize("over", ["batch", "sentence", "latent"])
def test_free_bits_are_refused_since_the_kl_is_a_constant(over, tmp_path, corpus_dir):
    with pytest.raises(SentvaeError, match=r"^--free-bits: the KL of this posterior is a constant \(fixed by --kappa"):
        sentvae.train(data=corpus_dir / "train.txt", valid=corpus_dir / "valid.txt", out=tmp_path / "r",
                      max_steps=2, epochs=0, device="cpu", posterior="vmf", kappa=10.0, free_bits=0.5,
                      free_bits_over=over, **TINY_MODEL)
    assert not (tmp_path / "r").exists()


def test_the_command_line_refuses_with_one_line(tmp_path, corpus_dir, monkeypatch, capsys):
    for extra, needle in ((["--posterior", "vmf", "--kappa", "10", "--free-bits", "1"], "--free-bits: the KL"),
                          (["--kappa", "10"], "--kappa: applies to --posterior vmf")):
        code, out, err = run_cli(["train", "-d", corpus_dir / "train.txt", "-o", tmp_path / "r", "--max-steps", "1",
                                  *extra], monkeypatch, capsys)
        assert code == 2 and out == "" and needle in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "r" / "last.pt").exists()
