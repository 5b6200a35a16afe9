"""How a categorical latent's q(c|x) gets its gradient (`--estimator`): the three strategies of the
Deep Latent NLP tutorial (Kim, Wiseman and Rush 2018) for the ELBO of sentvae/categorical.py,

    ELBO(x) = E_q(z|x) [ sum_c q(c|x) log p(x|c, z) ] - KL(q(c|x) || p(c)) - KL(q(z|x) || p(z))

(no z where c is alone). The KLs are in closed form, so every estimator takes their exact gradient;
they differ in the reconstruction term's gradient with respect to q(c|x):

- exact: the sum over the K values, K decoder passes per sentence (per sample of z). No variance
  from c at all; the cost grows with K.
- reinforce: one c ~ q(c|x) per sample, the score function (Williams 1992) with a learned
  input-dependent baseline b(x) (Mnih & Gregor 2014): the surrogate
      -[log p(x|c, z) + (log p(x|c, z) - b(x)) log q(c|x)]     (the bracket's factor without gradient)
  whose gradient is unbiased for any b(x) that does not depend on c. b(x) = n(x) beta(h) is learned by
  its squared error to the reward log p(x|c, z) (a target without gradient; the baseline reads the
  encoder's summary without gradient, so only its own weights learn from it).
- gumbel: the Gumbel-softmax relaxation (Jang et al. 2017; Maddison et al. 2017): the decoder reads
  y = softmax((log q + g) / tau), reparameterised; tau follows Jang et al.'s schedule
  tau(step) = max(--tau-min, --tau exp(-rate step)) (each step, not every N steps). Low variance,
  biased (the relaxed objective is not the ELBO); --straight-through decodes the one-hot argmax and
  back-propagates through y.

The figures keep the true -ELBO apart from the surrogate ("loss"): `rec` is, for exact, the exact
sum over c; for reinforce and straight-through, log p(x|c) of the decoded sample c ~ q (an exact
sample, so an unbiased estimate); for the plain relaxation, whose decoded y is no category, the
argmax of the same perturbed logits (the Gumbel-max sample, exact) is decoded beside it, so the
decoder reads each sentence twice. Validation and `sentvae eval` sum over c exactly.
"""

import math

import torch
import torch.nn.functional as F

from sentvae import svi
from sentvae.categorical import Categorical
from sentvae.errors import SentvaeError
from sentvae.objective import ELBO, temperature


class CategoricalELBO(ELBO):
    """What the three share: the checks, the KL term (exact gradient), the baseline's regression."""

    def __init__(self, cfg, categories: int, step: int = 0):
        super().__init__(cfg, step)
        self.relax = None                       # the latent's own draw below relaxes; no labels here
        self.categories = categories
        self.copies = self.samples              # decoder copies of a sentence per step (the token budget's)
        self.draw = None                        # how codes are drawn (None: q.rsample, exact samples)
        self.use_baseline = True

    def check(self, posterior_family: type, prior_family: type, labelled: bool = False) -> None:
        cfg = self.cfg            # labelled: refused with a categorical latent (ModelConfig's rules)
        if not hasattr(posterior_family, "category_log_prob"):
            raise SentvaeError("--estimator: applies to a categorical latent (--latent-type categorical or "
                               "categorical+gaussian)")
        if cfg.objective != "elbo":
            raise SentvaeError(f"--objective {cfg.objective}: a categorical latent trains the ELBO (--estimator "
                               "says how)")
        if cfg.bow_weight > 0:
            raise SentvaeError("--bow-weight: not offered with a categorical latent")
        svi.check(cfg.svi_steps, posterior_family)              # a categorical's parameters do not refine
        self.check_kl_knobs(posterior_family, prior_family)     # free bits per dimension, dispersion
        self.check_latent_floor(posterior_family)
        if cfg.max_tokens < self.copies * (cfg.max_len + 1):
            raise SentvaeError(f"--max-tokens: must be at least {self.copies * (cfg.max_len + 1)}, the decoder "
                               f"copies of a sentence ({self.copies}) x (--max-len + 1), so the longest sentence fits")

    def check_latent_floor(self, posterior_family: type) -> None:
        """--free-bits-over latent floors the KL at free_bits x the code's size, K for a categorical
        alone; its KL is at most log K, so a floor at or above that leaves q(c|x) no KL gradient."""
        cfg, K = self.cfg, self.categories
        if cfg.free_bits > 0 and cfg.free_bits_over == "latent" and issubclass(posterior_family, Categorical) \
                and cfg.free_bits * K >= math.log(K):
            raise SentvaeError(f"--free-bits: {cfg.free_bits:g} x {K} categories = {cfg.free_bits * K:g} nats, at or "
                               f"above the most a categorical over {K} values holds (log {K} = {math.log(K):.2f}): "
                               "its KL would get no gradient")

    def baseline_loss(self, terms, reward: torch.Tensor) -> torch.Tensor:
        """The baseline's squared error to the reward (B, S) (a target without gradient): its own
        weights alone learn from it (it reads the summary without gradient)."""
        b = terms.posterior.baseline * terms.tokens.to(reward.dtype)             # (B,)
        return (b.unsqueeze(1) - reward.detach()).pow(2).mean()

    def advantage(self, terms, reward: torch.Tensor) -> torch.Tensor:
        """reward - b(x) (B, S), without gradient (b = 0 with use_baseline off: for bench/gradvar.py)."""
        if not self.use_baseline:
            return reward.detach()
        b = terms.posterior.baseline * terms.tokens.to(reward.dtype)
        return (reward - b.unsqueeze(1)).detach()

    def finish(self, surrogate_rec, rec, terms, weight, reward, **extra):
        """surrogate_rec: the reconstruction part of what is minimised; rec (B,): the true one's figure."""
        mse = self.baseline_loss(terms, reward)
        loss = surrogate_rec + self.cfg.beta * weight * self.kl_term(terms.kl, terms.posterior.dim) + mse
        return self._finish(loss, rec, terms.kl.total, terms, baseline_rmse=mse.detach().sqrt(), **extra)


class Exact(CategoricalELBO):
    """Every category decoded: rec = -sum_c q(c|x) log p(x|c, z), its gradient exact in c."""

    def __init__(self, cfg, categories: int, step: int = 0):
        super().__init__(cfg, categories, step)
        self.copies = self.samples * categories
        self.draw = _enumerate

    def check(self, posterior_family, prior_family, labelled: bool = False):
        super().check(posterior_family, prior_family, labelled)
        if self.samples > 1 and issubclass(posterior_family, Categorical):
            raise SentvaeError("--train-samples: the exact estimator sums over a categorical latent's K values; "
                               "there is nothing to sample (leave it at 1)")

    def loss(self, terms, weight: float):
        B, K = terms.ll.size(0), self.categories
        ll = terms.ll.view(B, -1, K)                                           # (B, S, K)
        q_c = terms.posterior.category_log_prob(terms.z).view(B, -1, K).exp()  # (B, S, K), with gradient
        rec = -(q_c * ll).sum(dim=-1).mean(dim=-1)                             # (B,)
        return self.finish(rec.mean(), rec, terms, weight, -rec.unsqueeze(1))


class Reinforce(CategoricalELBO):
    """One c ~ q(c|x) per sample; the score function with the learned baseline."""

    def loss(self, terms, weight: float):
        ll = terms.ll                                                          # (B, S)
        log_q_c = terms.posterior.category_log_prob(terms.z)                   # (B, S), with gradient
        rec = -ll.mean(dim=1)                                                  # pathwise for decoder (and z)
        score = -(self.advantage(terms, ll) * log_q_c).mean(dim=1)             # the score function for q(c|x)
        return self.finish(rec.mean() + score.mean(), rec, terms, weight, ll)


class Gumbel(CategoricalELBO):
    """The decoder reads a Gumbel-softmax sample at the scheduled temperature."""

    def __init__(self, cfg, categories: int, step: int = 0):
        super().__init__(cfg, categories, step)
        self.tau = temperature(step, cfg)
        self.hard = cfg.straight_through
        self.copies = self.samples * (1 if self.hard else 2)
        self.draw = self.relaxed

    def relaxed(self, q, noise):
        """-> codes (B, S, D): the relaxed samples; without straight-through, the S Gumbel-max
        categories of the same noise after them (B, 2S, D). log q: of the category each rounds to."""
        y, c = q.relaxed(noise, self.tau, self.hard)
        hard = torch.cat([F.one_hot(c, self.categories).to(y.dtype), y[..., self.categories:]], dim=-1)
        log_q = q.log_prob(hard.detach().transpose(0, 1)).T                    # (B, S)
        if self.hard:
            return y, log_q
        return torch.cat([y, hard.detach()], dim=1), log_q.repeat(1, 2)

    def loss(self, terms, weight: float):
        S = self.samples
        ll = terms.ll[:, :S]                                                   # relaxed (or straight-through)
        exact = ll if self.hard else terms.ll[:, S:]                           # of exact samples of q
        return self.finish(-ll.mean(dim=1).mean(), -exact.detach().mean(dim=1), terms, weight, exact,
                           tau=torch.tensor(self.tau, device=ll.device))


def _enumerate(q, noise):
    return q.enumerate(noise)


ESTIMATORS = {"exact": Exact, "reinforce": Reinforce, "gumbel": Gumbel}
