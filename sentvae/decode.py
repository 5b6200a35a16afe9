"""Batched decoding from latent codes: greedy, ancestral sampling (temperature, top-k,
top-p) and beam search with length normalisation.

Every strategy advances all sequences of the batch together through the model's
incremental state (`init_state`, `step`, `reorder_state`): one decoder step per output
token, never a re-encoding of the prefix. Decoding stops when every sequence has ended
(EOS) or after `max_len` pieces. Output: one list of piece ids per code, without BOS/EOS.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F

from sentvae.command_config import DecodeConfig
from sentvae.corpus import collate, corpus_from_ids
from sentvae.labelled import index_labels
from sentvae.tokenizer import BOS, EOS, PAD

NEVER = [PAD, BOS]


def decode(model, z: torch.Tensor, cfg: DecodeConfig, c=None) -> list[list[int]]:
    """z (B, nz) -> piece ids per code, as cfg says (DecodeConfig, declared and checked in
    sentvae/command_config.py; a filter not given is off). c: a labelled model's labels (value
    indices (B, A), or A probability tensors (B, V_a))."""
    if cfg.beam > 1:
        return beam_search(model, z, cfg.beam, cfg.max_len, cfg.length_penalty, c)[0]
    if cfg.sampling:
        gen = torch.Generator(device=z.device).manual_seed(cfg.seed)
        return sample(model, z, cfg.max_len, 1.0 if cfg.temperature is None else cfg.temperature,
                      cfg.top_k or 0, 1.0 if cfg.top_p is None else cfg.top_p, gen, c)
    return greedy(model, z, cfg.max_len, c)


def greedy(model, z: torch.Tensor, max_len: int = 60, c=None) -> list[list[int]]:
    """z (B, nz) (and labels c) -> the argmax continuation of each code."""
    return _run(model, z, max_len, lambda logits: logits.argmax(dim=-1), c)


def sample(model, z: torch.Tensor, max_len: int = 60, temperature: float = 1.0, top_k: int = 0,
           top_p: float = 1.0, generator=None, c=None) -> list[list[int]]:
    """Ancestral sampling from p(x|z, c) with temperature, then top-k and nucleus (top-p) filters."""
    def pick(logits):
        probs = F.softmax(filter_logits(logits / temperature, top_k, top_p), dim=-1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(1)
    return _run(model, z, max_len, pick, c)


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Keep the k most likely pieces and the smallest set whose probability reaches p."""
    if top_k > 0 and top_k < logits.size(-1):
        kth = logits.topk(top_k, dim=-1).values[..., -1:]                  # (B, 1)
        logits = logits.masked_fill(logits < kth, -math.inf)
    if top_p < 1.0:
        logits = _nucleus(logits, top_p)
    return logits


def _nucleus(logits: torch.Tensor, top_p: float, first: int = 256) -> torch.Tensor:
    """Nucleus filter. Sorting a whole vocabulary per step is the cost of top-p, so look
    at the `first` most likely pieces and sort fully only the rows whose nucleus is larger."""
    k = min(first, logits.size(-1))
    vals, idx = logits.topk(k, dim=-1)                                     # sorted, (B, k)
    p = torch.exp(vals - torch.logsumexp(logits, dim=-1, keepdim=True))
    before = p.cumsum(dim=-1) - p           # mass of the pieces ranked above each one
    keep = before < top_p
    keep[:, 0] = True                       # the top piece always stays (a top_p that is 0 in float32 too)
    out = torch.full_like(logits, -math.inf).scatter_(-1, idx, vals.masked_fill(~keep, -math.inf))
    wide = (before[:, -1] + p[:, -1]) < top_p   # nucleus not within the first k
    if k < logits.size(-1) and bool(wide.any()):
        rows = wide.nonzero().squeeze(1)
        out[rows] = _nucleus(logits[rows], top_p, logits.size(-1))
    return out


@torch.inference_mode()
def _run(model, z, max_len, pick, c=None) -> list[list[int]]:
    B = z.size(0)
    state = model.init_state(z, c)
    tok = torch.full((B,), BOS, dtype=torch.long, device=z.device)
    out = torch.full((B, max_len), PAD, dtype=torch.long, device=z.device)
    done = torch.zeros(B, dtype=torch.bool, device=z.device)
    for t in range(max_len):
        logits, state = model.step(tok, state)       # (B, V)
        logits = logits.float()
        logits[:, NEVER] = -math.inf                 # PAD and BOS are never outputs
        tok = pick(logits).masked_fill(done, PAD)
        out[:, t] = tok
        done |= tok == EOS
        if t % 8 == 7 and bool(done.all()):          # a host sync every 8 steps, not every step
            break
    return [strip(row) for row in out.tolist()]


@torch.inference_mode()
def beam_search(model, z: torch.Tensor, beam: int = 5, max_len: int = 60, length_penalty: float = 1.0, c=None):
    """Batched beam search. -> (best piece ids per code, their total log-probabilities).

    Hypotheses are ranked by log p / length ** length_penalty, length counting EOS. A
    finished hypothesis stays in its beam with its score frozen (it can only continue with
    PAD at no cost), so finished and live hypotheses compete on equal terms.
    """
    B, V = z.size(0), None
    copies = torch.arange(B, device=z.device).repeat_interleave(beam)
    state = model.init_state(z.repeat_interleave(beam, dim=0), index_labels(c, copies))   # (B*beam, ...)
    tok = torch.full((B * beam,), BOS, dtype=torch.long, device=z.device)
    score = torch.full((B, beam), -math.inf, device=z.device)
    score[:, 0] = 0.0                                                  # one live start per code
    length = torch.zeros(B, beam, device=z.device)
    done = torch.zeros(B, beam, dtype=torch.bool, device=z.device)
    hist = torch.full((B, beam, max_len), PAD, dtype=torch.long, device=z.device)
    for t in range(max_len):
        logits, state = model.step(tok, state)
        logp = F.log_softmax(logits.float(), dim=-1)                   # (B*beam, V)
        logp[:, NEVER] = -math.inf     # after the softmax: scores stay true log-probabilities
        V = logp.size(-1)
        logp = logp.view(B, beam, V)
        # a finished hypothesis may only continue with PAD, at no cost (in place: no copies)
        pad_col = torch.where(done, 0.0, logp[..., PAD])
        logp.masked_fill_(done.unsqueeze(-1), -math.inf)
        logp[..., PAD] = pad_col
        cand = logp.add_(score.unsqueeze(-1))                          # (B, beam, V)
        new_len = length + (~done).float()                             # (B, beam)
        norm = new_len.clamp_min(1.0) ** length_penalty
        top = (cand / norm.unsqueeze(-1)).view(B, -1).topk(beam, dim=-1).indices   # (B, beam)
        src, tok2 = top // V, top % V
        score = cand.view(B, -1).gather(1, top)
        length = new_len.gather(1, src)
        was_done = done.gather(1, src)
        done = was_done | (tok2 == EOS)
        hist = hist.gather(1, src.unsqueeze(-1).expand(-1, -1, max_len)).clone()
        hist[:, :, t] = tok2
        flat_src = (src + torch.arange(B, device=z.device).unsqueeze(1) * beam).view(-1)
        state = model.reorder_state(state, flat_src)
        tok = tok2.view(-1)
        if t % 8 == 7 and bool(done.all()):
            break
    final = score / length.clamp_min(1.0) ** length_penalty
    best = final.argmax(dim=1)                                         # (B,)
    rows = hist[torch.arange(B, device=z.device), best].tolist()
    return [strip(r) for r in rows], score.gather(1, best.unsqueeze(1)).squeeze(1).tolist()


def sequence_logprob(model, z: torch.Tensor, ids: list[list[int]], c=None) -> torch.Tensor:
    """Total log p(ids + EOS | z, c) for each code: how decoders' outputs are compared."""
    x = collate(corpus_from_ids(ids), np.arange(len(ids))).tokens
    with torch.inference_mode():
        return model.log_likelihood(z, x[:, :-1].to(z.device), x[:, 1:].to(z.device), c)


def strip(ids: list[int]) -> list[int]:
    if EOS in ids:
        ids = ids[:ids.index(EOS)]
    return [i for i in ids if i != PAD]
