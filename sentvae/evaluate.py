"""Evaluation: the true ELBO, reconstruction, KL, active units and perplexity bounds.

Per-sentence figures are in nats. Perplexity divides by words + 1 (whitespace words
plus end of sentence), not by subword tokens, so it compares across tokenizers.
"""

import math

import torch

from sentvae.data import Corpus, collate, make_batches
from sentvae.objective import gaussian_kl

AU_THRESHOLD = 0.01


def active_units(mu: torch.Tensor, threshold: float = AU_THRESHOLD) -> int:
    """Dimensions d with Cov_x(E_q[z_d | x]) > threshold (Burda et al. 2016); mu (N, nz)."""
    if mu.size(0) < 2:
        return 0
    return int((mu.double().var(dim=0, unbiased=True) > threshold).sum())


@torch.inference_mode()
def evaluate_elbo(model, corpus: Corpus, max_tokens: int = 8000, device="cpu", seed: int = 0) -> dict:
    """One pass with one z ~ q(z|x) per sentence (beta = 1, no annealing, no free bits)."""
    was_training = model.training
    model.eval()
    gen = torch.Generator(device=device).manual_seed(seed)
    rec_sum = kl_sum = 0.0
    mus = []
    for idx in make_batches(corpus.lengths, max_tokens, shuffle=False):
        x, lengths = collate(corpus, idx)
        x, lengths = x.to(device), lengths.to(device)
        log_px_z, mu, logvar = model(x, lengths, generator=gen)
        rec_sum += float(-log_px_z.double().sum())
        kl_sum += float(gaussian_kl(mu, logvar).double().sum())
        mus.append(mu.float().cpu())
    model.train(was_training)
    n = len(corpus)
    words = int(corpus.words.sum()) + n                  # + end of sentence
    tokens = int(corpus.lengths.sum()) + n               # pieces + EOS
    elbo = (rec_sum + kl_sum) / n
    return {"sentences": n, "words": words, "tokens": tokens,
            "elbo": elbo, "rec": rec_sum / n, "kl": kl_sum / n,
            "au": active_units(torch.cat(mus)), "latent": model.cfg.latent,
            "ppl_elbo": math.exp(min((rec_sum + kl_sum) / words, 700.0))}
