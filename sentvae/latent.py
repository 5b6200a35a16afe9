"""Sentences to latent codes, and operations on codes (interpolation)."""

import numpy as np
import torch

from sentvae.corpus import collate, corpus_from_texts, make_batches
from sentvae.noise import SeededNoise


@torch.inference_mode()
def encode_texts(model, tokenizer, texts: list[str], max_len: int = 100, device="cpu",
                 max_tokens: int = 8000, stats: dict | None = None):
    """-> the posterior q(z|x) of each text (a posterior object of batch N, float32), in input order.

    stats, if given, accumulates "truncated" (sentences cut to max_len) and "unk" counts."""
    return infer_texts(model, tokenizer, texts, max_len, device, max_tokens, stats)[0]


@torch.inference_mode()
def infer_texts(model, tokenizer, texts: list[str], max_len: int = 100, device="cpu",
                max_tokens: int = 8000, stats: dict | None = None):
    """-> (q(z|x) of each text, a labelled model's log q(c_a|x): A tensors (N, V_a), or None), in input order."""
    corpus = corpus_from_texts(texts, tokenizer, max_len)
    if stats is not None:
        stats["truncated"] = stats.get("truncated", 0) + corpus.n_truncated
        stats["unk"] = stats.get("unk", 0) + corpus.n_unk
    parts, labels, order = [], [], []
    for idx in make_batches(corpus.lengths, max_tokens, shuffle=False):
        batch = collate(corpus, idx).to(device)
        q, log_qc = model.infer(batch.tokens[:, 1:], batch.lengths)
        parts.append(q.to(dtype=torch.float32))
        labels.append(log_qc)
        order.append(idx)
    where = torch.as_tensor(np.argsort(np.concatenate(order)), device=device)
    log_qc = None
    if labels[0] is not None:
        log_qc = [torch.cat([lp[a] for lp in labels])[where] for a in range(len(labels[0]))]
    return type(parts[0]).cat(parts).index(where), log_qc


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
    return code_of(encode_texts(model, tokenizer, texts, device=device, stats=stats), posterior, seed, first, device)


def code_of(q, posterior: str = "mean", seed: int = 0, first: int = 0, device="cpu"):
    """A posterior's codes (N, nz): its mean, or one sample per sentence seeded by (seed, first + i)."""
    if posterior == "mean":
        return q.mean()
    n = q.batch                               # the sentences (an IAF's mean() would cost 256 samples)
    z, _ = q.rsample(SeededNoise(seed, np.arange(first, first + n), 0, 1, device))
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
