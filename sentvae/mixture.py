"""A learnable mixture-of-Gaussians prior with a component posterior (GM-VAE; DEM-VAE, Shi et al. 2020).

    p(c) = 1/C,  p(z|c) = N(m_c, diag(exp(v_c)))          the prior: C learnable components
    q(z, c|x) = q(z|x) q(c|x)                              the posterior: any q(z|x), and q(c|x) from
                                                           a small network on the same encoder summary
The decoder sees z only; c acts through the prior. The ELBO's KL is that of the joint:
    KL(q(c|x) || p(c)) + sum_c q(c|x) KL(q(z|x) || p(z|c))
an upper bound on KL(q(z|x) || p(z)) (the bound stays a bound; importance-weighted figures use the
exact marginal log p(z) = logsumexp_c [log p(c) + log p(z|c)], so they do not depend on q(c|x)).
It is in closed form for a Gaussian q(z|x), and for another family the sum over c is exact and
each component's KL a Monte Carlo estimate from the samples drawn.

Mode collapse (DEM-VAE): for exponential-family components, with natural parameters eta_c, log
partition A and weights pi_c = q(c|x),
    sum_c pi_c KL(q || p_c) = KL(q || p_etabar) + L_d,   etabar = sum_c pi_c eta_c,
    L_d = sum_c pi_c A(eta_c) - A(etabar) >= 0           (the dispersion term)
so maximising the ELBO pays for pulling the components together. `--dispersion LAMBDA` adds
LAMBDA * L_d back to the objective (LAMBDA = 0: a plain GM-VAE). The authors' code writes the same
objective with a weight b on L_d inside the KL, which is LAMBDA = 1 - b (their PTB runs: b = 0.2).
"""

import math

import torch
import torch.nn as nn

from sentvae.kl import KL, KLTerm, NeedsSamples
from sentvae.posteriors import Gaussian, Posterior

LOG_2PI = math.log(2 * math.pi)


class GaussianMixture(nn.Module):
    """C diagonal Gaussians in nz dimensions with equal weights; means start at N(0, I) draws."""

    def __init__(self, latent: int, components: int):
        super().__init__()
        self.latent, self.components = latent, components
        self.means = nn.Parameter(torch.randn(components, latent))      # (C, nz)
        self.logvars = nn.Parameter(torch.zeros(components, latent))   # (C, nz)

    def component_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z|c) for every c: z (..., nz) -> (..., C)."""
        m, v = self.means.to(z.dtype), self.logvars.to(z.dtype)
        dev = (z.unsqueeze(-2) - m) ** 2 * torch.exp(-v)                # (..., C, nz)
        return -0.5 * (self.latent * LOG_2PI + v.sum(dim=-1) + dev.sum(dim=-1))

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(self.component_log_prob(z), dim=-1) - math.log(self.components)

    def responsibilities(self, z: torch.Tensor) -> torch.Tensor:
        """p(c|z): (..., C)."""
        return torch.softmax(self.component_log_prob(z), dim=-1)

    def sample(self, n: int, generator=None, component: int | None = None) -> torch.Tensor:
        """n draws from the prior (of one component, if given), on the CPU from `generator`."""
        if component is None:
            c = torch.randint(self.components, (n,), generator=generator)
        else:
            c = torch.full((n,), component, dtype=torch.long)
        eps = torch.randn(n, self.latent, generator=generator)
        m, v = self.means.detach().cpu(), self.logvars.detach().cpu()
        return m[c] + torch.exp(0.5 * v[c]) * eps

    def log_partition(self, eta1: torch.Tensor, eta2: torch.Tensor) -> torch.Tensor:
        """A(eta) of a diagonal Gaussian summed over dimensions (eta1 = m / s2, eta2 = -1 / (2 s2))."""
        return (-eta1 ** 2 / (4 * eta2) - 0.5 * torch.log(-2 * eta2)).sum(dim=-1)

    def dispersion(self, weights: torch.Tensor) -> torch.Tensor:
        """L_d = sum_c w_c A(eta_c) - A(sum_c w_c eta_c) for weights (B, C): (B,), >= 0."""
        var = torch.exp(self.logvars)                                   # (C, nz)
        eta1, eta2 = self.means / var, -0.5 / var
        a_c = self.log_partition(eta1, eta2)                            # (C,)
        w = weights.to(eta1.dtype)
        bar1, bar2 = w @ eta1, w @ eta2                                 # (B, nz)
        return w @ a_c - self.log_partition(bar1, bar2)


class WithComponent(Posterior):
    """q(z|x) q(c|x): any posterior over z beside a categorical over the prior's components."""
    refinable = True        # where its q(z|x) is (every family that a mixture prior takes)

    def __init__(self, inner, logits: torch.Tensor):
        self.inner, self.logits = inner, logits          # logits (B, C)
        self.batch, self.dim = inner.batch, inner.dim
        self.cheap_log_prob = getattr(inner, "cheap_log_prob", True)   # an IAF's: MI subsamples
        self.param_names = ("z", *inner.param_names, "components") if "z" not in inner.param_names \
            else (*inner.param_names, "components")

    def rsample(self, noise):
        return self.inner.rsample(noise)

    def log_prob(self, z):
        return self.inner.log_prob(z)

    def mean(self):
        return self.inner.mean()

    def entropy(self):
        return self.inner.entropy()

    def components(self) -> torch.Tensor:
        """q(c|x): (B, C)."""
        return torch.softmax(self.logits.float(), dim=-1)

    def component_log_probs(self) -> torch.Tensor:
        """log q(c|x): (B, C), float32."""
        return torch.log_softmax(self.logits.float(), dim=-1)

    def params(self) -> dict:
        inner = self.inner.params()
        return {"z": self.mean(), **inner, "components": self.components()} if "z" not in inner \
            else {**inner, "components": self.components()}

    def free_params(self) -> dict:
        return {**self.inner.free_params(), "logits": self.logits}

    def with_params(self, p: dict) -> "WithComponent":
        return WithComponent(self.inner.with_params(p), p["logits"])

    def index(self, rows):
        return WithComponent(self.inner.index(rows), self.logits[rows])

    @staticmethod
    def cat(parts):
        return WithComponent(type(parts[0].inner).cat([p.inner for p in parts]), torch.cat([p.logits for p in parts]))

    def to(self, device=None, dtype=None):
        return WithComponent(self.inner.to(device, dtype), self.logits.to(device, dtype))


class ComponentHead(nn.Module):
    """Wraps a posterior head: the same summary h also gives q(c|x) through Linear-ReLU-Linear (the
    DEM-VAE code's network)."""

    def __init__(self, inner: nn.Module, summary: int, components: int, width: int = 128):
        super().__init__()
        self.inner = inner
        self.family = WithComponent
        self.base_family = inner.family
        self.param_names = ("z", *inner.family.param_names, "components")
        self.to_components = nn.Sequential(nn.Linear(summary, width), nn.ReLU(), nn.Linear(width, components))

    def forward(self, h: torch.Tensor) -> WithComponent:
        return WithComponent(self.inner(h), self.to_components(h))


def kl_with_component(q: WithComponent, p: GaussianMixture, z=None, log_q=None) -> KLTerm:
    """KL(q(c|x) || U(C)) + sum_c q(c|x) KL(q(z|x) || p(z|c)), and the dispersion L_d."""
    pi = torch.softmax(q.logits.to(torch.float32 if q.logits.dtype != torch.float64 else q.logits.dtype), dim=-1)
    kl_c = (pi * (torch.log(pi.clamp_min(1e-30)) + math.log(p.components))).sum(dim=-1)     # (B,)
    inner = q.inner
    if isinstance(inner, Gaussian):
        m, v = p.means.to(inner.mu.dtype), p.logvars.to(inner.mu.dtype)          # (C, nz)
        mu, lv = inner.mu.unsqueeze(1), inner.logvar.unsqueeze(1)                 # (B, 1, nz)
        kl_zc = 0.5 * (v - lv + (lv.exp() + (mu - m) ** 2) * torch.exp(-v) - 1).sum(dim=-1)   # (B, C)
        exact = True
    else:
        if z is None:
            raise NeedsSamples("the KL of a non-Gaussian q(z|x) to a mixture is estimated from samples")
        kl_zc = (log_q.unsqueeze(-1) - p.component_log_prob(z)).mean(dim=1)     # (B, C)
        exact = False
    total = kl_c + (pi * kl_zc.to(pi.dtype)).sum(dim=-1)
    return KLTerm(total, None, exact, dispersion=p.dispersion(pi))


KL[(WithComponent, GaussianMixture)] = kl_with_component
