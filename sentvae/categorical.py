"""A categorical latent c in {0..K-1} (the Deep Latent NLP tutorial's "mixture of RNN language models",
Kim, Wiseman and Rush 2018), alone or beside a Gaussian z.

    p(c) = 1/K                     q(c|x) = softmax(W h)        (h: the encoder's summary)
    c alone:      code = one-hot(c) (K,)
    c beside z:   code = [one-hot(c) (K,) ; z (nz,)],  p(c, z) = p(c) N(z; 0, I),  q(c, z|x) = q(c|x) q(z|x)

A code is what the rest of sentvae calls z: what posteriors sample, priors score, `encode` writes
and `decode` reads. The decoder sees it through `CategoryCode` (SentenceVAE.condition, the one
place): a learned embedding E c of size --latent, concatenated to the Gaussian z where there is
one, so the decoder's conditioning input is [E c ; z] (nz + nz) or E c (nz). A code's category part
may also be a point of the simplex between one-hots (a Gumbel-softmax sample, an interpolation):
E then mixes the categories' embeddings.

The posterior objects answer the interface of sentvae/posteriors.py, plus what the estimators
(sentvae/estimators.py) and exact evaluation (sentvae/exact.py) need:
    q.enumerate(noise)          every value of c (beside S samples of z): (B, S*K, D), log q (B, S*K)
    q.relaxed(noise, tau, hard) a Gumbel-softmax sample of c (beside a sample of z)
    q.category_log_prob(z)      log q(c|x) of the category a code holds: (..., B)
    q.components()              q(c|x) (B, K), float32: what `sentvae clusters` reads
A Categorical alone is enumerable (`values` = K): eval sums over its K values for the exact log p(x).
mean() is the code of the most probable category (with the Gaussian part's mean beside it): the
code the decoder is given by `reconstruct --posterior mean` and `decode(encode(x))`.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from sentvae.errors import SentvaeError
from sentvae.kl import KL, KLTerm, kl_divergence
from sentvae.posteriors import Posterior, wide
from sentvae.priors import StandardNormal


def gumbel(u: torch.Tensor) -> torch.Tensor:
    """Standard Gumbel noise from uniforms u in [0, 1): -log(-log u) (u = 0 clamped away)."""
    return -torch.log(-torch.log(u.clamp_min(torch.finfo(u.dtype).tiny)))


def gumbel_softmax(log_probs: torch.Tensor, u: torch.Tensor, tau: float, hard: bool = False):
    """Jang et al. 2017: y = softmax((log q + g) / tau) over the last dimension, g Gumbel noise from
    uniforms u (log_probs' shape), and c its argmax, an exact sample of q. hard: y is the one-hot of c
    in the forward pass with the relaxed sample's gradient (straight-through)."""
    perturbed = log_probs + gumbel(u)
    y = torch.softmax(perturbed / tau, dim=-1)
    c = perturbed.argmax(dim=-1)
    if hard:     # y - y.detach() is exactly 0: the forward is the one-hot itself
        y = F.one_hot(c, y.size(-1)).to(y.dtype) + (y - y.detach())
    return y, c


def is_one_hot(z: torch.Tensor) -> torch.Tensor:
    """(..., K) -> (...): each row a one-hot vector."""
    return ((z == 0) | (z == 1)).all(dim=-1) & (z.sum(dim=-1) == 1)


class Categorical(Posterior):
    """q(c|x) = softmax(logits) (B, K), c coded one-hot. `baseline` (B,): the score-function
    baseline per target token, b(x) / n(x), that the head computed beside it (training only)."""
    param_names = ("z", "categories")

    def __init__(self, logits: torch.Tensor, baseline: torch.Tensor | None = None):
        self.logits, self.baseline = logits, baseline
        self.batch, self.dim = logits.shape
        self.categories = self.values = self.dim        # enumerable: K values

    def log_probs(self) -> torch.Tensor:
        return torch.log_softmax(wide(self.logits), dim=-1)                    # (B, K)

    def rsample(self, noise):
        """c ~ q by Gumbel-max (exact samples; no gradient through z, log q has one)."""
        lp = self.log_probs()
        c = (lp.unsqueeze(1) + gumbel(noise.uniform(self.dim, dtype=torch.float32)).to(lp.dtype)).argmax(dim=-1)
        return F.one_hot(c, self.dim).to(self.logits.dtype), lp.gather(1, c)     # (B, S, K), (B, S)

    def relaxed(self, noise, tau: float, hard: bool = False):
        """A Gumbel-softmax sample y = softmax((log q + g) / tau) (B, S, K) (Jang et al. 2017), and the
        category argmax y, an exact sample of q (B, S). hard: y is the one-hot of that category in the
        forward pass, with the relaxed sample's gradient (straight-through)."""
        y, c = gumbel_softmax(self.log_probs().unsqueeze(1), noise.uniform(self.dim, dtype=torch.float32), tau, hard)
        return y.to(self.logits.dtype), c

    def enumerate(self, noise=None):
        """Every value once: the K one-hots (B, K, K) and their log q (B, K)."""
        eye = torch.eye(self.dim, dtype=self.logits.dtype, device=self.logits.device)
        return eye.expand(self.batch, -1, -1), self.log_probs()

    def category_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log q(c|x) of the category each drawn code holds: z (B, S, D) one-hot in its first K -> (B, S)."""
        lp = self.log_probs()
        return (z[..., :self.dim].to(lp.dtype) * lp.unsqueeze(1)).sum(dim=-1)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """z (..., B, K) -> (..., B); -inf where z is not a one-hot (no density off the vertices)."""
        lp = self.log_probs()
        return torch.where(is_one_hot(z), (z.to(lp.dtype) * lp).sum(dim=-1), -math.inf)

    def mean(self) -> torch.Tensor:
        """The code of the most probable category (not E_q[one-hot] = q(c|x): see the module docstring)."""
        return F.one_hot(self.logits.argmax(dim=-1), self.dim).to(self.logits.dtype)

    def entropy(self) -> torch.Tensor:
        lp = self.log_probs()
        return -(lp.exp() * lp).sum(dim=-1)

    def components(self) -> torch.Tensor:
        return torch.softmax(self.logits.float(), dim=-1)

    def component_log_probs(self) -> torch.Tensor:
        return torch.log_softmax(self.logits.float(), dim=-1)

    def params(self) -> dict:
        return {"z": self.mean(), "categories": torch.softmax(self.logits, dim=-1)}

    def index(self, rows):
        return Categorical(self.logits[rows])

    @staticmethod
    def cat(parts):
        return Categorical(torch.cat([p.logits for p in parts]))

    def to(self, device=None, dtype=None):
        return Categorical(self.logits.to(device, dtype), self.baseline)


class WithCategory(Posterior):
    """q(c|x) q(z|x): a Categorical beside a Gaussian (any posterior over z), code [one-hot(c) ; z]."""
    values = None            # z is continuous: not enumerable (c is, inside each weight: see evaluate)

    def __init__(self, category: Categorical, inner):
        self.category, self.inner = category, inner
        self.baseline = category.baseline
        self.categories = category.dim
        self.batch, self.dim = inner.batch, category.dim + inner.dim
        self.param_names = ("z", *inner.param_names, "categories")

    def _split(self, z):
        return z[..., :self.categories], z[..., self.categories:]

    def rsample(self, noise):
        zg, lq_g = self.inner.rsample(noise)                                  # (B, S, nz), (B, S)
        c, lq_c = self.category.rsample(noise)                                # (B, S, K), (B, S)
        return torch.cat([c.to(zg.dtype), zg], dim=-1), lq_c + lq_g

    def relaxed(self, noise, tau: float, hard: bool = False):
        zg, _ = self.inner.rsample(noise)
        y, c = self.category.relaxed(noise, tau, hard)
        return torch.cat([y.to(zg.dtype), zg], dim=-1), c

    def enumerate(self, noise):
        """S samples of z (from noise), each beside every category: (B, S*K, K+nz), sample-major;
        log q(c, z|x) (B, S*K)."""
        zg, lq_g = self.inner.rsample(noise)                                  # (B, S, nz)
        B, S, K = zg.size(0), zg.size(1), self.categories
        eye = torch.eye(K, dtype=zg.dtype, device=zg.device)
        z = torch.cat([eye.expand(B, S, K, K), zg.unsqueeze(2).expand(B, S, K, zg.size(-1))], dim=-1)
        log_q = self.category.log_probs().unsqueeze(1) + lq_g.unsqueeze(2)   # (B, S, K)
        return z.reshape(B, S * K, -1), log_q.reshape(B, S * K)

    def category_log_prob(self, z):
        return self.category.category_log_prob(z)

    def log_prob(self, z):
        c, zg = self._split(z)
        return self.category.log_prob(c) + self.inner.log_prob(zg)

    def mean(self):
        return torch.cat([self.category.mean().to(self.inner.mean().dtype), self.inner.mean()], dim=-1)

    def entropy(self):
        h = self.inner.entropy()
        return None if h is None else self.category.entropy().to(h.dtype) + h

    def components(self):
        return self.category.components()

    def component_log_probs(self):
        return self.category.component_log_probs()

    def params(self) -> dict:
        return {"z": self.mean(), **self.inner.params(), "categories": self.category.params()["categories"]}

    def index(self, rows):
        return WithCategory(self.category.index(rows), self.inner.index(rows))

    @staticmethod
    def cat(parts):
        return WithCategory(Categorical.cat([p.category for p in parts]), type(parts[0].inner).cat([p.inner for p in parts]))

    def to(self, device=None, dtype=None):
        return WithCategory(self.category.to(device, dtype), self.inner.to(device, dtype))


# --- priors
class UniformCategorical(nn.Module):
    """p(c) = 1/K over one-hot codes (K,)."""

    def __init__(self, categories: int):
        super().__init__()
        self.categories = categories

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """z (..., K) -> (...): -log K at a one-hot, -inf elsewhere."""
        return torch.where(is_one_hot(z), -math.log(self.categories), -math.inf).to(z.dtype)

    def sample(self, n: int, generator=None, category: int | None = None) -> torch.Tensor:
        """n one-hot codes (n, K), on the CPU from `generator` (all of `category`, if given)."""
        c = torch.randint(self.categories, (n,), generator=generator) if category is None \
            else torch.full((n,), category, dtype=torch.long)
        return F.one_hot(c, self.categories).float()


class CategoricalAndNormal(nn.Module):
    """p(c) p(z) = 1/K N(z; 0, I) over codes [one-hot(c) ; z] (K + nz,)."""

    def __init__(self, categories: int, latent: int):
        super().__init__()
        self.categories = categories
        self.category, self.normal = UniformCategorical(categories), StandardNormal(latent)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return self.category.log_prob(z[..., :self.categories]) + self.normal.log_prob(z[..., self.categories:])

    def sample(self, n: int, generator=None, category: int | None = None) -> torch.Tensor:
        return torch.cat([self.category.sample(n, generator, category), self.normal.sample(n, generator)], dim=-1)


# --- KL, in closed form
def categorical_uniform(q: Categorical, p: UniformCategorical, z=None, log_q=None) -> torch.Tensor:
    """KL(q(c|x) || U(K)) = sum_c q log q + log K: (B,)."""
    lp = q.log_probs()
    return (lp.exp() * lp).sum(dim=-1) + math.log(p.categories)


def with_category_normal(q: WithCategory, p: CategoricalAndNormal, z=None, log_q=None) -> KLTerm:
    """KL(q(c|x) q(z|x) || p(c) p(z)) = KL_c + KL_z (independent parts)."""
    kz = kl_divergence(q.inner, p.normal, z, log_q)
    return KLTerm(categorical_uniform(q.category, p.category).to(kz.total.dtype) + kz.total, None, kz.exact)


KL[(Categorical, UniformCategorical)] = categorical_uniform
KL[(WithCategory, CategoricalAndNormal)] = with_category_normal


# --- the networks: heads (summary -> posterior), the baseline, the conditioner
class Baseline(nn.Module):
    """The score-function estimator's input-dependent baseline (Mnih & Gregor 2014), per target
    token: b(x) = n(x) beta(h), with beta a small network on the encoder's summary, read without
    its gradient (the baseline learns from its own squared error, and only its own weights do).
    beta starts at -log V, the reward per token of a decoder that predicts uniformly."""

    def __init__(self, summary: int, vocab_size: int, width: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(summary, width), nn.Tanh(), nn.Linear(width, 1))
        with torch.no_grad():
            self.net[2].bias.fill_(-math.log(vocab_size))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h.detach()).squeeze(-1)                                # (B,)


class CategoricalHead(nn.Module):
    """h (B, S) -> Categorical: a linear layer gives the K logits; the baseline sits beside them."""
    family = Categorical

    def __init__(self, summary: int, categories: int, vocab_size: int):
        super().__init__()
        self.values = categories
        self.to_logits = nn.Linear(summary, categories)
        self.baseline = Baseline(summary, vocab_size)

    def forward(self, h: torch.Tensor) -> Categorical:
        return Categorical(self.to_logits(h), self.baseline(h))


class CategoryHead(nn.Module):
    """A posterior head over z (the Gaussian's) with a CategoricalHead beside it, on the same summary."""
    family = WithCategory
    values = None

    def __init__(self, inner: nn.Module, summary: int, categories: int, vocab_size: int):
        super().__init__()
        self.inner, self.categorical = inner, CategoricalHead(summary, categories, vocab_size)
        self.param_names = ("z", *inner.family.param_names, "categories")

    def forward(self, h: torch.Tensor) -> WithCategory:
        return WithCategory(self.categorical(h), self.inner(h))


class CategoryCode(nn.Module):
    """The decoder's conditioning from a code [c (K,) ; z (rest,)]: [E c ; z] (size + rest,), E a
    learned (K, size) embedding (a one-hot c picks its row; a relaxed c mixes the rows). Rows start
    as N(0, I) draws, the scale of the Gaussian codes a decoder is used to."""

    def __init__(self, categories: int, size: int, rest: int = 0):
        super().__init__()
        self.categories, self.out_dim = categories, size + rest
        self.embed = nn.Linear(categories, size, bias=False)
        nn.init.normal_(self.embed.weight)

    def forward(self, z: torch.Tensor, c=None) -> torch.Tensor:       # c: labels, refused beside a categorical
        return torch.cat([self.embed(z[..., :self.categories]), z[..., self.categories:]], dim=-1)

    def check(self, z: torch.Tensor, names: list[str] | None = None) -> None:
        """Codes given from outside: each category part must be a distribution over the K values
        (a one-hot, or a point between them); else one line naming the row (names[row] if given)."""
        c = z[:, :self.categories]
        bad = (c < 0).any(dim=1) | ((c.sum(dim=1) - 1).abs() > 1e-3)
        if bad.any():
            row = int(bad.nonzero()[0])
            where = names[row] if names else f"z: row {row}"
            raise SentvaeError(f"{where}: its first {self.categories} numbers (the category) must be "
                               f"probabilities summing to 1 (a one-hot picks a category), not "
                               f"{[round(float(v), 4) for v in c[row][:6]]}{' ...' if self.categories > 6 else ''}")
