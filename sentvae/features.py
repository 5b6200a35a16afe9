"""Sentence features for probing (sentvae/probe.py): what a representation is compared with.

- the posterior mean E_q[z|x] of a VAE: Model.encode(texts).mean() (sentvae/latent.py);
- the decoder's state after a sentence's last word, run over the sentence (final_states): for a
  --no-latent LM, the usual "final hidden state of a language model"; for a VAE, its decoder's
  state conditioned on the posterior mean. It is the same forward pass training runs
  (SentenceVAE.hidden_states), read at one position, not a second implementation;
- bag-of-pieces counts of the same tokenisation (bag_of_pieces): the baseline any representation
  has to beat.
"""

import numpy as np
import torch

from sentvae.corpus import collate, corpus_from_texts, make_batches


@torch.inference_mode()
def final_states(model, tokenizer, texts: list[str], max_len: int = 100, device="cpu",
                 max_tokens: int = 8000, stats: dict | None = None) -> torch.Tensor:
    """-> (N, H) float32: each text's decoder state after its last word, in input order. The decoder
    is conditioned on the posterior mean (a --no-latent model's is the point 0). A sentence's state
    does not depend on the batch it is read in (the decoders are causal; padding comes after).

    stats, if given, accumulates "truncated" (sentences cut to max_len) and "unk" counts."""
    corpus = corpus_from_texts(texts, tokenizer, max_len)
    if stats is not None:
        stats["truncated"] = stats.get("truncated", 0) + corpus.n_truncated
        stats["unk"] = stats.get("unk", 0) + corpus.n_unk
    parts, order = [], []
    for idx in make_batches(corpus.lengths, max_tokens, shuffle=False):
        batch = collate(corpus, idx).to(device)
        z = model.encode(batch.tokens[:, 1:], batch.lengths).mean()             # (B, nz)
        parts.append(model.final_hidden(z, batch.tokens, batch.lengths).float())  # (B, H)
        order.append(idx)
    where = torch.as_tensor(np.argsort(np.concatenate(order)), device=device)
    return torch.cat(parts)[where]


def bag_of_pieces(tokenizer, texts: list[str]):
    """-> a scipy CSR matrix (N, vocabulary) of piece counts: the tokenizer's pieces of each text,
    the very ids the model reads (special ids never occur in them)."""
    from scipy.sparse import csr_matrix

    ids = tokenizer.encode(list(texts))
    lengths = np.array([len(x) for x in ids], dtype=np.int64)
    cols = np.fromiter((t for x in ids for t in x), dtype=np.int64, count=int(lengths.sum()))
    rows = np.repeat(np.arange(len(ids)), lengths)
    counts = csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(len(ids), tokenizer.vocab_size))
    counts.sum_duplicates()               # a piece seen twice in a sentence counts 2
    return counts
