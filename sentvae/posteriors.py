"""Posteriors q(z|x): one object holds the distributions of a batch of B sentences.

Every posterior answers the same questions, so training, evaluation, codes and the decoder never
ask which family they hold:

    q.batch, q.dim                  # B sentences, nz (the size of z)
    z, log_q = q.rsample(noise)     # (B, S, nz), (B, S): reparameterised samples and log q(z|x)
    q.log_prob(z)                   # z (..., B, nz) -> (..., B): broadcasts, as MI needs
    q.mean()                        # (B, nz): E_q[z], a sentence's code
    q.entropy()                     # (B,) where it has a closed form, else None
    q.params()                      # {name: (B, ...)}: what `sentvae encode` writes
    q.index(rows), Posterior.cat([...]), q.to(device, dtype)
    q.free_params(), q.with_params(p)   # the tensors that define q ({name: (B, ...)}), and the same
                                    # family rebuilt from new ones (semi-amortized inference, svi.py)

The noise (sentvae/noise.py) decides where randomness comes from; a posterior only says how base
noise becomes z. A head (an nn.Module) turns the encoder's summary h (B, S) into a posterior.
"""

import math

import torch
import torch.nn as nn

LOG_2PI = math.log(2 * math.pi)


def wide(t: torch.Tensor) -> torch.Tensor:
    """At least float32 (bf16/fp16 under autocast widened, float64 kept): densities and small
    updates that half precision would round away."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


class Posterior:
    batch: int              # B, the sentences it holds (set by each family's constructor)
    dim: int                # nz, the size of z
    factorized = False      # its KL to a factorised prior splits by dimension (free bits per dimension)
    values = None           # the number of values z takes where it can be enumerated, else None
    fixed_kl = None         # where its KL to its prior is a constant: what fixes it (nothing to floor)
    refinable = False       # free_params/with_params exist: its parameters can be refined by gradient steps

    def entropy(self):
        return None


class Gaussian(Posterior):
    """N(mu, diag(exp(logvar))): mu, logvar (B, nz)."""
    factorized = True
    refinable = True
    param_names = ("mu", "logvar")

    def __init__(self, mu: torch.Tensor, logvar: torch.Tensor):
        self.mu, self.logvar = mu, logvar
        self.batch, self.dim = mu.shape

    def rsample(self, noise):
        # in float32 at least: under bf16 autocast, log q summed from bf16 terms was off the density
        # at the returned z by up to ~0.25 nats, which reaches the IWAE weights and a flow's KL
        mu, logvar = wide(self.mu), wide(self.logvar)
        eps = noise.normal(self.dim, dtype=mu.dtype)                          # (B, S, nz)
        z = mu.unsqueeze(1) + torch.exp(0.5 * logvar).unsqueeze(1) * eps
        log_q = (-0.5 * (self.dim * LOG_2PI + logvar.sum(dim=-1))).unsqueeze(1) - 0.5 * eps.pow(2).sum(dim=-1)
        return z, log_q

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        dev = (z - self.mu) ** 2 * torch.exp(-self.logvar)                     # (..., B, nz)
        return -0.5 * (self.dim * LOG_2PI + self.logvar.sum(dim=-1) + dev.sum(dim=-1))

    def mean(self) -> torch.Tensor:
        return self.mu

    def entropy(self) -> torch.Tensor:
        return 0.5 * self.dim * LOG_2PI + 0.5 * (1 + self.logvar).sum(dim=-1)

    def params(self) -> dict:
        return {"mu": self.mu, "logvar": self.logvar}

    def free_params(self) -> dict:
        return {"mu": self.mu, "logvar": self.logvar}

    def with_params(self, p: dict) -> "Gaussian":
        return Gaussian(p["mu"], p["logvar"])

    def index(self, rows):
        return Gaussian(self.mu[rows], self.logvar[rows])

    @staticmethod
    def cat(parts):
        return Gaussian(torch.cat([p.mu for p in parts]), torch.cat([p.logvar for p in parts]))

    def to(self, device=None, dtype=None):
        return Gaussian(self.mu.to(device, dtype), self.logvar.to(device, dtype))


class Point(Posterior):
    """A point mass at z0 (B, nz): the latent of a model without one (the LM baseline), where z is
    always 0. Its prior is the same point, so log p(z) - log q(z|x) = 0 and KL = 0; an importance
    weight is p(x|z0) = p(x), exactly, from one sample."""
    values = 1
    param_names = ("z",)

    def __init__(self, z0: torch.Tensor):
        self.z0 = z0
        self.batch, self.dim = z0.shape

    def rsample(self, noise):
        B, S = self.batch, noise.samples
        return self.z0.unsqueeze(1).expand(B, S, self.dim), self.z0.new_zeros(B, S)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        at = (z == self.z0).all(dim=-1)
        return torch.where(at, 0.0, -math.inf).to(z.dtype)

    def enumerate(self, noise=None):
        """Its one value: z0 (B, 1, nz), log q = 0 (B, 1)."""
        return self.z0.unsqueeze(1), self.z0.new_zeros(self.batch, 1)

    def mean(self) -> torch.Tensor:
        return self.z0

    def entropy(self) -> torch.Tensor:
        return self.z0.new_zeros(self.batch)        # of a point mass's (discrete) distribution

    def params(self) -> dict:
        return {"z": self.z0}

    def index(self, rows):
        return Point(self.z0[rows])

    @staticmethod
    def cat(parts):
        return Point(torch.cat([p.z0 for p in parts]))

    def to(self, device=None, dtype=None):
        return Point(self.z0.to(device, dtype))


class GaussianHead(nn.Linear):
    """h (B, S) -> Gaussian: one linear layer gives mu and logvar. (A Linear itself, so that its
    weights keep the names `to_posterior.weight/bias` that checkpoints have always used.)"""
    family = Gaussian

    def __init__(self, summary: int, latent: int):
        super().__init__(summary, 2 * latent)

    def forward(self, h: torch.Tensor) -> Gaussian:
        mu, logvar = super().forward(h).chunk(2, dim=-1)
        return Gaussian(mu, logvar)


class PointHead(nn.Module):
    """The LM baseline's 'posterior': z = 0 whatever the sentence (no parameters)."""
    family = Point

    def __init__(self, latent: int):
        super().__init__()
        self.latent = latent

    def forward(self, h: torch.Tensor) -> Point:
        return Point(h.new_zeros(h.size(0), self.latent))
