"""Dilated causal CNN decoder for the sentence VAE (Yang et al. 2017, ICML, arXiv:1702.08139).

Yang et al.'s point: an LSTM decoder sees the whole prefix and can model a sentence without z,
so the VAE collapses; a stack of dilated causal convolutions sees only a fixed window of
`receptive_field(dilations, kernel_size)` input tokens, and what lies outside that window it
can only get from z. The dilations are the knob: a small receptive field forces the decoder
to rely on z (more KL), a large one lets it act as a language model on its own.

z is concatenated to every input embedding, as Yang et al. (and sentvae's LSTM decoder) do;
a position-wise linear map (a 1x1 convolution) takes [emb; z] to the width `hidden`, then
one residual block per dilation. A block is a ByteNet-style bottleneck (Kalchbrenner et al.
2016; the unofficial re-implementation ryokamoi/dcnn_textvae uses the same, 1024 -> 512 -> 1024
channels): a 1x1 convolution down to `inner` channels, one causal dilated convolution of
width kernel_size, a 1x1 convolution back up, added to the block's input. Normalisation is
ours: LayerNorm at the block's entry, per position, because batch statistics (BatchNorm)
would mix padded and real positions in training and make incremental decoding differ from
the full forward.

Causality: each dilated convolution is padded on the left only, by (kernel_size - 1) *
dilation zeros, so position t sees inputs t - (kernel_size - 1) * dilation .. t and never a
later one; padding after a sentence's end therefore cannot change its outputs.

Incremental decoding keeps, per block, the last (kernel_size - 1) * dilation inputs of its
dilated convolution (the receptive-field buffer; zeros at the start, exactly the left
padding of the full forward), so one step costs one position of each convolution.
"""

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from sentvae.errors import SentvaeError


def receptive_field(dilations: Sequence[int], kernel_size: int = 3) -> int:
    """The span of inputs an output position depends on, itself included: the output at t
    sees inputs t - RF + 1 .. t (and z), none earlier. A span: dilations with gaps leave
    offsets inside it unseen ((1, 3) with kernel 2 sees offsets 0, 1, 3, 4)."""
    return 1 + (kernel_size - 1) * sum(dilations)


class DilatedBlock(nn.Module):
    """x + up(relu(conv_d(relu(down(LN(x)))))): a bottleneck residual block, causal.

    The dilated convolution is one matrix product over its k taps side by side (the inputs
    t, t - d, .., t - (k-1) d of output t), in (B, T, C) layout: no transposes, and the full
    forward and the one-position step share the same code (`_taps`)."""

    def __init__(self, hidden: int, inner: int, kernel_size: int, dilation: int, dropout: float):
        super().__init__()
        self.ln = nn.LayerNorm(hidden)
        self.down = nn.Linear(hidden, inner)                        # 1x1 convolution
        self.conv = nn.Linear(kernel_size * inner, inner)           # width-k dilated convolution
        self.up = nn.Linear(inner, hidden)                          # 1x1 convolution
        self.drop = nn.Dropout(dropout)
        self.inner, self.kernel_size, self.dilation = inner, kernel_size, dilation
        self.history = (kernel_size - 1) * dilation                 # past inputs the conv reads

    def _conv_input(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.down(self.ln(x)))                        # (B, T, H) -> (B, T, I)

    def _taps(self, u: torch.Tensor, T: int) -> torch.Tensor:
        """u (B, history + T, I), the conv inputs from `history` positions before the first
        output on -> (B, T, k I): output t's taps t, t - d, .., t - (k-1) d side by side."""
        h, d = self.history, self.dilation
        return torch.cat([u[:, h - j * d:h - j * d + T] for j in range(self.kernel_size)], dim=-1)

    def _residual(self, x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
        return x + self.drop(self.up(self.drop(F.relu(self.conv(taps)))))   # (B, T, H)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, H) -> (B, T, H)."""
        u = F.pad(self._conv_input(x), (0, 0, self.history, 0))    # zeros on the left only
        return self._residual(x, self._taps(u, x.size(1)))

    def step(self, x: torch.Tensor, buf: torch.Tensor):
        """x (B, 1, H), buf (B, history, I): this block's conv inputs at the last `history`
        positions -> (B, 1, H) and the buffer shifted by one."""
        window = torch.cat([buf, self._conv_input(x)], dim=1)     # (B, history + 1, I)
        return self._residual(x, self._taps(window, 1)), window[:, 1:]


class CNNDecoder(nn.Module):
    """A language model over a fixed window of the past, conditioned on z at every position.

    emb_dim, latent: sizes of the input embeddings and of z; hidden: the residual width
    (`out_dim`); inner: the width inside each block (default hidden // 2, ByteNet's ratio);
    one block per entry of `dilations`."""

    def __init__(self, emb_dim: int, latent: int, hidden: int, dilations: Sequence[int] = (1, 2, 4),
                 kernel_size: int = 3, dropout: float = 0.0, inner: int | None = None):
        super().__init__()
        dilations = tuple(int(d) for d in dilations)
        if not dilations or min(dilations) < 1:
            raise SentvaeError(f"--dilations: one or more integers >= 1, not {list(dilations)}")
        if kernel_size < 1:
            raise SentvaeError(f"--kernel-size: must be >= 1, not {kernel_size}")
        inner = max(1, hidden // 2) if inner is None else inner
        self.emb_dim, self.dilations, self.kernel_size = emb_dim, dilations, kernel_size
        self.inp = nn.Linear(emb_dim + latent, hidden)              # [emb; z] -> width H, per position
        self.blocks = nn.ModuleList(DilatedBlock(hidden, inner, kernel_size, d, dropout) for d in dilations)
        self.ln = nn.LayerNorm(hidden)
        self.out_dim = hidden
        self.receptive_field = receptive_field(dilations, kernel_size)

    def _inputs(self, emb: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        zs = z.unsqueeze(1).expand(-1, emb.size(1), -1)             # (B, T, nz)
        return self.inp(torch.cat([emb, zs], dim=-1))               # (B, T, H)

    def forward(self, emb: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """emb (B, T, E), z (B, nz) -> hidden (B, T, H): position t sees inputs
        t - receptive_field + 1 .. t and z, never a later input."""
        x = self._inputs(emb, z)
        for block in self.blocks:
            x = block(x)
        return self.ln(x)

    def silence_latent(self) -> None:
        """Zero the weights that multiply z (not the biases): the decoder then predicts as it
        did with z = 0 -- a --no-latent LM's decoder, exactly -- whatever z is."""
        with torch.no_grad():
            self.inp.weight[:, self.emb_dim:].zero_()              # z's input columns

    def init_state(self, z: torch.Tensor):
        """Empty receptive-field buffers: zeros, as the left padding of the full forward."""
        bufs = [z.new_zeros(z.size(0), b.history, b.inner) for b in self.blocks]   # (B, history, I)
        return {"bufs": bufs, "z": z}

    def step(self, emb: torch.Tensor, state):
        """emb (B, 1, E) -> hidden (B, 1, H) and the next state: O(blocks) work, not O(prefix)."""
        x = self._inputs(emb, state["z"])                           # (B, 1, H)
        bufs = []
        for block, buf in zip(self.blocks, state["bufs"]):
            x, buf = block.step(x, buf)
            bufs.append(buf)
        return self.ln(x), {"bufs": bufs, "z": state["z"]}

    def reorder_state(self, state, index: torch.Tensor):
        return {"bufs": [b[index] for b in state["bufs"]], "z": state["z"][index]}

    def flops_per_token(self) -> int:
        """Multiply-adds x 2 of one position's forward pass (biases, norms, ReLUs left out)."""
        macs = self.inp.in_features * self.inp.out_features
        for b in self.blocks:
            macs += 2 * b.down.in_features * b.inner + b.conv.in_features * b.inner
        return 2 * macs
