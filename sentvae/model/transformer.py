"""Transformer encoder and decoder for the sentence VAE.

Encoder: pre-LN Transformer over the sentence; its summary is the **mean over non-pad
positions** of the final states. Mean pooling over a learned summary token because it
uses every position's state with no extra parameter or position to learn, and it is the
same for any length; with only a few layers a summary token would have to learn to
gather everything through attention alone.

Decoder: causal pre-LN Transformer conditioned on z twice (the "embedding + memory"
injection of Transformer VAEs): a projection of z is a prefix slot at position 0 that
every position can attend to, and another projection of z is added to every input
embedding. Attention is `F.scaled_dot_product_attention`. Decoding one token at a time
keeps a key/value cache per layer, so a length-T sentence costs T decoder steps.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from sentvae.config import ModelConfig


def positions(start: int, length: int, d: int, device) -> torch.Tensor:
    """Sinusoidal position encodings for positions start..start+length-1: (length, d)."""
    pos = torch.arange(start, start + length, device=device, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, d, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / d))
    pe = torch.zeros(length, d, device=device)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)
    return pe


class Block(nn.Module):
    def __init__(self, d: int, heads: int, ff: int, dropout: float):
        super().__init__()
        self.heads, self.p = heads, dropout
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, ff), nn.GELU(), nn.Linear(ff, d))
        self.drop = nn.Dropout(dropout)

    def forward(self, x, mask=None, causal=False, cache=None):
        """x (B, T, D) -> (B, T, D) and this layer's keys/values (B, h, T_past + T, D/h)."""
        B, T, D = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(B, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        if cache is not None:
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal,
                                           dropout_p=self.p if self.training else 0.0)
        x = x + self.drop(self.proj(y.transpose(1, 2).reshape(B, T, D)))
        x = x + self.drop(self.ff(self.ln2(x)))
        return x, (k, v)


class TransformerEncoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.emb_dim
        self.scale = math.sqrt(d)
        self.blocks = nn.ModuleList(Block(d, cfg.heads, cfg.ff, cfg.dropout) for _ in range(cfg.enc_layers))
        self.ln = nn.LayerNorm(d)
        self.out_dim = d

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor, embed) -> torch.Tensor:
        """tokens (B, T), lengths (B,), embed: ids -> (B, T, D) -> summary (B, D)."""
        emb = embed(tokens)
        B, T, D = emb.shape
        keep = torch.arange(T, device=emb.device).unsqueeze(0) < lengths.unsqueeze(1)   # (B, T)
        x = emb * self.scale + positions(0, T, D, emb.device)
        mask = keep[:, None, None, :]                                   # (B, 1, 1, T): keys to attend
        for block in self.blocks:
            x, _ = block(x, mask=mask)
        x = self.ln(x) * keep.unsqueeze(-1)
        return x.sum(dim=1) / lengths.unsqueeze(1).to(x.dtype)         # mean over real positions


class TransformerDecoder(nn.Module):
    def __init__(self, cfg: ModelConfig, cond_dim: int | None = None):
        """cond_dim: the size of the conditioning it reads (default z's; a labelled model's is larger)."""
        super().__init__()
        d = cfg.emb_dim
        self.d, self.scale = d, math.sqrt(d)
        self.z_memory = nn.Linear(cond_dim or cfg.latent, d)      # the prefix slot at position 0
        self.z_input = nn.Linear(cond_dim or cfg.latent, d)       # added to every input embedding
        self.blocks = nn.ModuleList(Block(d, cfg.heads, cfg.ff, cfg.dropout) for _ in range(cfg.dec_layers))
        self.ln = nn.LayerNorm(d)
        self.out_dim = d

    def _inputs(self, emb, z, start):
        return emb * self.scale + self.z_input(z).unsqueeze(1) + positions(start, emb.size(1), self.d, emb.device)

    def forward(self, emb: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """emb (B, T, E), z (B, nz) -> hidden (B, T, D): position t sees the prefix and inputs <= t."""
        prefix = self.z_memory(z).unsqueeze(1) + positions(0, 1, self.d, emb.device)
        x = torch.cat([prefix, self._inputs(emb, z, 1)], dim=1)        # (B, 1 + T, D)
        for block in self.blocks:
            x, _ = block(x, causal=True)
        return self.ln(x[:, 1:])

    def silence_latent(self) -> None:
        """Zero the weights that multiply z (not the biases): the decoder then predicts as it
        did with z = 0 -- a --no-latent LM's decoder, exactly -- whatever z is."""
        with torch.no_grad():
            self.z_memory.weight.zero_()
            self.z_input.weight.zero_()

    def init_state(self, z: torch.Tensor):
        x = self.z_memory(z).unsqueeze(1) + positions(0, 1, self.d, z.device)
        caches = []
        for block in self.blocks:
            x, kv = block(x)
            caches.append(kv)
        return {"caches": caches, "pos": 1, "z": z}

    def step(self, emb: torch.Tensor, state):
        x = self._inputs(emb, state["z"], state["pos"])                # (B, 1, D)
        caches = []
        for block, cache in zip(self.blocks, state["caches"]):
            x, kv = block(x, cache=cache)                               # one query attends to all past
            caches.append(kv)
        return self.ln(x), {"caches": caches, "pos": state["pos"] + 1, "z": state["z"]}

    def reorder_state(self, state, index: torch.Tensor):
        return {"caches": [(k[index], v[index]) for k, v in state["caches"]],
                "pos": state["pos"], "z": state["z"][index]}
