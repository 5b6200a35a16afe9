"""KL(q(z|x) || p(z)): analytic where the pair has a closed form, a Monte Carlo estimate otherwise.

KL is a plain dict, (posterior type, prior type) -> function(q, p, z, log_q) giving the KL of
each sentence: a tensor per dimension (B, nz) when the pair factorises by dimension (so free bits
can floor each dimension), a tensor per sentence (B,), or a whole KLTerm. z (B, S, nz) and log_q
(B, S) are samples of q that the caller drew; a function that needs them and gets None raises
NeedsSamples. A pair not in the registry gets the estimate mean_s [log q(z_s|x) - log p(z_s)]
from those samples: unbiased, and reported as an estimate (`KLTerm.exact` is False; eval's table
says which).
"""

from dataclasses import dataclass

import torch

from sentvae.posteriors import Gaussian, Point
from sentvae.priors import PointPrior, StandardNormal


class NeedsSamples(ValueError):
    """This pair's KL is estimated from samples of q, and none were given."""


def gaussian_standard_normal(q: Gaussian, p: StandardNormal, z=None, log_q=None) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per dimension: (B, nz)."""
    return 0.5 * (q.mu.pow(2) + q.logvar.exp() - 1.0 - q.logvar)


def point_point(q: Point, p: PointPrior, z=None, log_q=None) -> torch.Tensor:
    return torch.zeros_like(q.z0)


KL = {
    (Gaussian, StandardNormal): gaussian_standard_normal,
    (Point, PointPrior): point_point,
}


@dataclass
class KLTerm:
    total: torch.Tensor               # (B,) KL of each sentence
    dims: torch.Tensor | None         # (B, nz) per dimension, where the KL splits by dimension
    exact: bool                       # analytic (True) or a Monte Carlo estimate (False)
    dispersion: torch.Tensor | None = None   # (B,) a mixture prior's dispersion term (sentvae/mixture.py)


def per_dimension(posterior_family: type, prior_family: type) -> bool:
    """Whether KL(q || p) is analytic and splits by dimension (free bits per dimension can apply)."""
    return (posterior_family, prior_family) in KL and posterior_family.factorized


def kl_divergence(q, p, z: torch.Tensor | None = None, log_q: torch.Tensor | None = None) -> KLTerm:
    """The KL of each sentence; z (B, S, nz) and log_q (B, S), samples of q, are needed where the
    pair has no closed form (NeedsSamples otherwise)."""
    fn = KL.get((type(q), type(p)))
    if fn is not None:
        kl = fn(q, p, z, log_q)
        if isinstance(kl, KLTerm):
            return kl
        if kl.dim() == 2:
            return KLTerm(kl.sum(dim=1), kl, True)
        return KLTerm(kl, None, True)
    if z is None or log_q is None:
        raise NeedsSamples(f"no closed-form KL({type(q).__name__} || {type(p).__name__}): give samples")
    return KLTerm((log_q - p.log_prob(z)).mean(dim=1), None, False)
