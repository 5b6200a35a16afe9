"""Priors p(z): modules of the model (a prior may learn; its parameters are then the model's).

    p.log_prob(z)              # z (..., nz) -> (...)
    p.sample(n, generator)     # (n, nz), drawn on the CPU from `generator` (reproducible on any device)
"""

import math

import torch
import torch.nn as nn

LOG_2PI = math.log(2 * math.pi)


class StandardNormal(nn.Module):
    """N(0, I) in nz dimensions."""

    def __init__(self, latent: int):
        super().__init__()
        self.latent = latent

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return -0.5 * (self.latent * LOG_2PI + z.pow(2).sum(dim=-1))

    def sample(self, n: int, generator=None) -> torch.Tensor:
        return torch.randn(n, self.latent, generator=generator)


class PointPrior(nn.Module):
    """The LM baseline's prior: z = 0 always (sentvae.posteriors.Point)."""

    def __init__(self, latent: int):
        super().__init__()
        self.latent = latent

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return torch.where((z == 0).all(dim=-1), 0.0, -math.inf).to(z.dtype)

    def sample(self, n: int, generator=None) -> torch.Tensor:
        return torch.zeros(n, self.latent)
