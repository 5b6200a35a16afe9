"""The latent objects against exact values: posteriors' and priors' densities, samples and entropies
against torch.distributions, analytic KLs against Monte Carlo, the IAF's log q against the change
of variables with an autograd Jacobian, DEM-VAE's dispersion identity, IW-NLL under a mixture prior
against quadrature; a sampled code's independence from its batch; interpolation paths' ends."""

import math

import numpy as np
import pytest
import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal, kl_divergence as torch_kl

import sentvae
from sentvae.config import ModelConfig
from sentvae.corpus import collate, corpus_from_ids
from sentvae import evaluate as evaluate_module
from sentvae.evaluate import evaluate
from sentvae.flows import IAF, IAFFlow, IAFHead
from sentvae.kl import NeedsSamples, kl_divergence
from sentvae.latent import lerp, slerp
from sentvae.mixture import ComponentHead, GaussianMixture, WithComponent
from sentvae.model import build_model
from sentvae.noise import SeededNoise, StreamNoise
from sentvae.posteriors import Gaussian, GaussianHead
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


def test_under_bf16_autocast_log_q_is_the_density_at_the_returned_sample():
    """The encoder gives bf16 mu, logvar under autocast; summing log q from bf16 terms was off the
    density at z by up to ~0.25 nats, which IWAE's weights and a flow's Monte Carlo KL read."""
    g = torch.Generator().manual_seed(0)
    linear = torch.nn.Linear(16, 64)
    h = torch.randn(50, 16, generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mu, logvar = linear(h).chunk(2, dim=-1)                             # (50, 32) each, bf16
        assert mu.dtype == torch.bfloat16
        z, log_q = Gaussian(mu, logvar).rsample(StreamNoise(50, 4, generator=torch.Generator().manual_seed(1)))
    exact = Independent(Normal(mu.double(), torch.exp(0.5 * logvar.double())), 1).log_prob(z.double().transpose(0, 1)).T
    assert torch.allclose(log_q.double(), exact, atol=2e-3)


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


@pytest.mark.parametrize("blocks, apart", [(32, 92_596_717), (3_125, 558_329)])
def test_sentences_draw_from_distinct_streams(blocks, apart):
    """torch's CPU generator keeps a seed's low 32 bits: the closest two sentences whose (sentence,
    block) generators coincide there, for K up to blocks x BLOCK samples, are `apart` indices apart
    (what noise.generator_seed's docstring promises: any corpus smaller draws from distinct streams)."""
    from sentvae.noise import generator_seed
    low = lambda i, b: generator_seed(7, i, b) % 2 ** 32          # noqa: E731
    inv = pow(100_003, -1, 2 ** 32)
    # 100_003 * apart = +-d (mod 2**32) for a block distance d < blocks: the nearest clash
    closest, d, sign = min((x, d, sign) for d in range(1, blocks) for sign in (1, -1)
                           for x in [sign * d * inv % 2 ** 32])
    assert closest == apart
    assert low(closest, 0) == low(0, d) if sign == 1 else low(closest, d) == low(0, 0)  # a real clash
    # so every sentence of PTB's test set (3,761) has its own 32 streams at K = 500, directly:
    streams = np.array([[low(i, b) for b in range(32)] for i in range(3_761)])
    assert np.unique(streams).size == streams.size


def test_interpolation_paths_run_from_the_first_code_to_the_second():
    a, b = torch.tensor([1.0, 0.0, 2.0]), torch.tensor([-1.0, 3.0, 0.5])
    t = torch.linspace(0, 1, 5)
    for path in (lerp(a, b, t), slerp(a, b, t)):
        assert torch.allclose(path[0], a, atol=1e-6) and torch.allclose(path[-1], b, atol=1e-6)
    # slerp stays on the great circle: with |a| = |b| every point has that norm
    a2, b2 = a / a.norm() * 3, b / b.norm() * 3
    assert torch.allclose(slerp(a2, b2, t).norm(dim=1), torch.full((5,), 3.0), atol=1e-5)


def _mixture(nz=3, C=4, seed=1):
    torch.manual_seed(seed)
    p = GaussianMixture(nz, C).double()
    with torch.no_grad():
        p.means.mul_(2.0)
        p.logvars.normal_(0, 0.4)
    return p


def test_standard_normal_and_mixture_priors_match_torch():
    z = torch.randn(6, 2, 3, dtype=torch.float64)
    assert torch.allclose(StandardNormal(3).log_prob(z), Independent(Normal(torch.zeros(3, dtype=torch.float64), 1.0), 1).log_prob(z))
    p = _mixture()
    ref = MixtureSameFamily(Categorical(logits=torch.zeros(4, dtype=torch.float64)),
                            Independent(Normal(p.means, torch.exp(0.5 * p.logvars)), 1))
    assert torch.allclose(p.log_prob(z), ref.log_prob(z), atol=1e-10)
    # a component's samples come from that component
    x = p.sample(20_000, torch.Generator().manual_seed(0), component=2).double()
    assert torch.allclose(x.mean(0), p.means[2].detach(), atol=0.05)
    assert torch.allclose(x.std(0), torch.exp(0.5 * p.logvars[2]).detach(), rtol=0.03)


def test_mixture_joint_kl_matches_torch_and_the_dispersion_identity_holds():
    q, p = _gaussian(), _mixture()
    logits = torch.randn(5, 4, dtype=torch.float64)
    term = kl_divergence(WithComponent(q, logits), p)
    pi = torch.softmax(logits, -1)
    qd = Independent(Normal(q.mu, torch.exp(0.5 * q.logvar)), 1)
    per_c = torch.stack([torch_kl(qd, Independent(Normal(p.means[c].detach(), torch.exp(0.5 * p.logvars[c]).detach()), 1))
                         for c in range(4)], dim=1)                                       # (B, C)
    kl_c = torch_kl(Categorical(probs=pi), Categorical(logits=torch.zeros(4, dtype=torch.float64)))
    assert torch.allclose(term.total, kl_c + (pi * per_c).sum(1), atol=1e-8)
    # DEM-VAE: sum_c pi_c KL(q || p_c) = KL(q || p_etabar) + L_d, with etabar the pi-average of the
    # components' natural parameters; and L_d >= 0, zero when all components are one
    var = torch.exp(p.logvars).detach()
    eta1, eta2 = pi @ (p.means.detach() / var), pi @ (-0.5 / var)
    bar = Independent(Normal(-eta1 / (2 * eta2), torch.sqrt(-0.5 / eta2)), 1)
    assert torch.allclose((pi * per_c).sum(1), torch_kl(qd, bar) + term.dispersion, atol=1e-8)
    assert (term.dispersion > 0).all()
    same = GaussianMixture(3, 4).double()
    with torch.no_grad():
        same.means.copy_(p.means[0].expand(4, 3))
    assert torch.allclose(same.dispersion(pi), torch.zeros(5, dtype=torch.float64), atol=1e-10)


def test_mixture_kl_for_a_flow_is_estimated_from_samples():
    torch.manual_seed(0)
    head = ComponentHead(IAFHead(6, 3, steps=2), 6, 4)
    q = head(torch.randn(5, 6))
    with pytest.raises(NeedsSamples):
        kl_divergence(q, GaussianMixture(3, 4))
    z, log_q = q.rsample(StreamNoise(5, 3))
    term = kl_divergence(q, GaussianMixture(3, 4), z, log_q)
    assert not term.exact and term.total.shape == (5,)


def test_mutual_information_subsamples_a_flow_also_under_a_mixture_prior(monkeypatch):
    """MI inverts a flow N^2 times: a seeded subsample stands for a large corpus (MI_SENTENCES_SLOW),
    an IAF's under the mixture prior (a WithComponent around it) as a bare IAF's: the same rows,
    so the same figure. Over all N sentences (the subsample skipped) the figure differs."""
    monkeypatch.setattr(evaluate_module, "MI_SENTENCES_SLOW", 5)
    torch.manual_seed(0)
    head = ComponentHead(IAFHead(6, 3, steps=2), 6, 4)
    with torch.no_grad():
        q = head(torch.randn(20, 6))
        bare = evaluate_module.mutual_information(q.inner)
        assert evaluate_module.mutual_information(q) == pytest.approx(bare, abs=1e-12)
        monkeypatch.setattr(evaluate_module, "MI_SENTENCES_SLOW", 20)
        assert abs(evaluate_module.mutual_information(q.inner) - bare) > 1e-3


def test_iaf_log_q_is_the_change_of_variables_with_the_autograd_jacobian():
    torch.manual_seed(0)
    nz = 4
    flow = IAFFlow(nz, context=3, steps=3, hidden=16).double()
    with torch.no_grad():                   # away from the identity start, so the test bites
        for p in flow.parameters():
            p.normal_(0, 0.5)
    h = torch.randn(3, dtype=torch.float64)
    z0 = torch.randn(nz, dtype=torch.float64)
    zT, log_g = flow(z0, h)
    J = torch.autograd.functional.jacobian(lambda z: flow(z, h)[0], z0)
    assert torch.allclose(log_g, torch.logdet(J), atol=1e-8)        # log |det dz_T/dz_0|
    # the autoregressive structure: each step's Jacobian is triangular
    step0 = lambda z: flow.steps[0](z, h)[0]                                            # noqa: E731
    assert torch.allclose(torch.autograd.functional.jacobian(step0, z0).triu(), torch.zeros(nz, nz, dtype=torch.float64))
    # and log_prob, which inverts the flow, gives back what rsample reported
    base = Gaussian(torch.randn(2, nz, dtype=torch.float64), torch.randn(2, nz, dtype=torch.float64) * 0.3)
    q = IAF(base, torch.randn(2, 3, dtype=torch.float64), flow)
    z, log_q = q.rsample(StreamNoise(2, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2)))
    assert torch.allclose(q.log_prob(z.transpose(0, 1)).T, log_q, atol=1e-8)
    z0_back, _ = flow.inverse(z, q.context.unsqueeze(1).expand(-1, 5, -1))
    assert torch.allclose(flow(z0_back, q.context.unsqueeze(1).expand(-1, 5, -1))[0], z, atol=1e-10)


def test_iaf_posterior_density_integrates_to_one_in_one_dimension():
    """A change of variables gone wrong (a sign, a missing term) shows as mass != 1."""
    torch.manual_seed(1)
    flow = IAFFlow(1, context=2, steps=2, hidden=8).double()
    with torch.no_grad():
        for p in flow.parameters():
            p.normal_(0, 0.7)
    q = IAF(Gaussian(torch.tensor([[0.3]], dtype=torch.float64), torch.tensor([[0.2]], dtype=torch.float64)),
            torch.randn(1, 2, dtype=torch.float64), flow)
    grid = torch.linspace(-15, 15, 30_001, dtype=torch.float64).view(-1, 1, 1)          # (G, B=1, 1)
    with torch.no_grad():
        mass = torch.exp(q.log_prob(grid)).sum() * (30 / 30_000)
    assert float(mass) == pytest.approx(1.0, abs=1e-6)


@pytest.fixture(scope="module")
def gmm_1d_model():
    """nz = 1, a 3-component mixture prior spread out, a decoder leaning on z; log p(x) by quadrature."""
    torch.manual_seed(5)
    model = build_model(ModelConfig(vocab_size=6, emb_dim=8, hidden=8, latent=1, dropout=0.0, bidirectional=False,
                                    prior="gmm", components=3)).eval()
    with torch.no_grad():
        model.decoder.z_to_state.weight.mul_(8.0)
        model.prior.means.copy_(torch.tensor([[-2.5], [0.0], [2.0]]))
        model.prior.logvars.copy_(torch.tensor([[-1.0], [-0.5], [-1.5]]))
        model.to_posterior.inner.weight.mul_(0.5)
    sentences = [[4], [5, 4], [4, 4, 5], [5, 5, 1, 4], [1, 5]]
    corpus = corpus_from_ids(sentences)
    x = collate(corpus, np.arange(len(sentences))).tokens
    grid = torch.linspace(-12, 12, 8001).unsqueeze(1)
    exact = []
    with torch.no_grad():
        for i in range(len(sentences)):
            xi = x[i:i + 1].expand(grid.size(0), -1)
            ll = model.log_likelihood(grid, xi[:, :-1], xi[:, 1:]).double()
            exact.append(-float(torch.logsumexp(ll + model.prior.log_prob(grid.double()), 0) + math.log(24 / 8000)))
    return model, corpus, torch.tensor(exact, dtype=torch.float64)


def test_iw_nll_with_a_mixture_prior_converges_to_quadrature(gmm_1d_model):
    model, corpus, exact = gmm_1d_model
    r = evaluate(model, corpus, iw_samples=3000, seed=2, per_sentence=True)
    iw = torch.tensor(r.per_sentence["iw_nll"], dtype=torch.float64)
    se = torch.sqrt((1 / torch.tensor(r.per_sentence["ess"]) - 1 / 3000).clamp_min(0))
    assert ((iw - exact).abs() <= 4 * se + 2e-3).all(), (iw - exact, se)
    # the bound (with the joint KL of z and the component) sits above the NLL
    assert (torch.tensor(r.per_sentence["elbo"]) >= exact - 1e-6).all()
    assert r.kl_exact


def test_heads_give_their_families():
    h = torch.randn(4, 10)
    assert isinstance(GaussianHead(10, 3)(h), Gaussian)
    q = ComponentHead(GaussianHead(10, 3), 10, 5)(h)
    assert isinstance(q, WithComponent) and q.components().shape == (4, 5)
    assert torch.allclose(q.components().sum(1), torch.ones(4))
    assert set(q.params()) == {"z", "mu", "logvar", "components"}
