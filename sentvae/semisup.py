"""The labels' part of the training objective: Kingma et al. 2014's M2, semi-supervised.

Per sentence, with the labels it has c_l and those it lacks c_u (sentvae/labelled.py):

    -ELBO(x) = -sum_{c_u} q(c_u|x) E_q(z|x)[log p(x | z, c_l, c_u)] + KL(q(z|x) || p(z))
               + KL(q(c_u|x) || p(c_u))

a bound on -log p(x | c_l): on -log p(x|c) for a labelled sentence, on -log p(x) for an
unlabelled one. The first term is the model's forward() (Terms.ll, exact over every value of
c_u), the second the ELBO's KL (annealed, beta, free bits: sentvae/objective.py); the third is
added here, at weight 1 (neither annealed nor scaled by --beta: it is q(c|x)'s own bound term,
and it keeps q(c|x) from collapsing onto one value early on). Training adds

    alpha * sum_a mean over the batch's sentences labelled for a of -log q(c_a = their label | x)

(--classifier-weight alpha; M2's alpha * E_labelled[-log q(y|x)] with alpha = 0.1 per sentence,
the paper's 0.1 N over N sentences). The classifier also learns from the unlabelled sentences,
through the weights q(c_u|x) of the first term: M2's point.
"""

import torch

from sentvae.errors import SentvaeError


def refuse(objective: str) -> None:
    """Objectives that cannot take labels (the IWAE bound would need a bound per label value)."""
    if objective == "iwae":
        raise SentvaeError("--objective iwae: not with labels (--label-field ...); the bound would need "
                           "one importance-weighted bound per value of the missing labels: use elbo")


def label_loss(labels, alpha: float) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """labels: a batch's LabelTerms. -> (what training adds to the loss, KL(q(c|x) || p(c)) of each
    sentence (B,), figures)."""
    kl = labels.kl()                                               # (B,)
    ce, known = labels.cross_entropy()                             # (B, A), (B, A)
    per_attribute = ce.sum(dim=0) / known.sum(dim=0).clamp(min=1)  # (A,) mean over the labelled
    loss = kl.mean() + alpha * per_attribute.sum()
    return loss, kl, {"kl_labels": kl.mean().detach(), "class_ce": per_attribute.sum().detach()}
