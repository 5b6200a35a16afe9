"""The ELBO and its training knobs: KL annealing, word dropout, free bits, beta.

All figures are per sentence, in nats. The true negative ELBO is rec + KL (beta = 1,
no annealing, no free bits); the surrogate that training minimises is
rec + beta * w(step) * KL', where KL' is the KL with free bits applied. Logs and
results always keep the two apart.
"""

import math

import torch

from sentvae.config import TrainConfig
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


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per dimension: (B, nz)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def word_dropout(inp: torch.Tensor, p: float, generator=None) -> torch.Tensor:
    """Replace decoder inputs by UNK with probability p; never BOS (position 0) or PAD."""
    if p <= 0:
        return inp
    drop = torch.rand(inp.shape, device=inp.device, generator=generator) < p
    drop[:, 0] = False
    drop &= inp != PAD
    return inp.masked_fill(drop, UNK)


def elbo_loss(log_px_z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
              weight: float, cfg: TrainConfig, bow_nll: torch.Tensor | None = None):
    """-> (surrogate loss to minimise, figures). Figures are tensors (no host sync here).

    bow_nll: the bag-of-words NLL per sentence; cfg.bow_weight times its mean joins the
    surrogate (Zhao et al. 2017), never the true ELBO.

    Free bits (Kingma et al. 2016; Li et al. 2019): each dimension's batch-mean KL is
    floored at cfg.free_bits nats, so the optimiser gains nothing by pushing it lower. With
    free_bits_over = "sentence" the floor applies to each sentence's dimension instead: one at
    or under it leaves the surrogate (Li et al.'s code, fb = 2), so only the sentences whose code
    is informative in that dimension pay for it.
    """
    rec = -log_px_z                                  # (B,)
    kl_d = gaussian_kl(mu, logvar)                   # (B, nz)
    kl = kl_d.sum(dim=1)                             # (B,)
    if cfg.free_bits > 0 and cfg.free_bits_over == "sentence":
        kl_term = (kl_d * (kl_d > cfg.free_bits)).sum(dim=1).mean()
    elif cfg.free_bits > 0:
        kl_term = kl_d.mean(dim=0).clamp(min=cfg.free_bits).sum()
    else:
        kl_term = kl.mean()
    loss = rec.mean() + cfg.beta * weight * kl_term
    if bow_nll is not None and cfg.bow_weight > 0:
        loss = loss + cfg.bow_weight * bow_nll.mean()
    figures = {"loss": loss.detach(), "elbo": (rec + kl).mean().detach(),
               "rec": rec.mean().detach(), "kl": kl.mean().detach()}
    return loss, figures
