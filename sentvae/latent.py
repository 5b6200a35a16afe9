"""Sentences to latent codes, and operations on codes (interpolation)."""

import numpy as np
import torch

from sentvae.data import collate, corpus_from_texts, make_batches
from sentvae.noise import SeededNoise


@torch.inference_mode()
def encode_texts(model, tokenizer, texts: list[str], max_len: int = 100, device="cpu",
                 max_tokens: int = 8000, stats: dict | None = None):
    """-> the posterior q(z|x) of each text (a posterior object of batch N, float32), in input order.

    stats, if given, accumulates "truncated" (sentences cut to max_len) and "unk" counts."""
    corpus = corpus_from_texts(texts, tokenizer, max_len)
    if stats is not None:
        stats["truncated"] = stats.get("truncated", 0) + corpus.n_truncated
        stats["unk"] = stats.get("unk", 0) + corpus.n_unk
    parts, order = [], []
    for idx in make_batches(corpus.lengths, max_tokens, shuffle=False):
        batch = collate(corpus, idx).to(device)
        parts.append(model.encode(batch.tokens[:, 1:], batch.lengths).to(dtype=torch.float32))
        order.append(idx)
    where = torch.as_tensor(np.argsort(np.concatenate(order)), device=device)
    return type(parts[0]).cat(parts).index(where)


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """a, b (nz,), t (S,) in [0, 1] -> (S, nz)."""
    t = t.unsqueeze(1)
    return (1 - t) * a + t * b


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation: keeps the norm typical of N(0, I) samples along the path."""
    cos = torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if omega.abs() < 1e-4:
        return lerp(a, b, t)
    t = t.unsqueeze(1)
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


def codes(model, tokenizer, texts: list[str], posterior: str = "mean", seed: int = 0, device="cpu",
          stats: dict | None = None, first: int = 0):
    """One latent code per text: the posterior mean, or a sample z ~ q(z|x). A sample is drawn as
    evaluation draws it, seeded by (seed, the text's position): it does not depend on how many
    texts are encoded together. first: the position of texts[0] in a longer stream."""
    q = encode_texts(model, tokenizer, texts, device=device, stats=stats)
    if posterior == "mean":
        return q.mean()
    z, _ = q.rsample(SeededNoise(seed, np.arange(first, first + len(texts)), 0, 1, device))
    return z[:, 0]


def corpus_bleu(hypotheses: list[str], references: list[str]) -> dict:
    """sacrebleu corpus BLEU; its Python API quietly scores the shorter of two unequal
    lists, so the lengths are checked here."""
    import logging

    import sacrebleu

    # it warns about space-tokenized text, which ours is on purpose; keep stderr clean
    logging.getLogger("sacrebleu").setLevel(logging.ERROR)
    if len(hypotheses) != len(references):
        raise ValueError(f"BLEU needs as many hypotheses ({len(hypotheses)}) as references ({len(references)})")
    metric = sacrebleu.BLEU()
    score = metric.corpus_score(hypotheses, [references])
    return {"bleu": score.score, "signature": str(metric.get_signature())}
