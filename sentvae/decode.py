"""Batched decoding from latent codes. Every sequence of the batch advances together
through the model's incremental state; decoding stops when all have produced EOS."""

import torch

from sentvae.tokenizer import BOS, EOS, PAD


@torch.inference_mode()
def greedy(model, z: torch.Tensor, max_len: int = 60) -> list[list[int]]:
    """z (B, nz) -> the argmax continuation of each code, without BOS/EOS."""
    B = z.size(0)
    state = model.init_state(z)
    tok = torch.full((B,), BOS, dtype=torch.long, device=z.device)
    out = torch.full((B, max_len), PAD, dtype=torch.long, device=z.device)
    done = torch.zeros(B, dtype=torch.bool, device=z.device)
    for t in range(max_len):
        logits, state = model.step(tok, state)       # (B, V)
        tok = logits.argmax(dim=-1).masked_fill(done, PAD)
        out[:, t] = tok
        done |= tok == EOS
        if bool(done.all()):
            break
    return [_strip(row) for row in out.tolist()]


def _strip(ids: list[int]) -> list[int]:
    if EOS in ids:
        ids = ids[:ids.index(EOS)]
    return [i for i in ids if i != PAD]
