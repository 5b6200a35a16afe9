"""A von Mises-Fisher posterior with a fixed concentration, under the uniform prior on the sphere
(Guu et al. 2018; Xu & Durrett 2018, "Spherical latent spaces for stable VAEs").

    q(z|x) = vMF(mu(x), kappa) on S^{d-1} (d = nz):  f(z) = C_d(kappa) exp(kappa mu.z)
    C_d(kappa) = kappa^{d/2-1} / ((2 pi)^{d/2} I_{d/2-1}(kappa))      (a density on the sphere's surface)
    p(z) = 1 / |S^{d-1}|,  |S^{d-1}| = 2 pi^{d/2} / Gamma(d/2)
    E_q[z] = A_d(kappa) mu,  A_d(kappa) = I_{d/2}(kappa) / I_{d/2-1}(kappa)
    KL(q || p) = kappa A_d(kappa) + log C_d(kappa) + log |S^{d-1}|

Only mu comes from the encoder (a linear map of its summary, normalised), so the KL is a constant
of kappa and d: no optimiser can shrink it, and the posterior cannot collapse onto the prior. The
price is fixed: kappa buys a rate.

Sampling (Wood 1994): w = mu.z has the density prop. to exp(kappa w) (1 - w^2)^{(d-3)/2} on
[-1, 1], drawn by rejection from a proposal built on a Beta((d-1)/2, (d-1)/2) variable; then
z' = (w, sqrt(1 - w^2) v), v uniform on S^{d-2}, is a sample around e1, and an orthogonal map
taking e1 to mu (a Householder reflection) makes it one around mu. With kappa fixed, w does not
depend on mu: the rejection step needs no gradient, and z is reparameterised through mu alone.
The rejection draws come from the noise object (sentvae/noise.py, `accepted`): under SeededNoise
each sentence's samples come from its own generators, whatever the batch.

Bessel functions: log I_v(x) from scipy.special.ive (exponentially scaled: no overflow at large
x); where even that underflows (a large order v against a small x: nz in the thousands), from the
power series summed in log space, which converges for every x.
"""

import functools
import math

import numpy as np
import torch
import torch.nn as nn

from sentvae.kl import KL
from sentvae.posteriors import Posterior


def log_iv(v: float, x: float) -> float:
    """log I_v(x), the modified Bessel function of the first kind, for v >= 0, x > 0."""
    from scipy.special import ive

    scaled = float(ive(v, x))              # I_v(x) e^{-x}
    if math.isfinite(scaled) and scaled > 1e-300:
        return math.log(scaled) + x
    return _log_iv_series(v, x)


def _log_iv_series(v: float, x: float) -> float:
    """log I_v(x) = v log(x/2) + log sum_k (x^2/4)^k / (k! Gamma(v + k + 1)), summed in log space
    past its largest term (at k* with k* (v + k*) ~ x^2 / 4) until the terms are negligible."""
    q = x * x / 4
    k_star = (-v + math.sqrt(v * v + 4 * q)) / 2
    k = np.arange(int(k_star + 60 + 12 * math.sqrt(k_star + 1)), dtype=np.float64)
    from scipy.special import gammaln

    terms = k * math.log(q) - gammaln(k + 1) - gammaln(v + k + 1)
    top = terms.max()
    return v * math.log(x / 2) + top + math.log(np.exp(terms - top).sum())


@functools.lru_cache(maxsize=64)
def constants(kappa: float, d: int) -> dict:
    """The figures of vMF(., kappa) on S^{d-1} that do not depend on mu (python floats):
    log_c = log C_d(kappa), mean_cos = A_d(kappa) = E[mu.z], kl = KL to the uniform prior,
    entropy."""
    v = d / 2 - 1
    log_i = log_iv(v, kappa)
    mean_cos = math.exp(log_iv(v + 1, kappa) - log_i)
    log_c = v * math.log(kappa) - (d / 2) * math.log(2 * math.pi) - log_i
    log_area = math.log(2) + (d / 2) * math.log(math.pi) - math.lgamma(d / 2)      # log |S^{d-1}|
    return {"log_c": log_c, "mean_cos": mean_cos, "log_area": log_area,
            "kl": kappa * mean_cos + log_c + log_area, "entropy": -(kappa * mean_cos + log_c)}


def wood_proposal(kappa: float, d: int, g: torch.Tensor, u: torch.Tensor):
    """Wood's (1994) rejection step for w = mu.z, float64. g (n, d) standard normals, u (n,)
    uniforms -> (w (n,), accepted (n,) bool).

    The proposal's Beta((d-1)/2, (d-1)/2) variable is (1 + t) / 2 with t = g_1 / |g| (the first
    coordinate of a uniform point on S^{d-1} has the density prop. to (1 - t^2)^{(d-3)/2})."""
    m1 = d - 1
    b = m1 / (math.sqrt(4 * kappa * kappa + m1 * m1) + 2 * kappa)
    x0 = (1 - b) / (1 + b)
    c = kappa * x0 + m1 * math.log(4 * b / (1 + b) ** 2)        # 1 - x0^2 = 4b / (1 + b)^2, without cancellation
    eps = 0.5 * (1 + g[:, 0] / g.norm(dim=1))
    w = (1 - (1 + b) * eps) / (1 - (1 - b) * eps)
    accept = kappa * w + m1 * torch.log1p(-x0 * w) - c >= torch.log(u)
    return w, accept


class VonMisesFisher(Posterior):
    """vMF(mu, kappa) for B sentences: mu (B, nz) unit vectors, kappa a number (fixed, shared)."""
    param_names = ("z", "mu", "kappa")
    fixed_kl = "fixed by --kappa and --latent"

    def __init__(self, mu: torch.Tensor, kappa: float):
        self.mu, self.kappa = mu, float(kappa)
        self.batch, self.dim = mu.shape
        self.const = constants(self.kappa, self.dim)

    def rsample(self, noise):
        """z (B, S, nz) on the sphere and log q(z|x) (B, S)."""
        d = self.dim
        w = noise.accepted(functools.partial(wood_proposal, self.kappa, d), d)        # (B, S) float64
        v = noise.normal(d - 1, dtype=torch.float64)                                  # (B, S, d-1)
        v = v / v.norm(dim=-1, keepdim=True)
        z0 = torch.cat([w.unsqueeze(-1), torch.sqrt((1 - w * w).clamp_min(0)).unsqueeze(-1) * v], dim=-1)
        dtype = torch.promote_types(self.mu.dtype, torch.float32)
        z = self._rotate(z0.to(dtype), self.mu.to(dtype).unsqueeze(1))              # (B, S, nz)
        log_q = self.kappa * w + self.const["log_c"]         # mu.z = w: the density at z, exactly
        return z.to(self.mu.dtype), log_q.to(dtype)

    @staticmethod
    def _rotate(z0: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        """An orthogonal map taking e1 to mu, applied to z0 (..., nz). Householder with u = e1 - mu maps
        e1 to mu but is 0/0 at mu = e1; so where mu_1 > 0 the map is -H' with u = e1 + mu (H' takes e1 to
        -mu). Either way |u|^2 = 2 (1 -+ mu_1) >= 2: no division by a small number, and the gradient
        through mu is that of a smooth map around every mu off mu_1 = 0."""
        sign = torch.where(mu[..., :1] > 0, -1.0, 1.0).to(mu.dtype)                  # (..., 1)
        u = -sign * mu
        u = torch.cat([u[..., :1] + 1, u[..., 1:]], dim=-1)                            # e1 - sign mu
        proj = (z0 * u).sum(dim=-1, keepdim=True) / (u * u).sum(dim=-1, keepdim=True)
        return sign * (z0 - 2 * proj * u)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """z (..., B, nz) on the sphere -> (..., B): kappa mu.z + log C_d(kappa)."""
        return self.kappa * (z * self.mu.to(z.dtype)).sum(dim=-1) + self.const["log_c"]

    def mean(self) -> torch.Tensor:
        return self.const["mean_cos"] * self.mu

    def entropy(self) -> torch.Tensor:
        return self.mu.new_full((self.batch,), self.const["entropy"])

    def params(self) -> dict:
        return {"z": self.mean(), "mu": self.mu, "kappa": self.mu.new_full((self.batch,), self.kappa)}

    def index(self, rows):
        return VonMisesFisher(self.mu[rows], self.kappa)

    @staticmethod
    def cat(parts):
        return VonMisesFisher(torch.cat([p.mu for p in parts]), parts[0].kappa)

    def to(self, device=None, dtype=None):
        return VonMisesFisher(self.mu.to(device, dtype), self.kappa)


class VMFHead(nn.Linear):
    """h (B, S) -> vMF(mu, kappa): mu = W h + b, normalised onto the sphere."""
    family = VonMisesFisher

    def __init__(self, summary: int, latent: int, kappa: float):
        super().__init__(summary, latent)
        self.kappa = kappa

    def forward(self, h: torch.Tensor) -> VonMisesFisher:
        direction = super().forward(h)
        return VonMisesFisher(direction / direction.norm(dim=-1, keepdim=True).clamp_min(1e-12), self.kappa)


class SphereUniform(nn.Module):
    """The uniform distribution on the unit sphere S^{nz-1}: log p(z) = -log |S^{nz-1}|."""

    def __init__(self, latent: int):
        super().__init__()
        self.latent = latent
        self.log_area = math.log(2) + (latent / 2) * math.log(math.pi) - math.lgamma(latent / 2)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return torch.full(z.shape[:-1], -self.log_area, dtype=z.dtype, device=z.device)

    def sample(self, n: int, generator=None) -> torch.Tensor:
        g = torch.randn(n, self.latent, generator=generator)
        return g / g.norm(dim=-1, keepdim=True)


def vmf_uniform(q: VonMisesFisher, p: SphereUniform, z=None, log_q=None) -> torch.Tensor:
    """KL(vMF(mu, kappa) || U(S^{d-1})) of each sentence: the same constant for all, (B,)."""
    return q.mu.new_full((q.batch,), q.const["kl"])


KL[(VonMisesFisher, SphereUniform)] = vmf_uniform
