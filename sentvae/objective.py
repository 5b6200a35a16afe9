"""Objectives and their training knobs: the ELBO (KL annealing, free bits, beta), the IWAE bound,
word dropout.

An objective turns the terms of a forward pass (sentvae.model.vae.Terms: log p(x|z_s), log q(z_s|x),
log p(z_s) and the KL of each sentence) into the surrogate that training minimises and the figures
it logs. All figures are per sentence, in nats. The true negative ELBO is rec + KL (beta = 1, no
annealing, no free bits); logs and results always keep it apart from the surrogate.
"""

import math

import torch

from sentvae import controlled, svi
from sentvae.config import TrainConfig
from sentvae.errors import SentvaeError
from sentvae.kl import per_dimension
from sentvae.semisup import label_loss, refuse
from sentvae.tokenizer import PAD, UNK


def kl_weight(step: int, cfg: TrainConfig, total_steps: int | None = None) -> float:
    """Annealing weight in [0, 1] for the update with 0-based index `step`.

    linear: 0 -> 1 over anneal_steps. logistic (Bowman et al. 2016): a sigmoid centred at
    anneal_steps / 2, about 0.007 at 0 and 0.993 at anneal_steps. cyclical (Fu et al. 2019):
    `cycles` equal cycles over total_steps, each ramping 0 -> 1 over its first
    `cycle_ratio` and holding 1 for the rest.
    """
    if cfg.kl_anneal == "none":
        return 1.0
    if cfg.kl_anneal == "linear":
        return min(1.0, step / cfg.anneal_steps)
    if cfg.kl_anneal == "logistic":
        x = 10.0 * (step / cfg.anneal_steps - 0.5)
        return 1.0 / (1.0 + math.exp(-x))
    if not total_steps:
        raise ValueError("cyclical annealing needs the total number of steps")
    period = total_steps / cfg.cycles
    tau = (step % period) / period
    return min(1.0, tau / cfg.cycle_ratio)


def word_dropout(inp: torch.Tensor, p: float, generator=None) -> torch.Tensor:
    """Replace decoder inputs by UNK with probability p; never BOS (position 0) or PAD."""
    if p <= 0:
        return inp
    drop = torch.rand(inp.shape, device=inp.device, generator=generator) < p
    drop[:, 0] = False
    drop &= inp != PAD
    return inp.masked_fill(drop, UNK)


def refuse_estimator(cfg: TrainConfig, labelled: bool = False) -> None:
    """--estimator is for a categorical latent (sentvae/estimators.py, whose objectives are built
    instead) or a labelled model's missing labels (exact: M2's sum; gumbel: one relaxed sample)."""
    if labelled and cfg.estimator in (None, "exact", "gumbel"):
        return
    if labelled:
        raise SentvaeError(f"--estimator {cfg.estimator}: a labelled model sums a sentence's missing labels "
                           "out exactly or relaxes them (exact or gumbel)")
    if cfg.estimator is not None:
        raise SentvaeError(f"--estimator {cfg.estimator}: applies to a categorical latent (--latent-type "
                           "categorical or categorical+gaussian) or to labels (--label-field); a Gaussian is "
                           "reparameterised")


def temperature(step: int, cfg) -> float:
    """The relaxation's temperature at update `step` (Jang et al. 2017's exponential decay, floored)."""
    return max(cfg.tau_min, cfg.tau * math.exp(-cfg.tau_rate * step))


class ELBO:
    """The evidence lower bound from one z per sentence, with its training knobs.

    Surrogate: rec + beta * w(step) * KL' (+ bow_weight * bag-of-words NLL), where KL' is the KL
    with free bits applied. Free bits (Kingma et al. 2016; Li et al. 2019): each dimension's
    batch-mean KL is floored at cfg.free_bits nats, so the optimiser gains nothing by pushing it
    lower. With free_bits_over = "sentence" the floor applies to each sentence's dimension instead:
    one at or under it leaves the surrogate (Li et al.'s code, fb = 2), so only the sentences whose
    code is informative in that dimension pay for it. Both need a KL that splits by dimension.
    """

    draw = None                                 # codes from q.rsample (sentvae/estimators.py draws its own)

    def __init__(self, cfg: TrainConfig, step: int = 0):
        self.cfg = cfg
        self.samples = cfg.train_samples        # z per sentence; with several, rec is their mean
        self.copies = self.samples              # decoder copies of a sentence per step (the token budget's)
        # a labelled model's missing labels: summed out exactly (None), or one Gumbel-softmax sample at
        # this step's temperature (--estimator gumbel): (tau, straight-through), for SentenceVAE.forward
        self.relax = (temperature(step, cfg), cfg.straight_through) if cfg.estimator == "gumbel" else None

    def check(self, posterior_family: type, prior_family: type, labelled: bool = False) -> None:
        """Refuse, with one line, knobs this posterior x prior pair (and labels) cannot honour."""
        if labelled:
            svi.refuse_labels(self.cfg.svi_steps)
        controlled.refuse(self.cfg, labelled)
        refuse_estimator(self.cfg, labelled)
        svi.check(self.cfg.svi_steps, posterior_family)
        self.check_kl_knobs(posterior_family, prior_family)

    def check_kl_knobs(self, posterior_family: type, prior_family: type) -> None:
        """Free bits and the dispersion term: what this pair's KL must allow."""
        if self.cfg.free_bits > 0 and posterior_family.fixed_kl:
            raise SentvaeError(f"--free-bits: the KL of this posterior is a constant ({posterior_family.fixed_kl}): "
                               "there is nothing to floor")
        if self.cfg.free_bits > 0 and self.cfg.free_bits_over != "latent" and \
                not per_dimension(posterior_family, prior_family):
            raise SentvaeError(f"--free-bits: needs a KL that splits by latent dimension; "
                               f"KL({posterior_family.__name__} || {prior_family.__name__}) does not "
                               "(--free-bits-over latent floors the whole latent's KL)")
        if self.cfg.dispersion > 0 and not hasattr(prior_family, "dispersion"):
            raise SentvaeError("--dispersion: applies to a mixture prior (--prior gmm)")

    def kl_term(self, kl, latent: int) -> torch.Tensor:
        cfg = self.cfg
        if cfg.free_bits > 0 and cfg.free_bits_over == "latent":
            return kl.total.mean().clamp(min=cfg.free_bits * latent)
        if cfg.free_bits > 0 and cfg.free_bits_over == "sentence":
            return (kl.dims * (kl.dims > cfg.free_bits)).sum(dim=1).mean()
        if cfg.free_bits > 0:
            return kl.dims.mean(dim=0).clamp(min=cfg.free_bits).sum()
        return kl.total.mean()

    def loss(self, terms, weight: float):
        """-> (surrogate loss to minimise, figures). Figures are tensors (no host sync here)."""
        cfg = self.cfg
        rec = -terms.ll.mean(dim=1)                      # (B,)
        kl = terms.kl.total                              # (B,)
        kl_term = self.kl_term(terms.kl, terms.posterior.dim)
        extra = {}
        if terms.kl.dispersion is not None:
            extra["dispersion"] = terms.kl.dispersion.mean().detach()
            if cfg.dispersion > 0:      # DEM-VAE: the dispersion bonus, under the same annealing weight
                kl_term = kl_term - cfg.dispersion * terms.kl.dispersion.mean()
        loss = rec.mean() + cfg.beta * weight * kl_term
        return self._finish(loss, rec, kl, terms, **extra)

    def _finish(self, loss, rec, kl, terms, **extra):
        if self.cfg.bow_weight > 0:
            loss = loss + self.cfg.bow_weight * terms.bow.mean()
        elbo = rec + kl
        if terms.labels is not None:     # a labelled model: M2's terms (sentvae/semisup.py)
            more, kl_labels, figures = label_loss(terms.labels, self.cfg.classifier_weight)
            loss, elbo = loss + more, elbo + kl_labels
            extra.update(figures)
        figures = {"loss": loss.detach(), "elbo": elbo.mean().detach(),
                   "rec": rec.mean().detach(), "kl": kl.mean().detach(), **extra}
        return loss, figures


class IWAE(ELBO):
    """The K-sample importance-weighted bound (Burda et al. 2016):
        log p(x) >= E[log 1/K sum_k p(x|z_k) p(z_k) / q(z_k|x)],  z_k ~ q(z|x)
    Its gradient weights each sample by its normalised importance weight. Annealing and beta
    temper the prior-to-posterior ratio inside each weight (w = 1, beta = 1: the bound itself).
    The figures keep the true -ELBO (from the same samples) beside the -IWAE bound (`iwae`)."""

    def check(self, posterior_family: type, prior_family: type, labelled: bool = False) -> None:
        if labelled:
            refuse(self.cfg.objective)
            svi.refuse_labels(self.cfg.svi_steps)
        controlled.refuse(self.cfg, labelled)
        refuse_estimator(self.cfg, labelled)
        svi.check(self.cfg.svi_steps, posterior_family)
        if self.cfg.free_bits > 0:
            raise SentvaeError("--free-bits: applies to --objective elbo (the IWAE bound has no KL term to floor)")
        if self.cfg.dispersion > 0:
            raise SentvaeError("--dispersion: applies to --objective elbo (the IWAE bound has no KL term to add it to)")

    def loss(self, terms, weight: float):
        ratio = terms.log_p - terms.log_q                                  # (B, K)
        log_k = math.log(terms.ll.size(1))
        log_w = terms.ll + self.cfg.beta * weight * ratio
        bound = torch.logsumexp(log_w, dim=1) - log_k
        true_bound = torch.logsumexp((terms.ll + ratio).detach(), dim=1) - log_k
        rec = -terms.ll.mean(dim=1)
        loss = -bound.mean()
        if terms.components is not None:
            # a mixture prior's q(c|x) is not in the bound (which uses the marginal p(z)): fit it to
            # the components' posterior under the importance weights, sum_k w_k p(c|z_k) (no gradient
            # through those targets, so the bound's own gradients are unchanged)
            target = (torch.softmax(log_w.detach(), dim=1).unsqueeze(-1) * terms.components.detach()).sum(dim=1)
            loss = loss - (target * terms.posterior.component_log_probs()).sum(dim=1).mean()
        return self._finish(loss, rec, terms.kl.total, terms, iwae=-true_bound.mean())


OBJECTIVES = {"elbo": ELBO, "iwae": IWAE}


def build_objective(cfg: TrainConfig, model_cfg=None, step: int = 0) -> ELBO:
    """The objective of a run (model_cfg: the model's config; its latent type decides, where it is
    categorical, for one of --estimator's, sentvae/estimators.py). step: the update it serves
    (a schedule of its own, e.g. the Gumbel-softmax temperature's, follows it)."""
    if model_cfg is not None and model_cfg.latent_type != "gaussian":
        from sentvae.estimators import ESTIMATORS      # (it imports this module: loaded when needed)
        return ESTIMATORS[cfg.estimator or "exact"](cfg, model_cfg.categories, step)
    return OBJECTIVES[cfg.objective](cfg, step)

