"""LSTM encoder and decoder for the sentence VAE (Bowman et al. 2016)."""

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence

from sentvae.config import ModelConfig


class LSTMEncoder(nn.Module):
    """Words + EOS -> final hidden state of the top layer (both directions)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.lstm = nn.LSTM(cfg.emb_dim, cfg.hidden, cfg.enc_layers, batch_first=True,
                            bidirectional=cfg.bidirectional,
                            dropout=cfg.dropout if cfg.enc_layers > 1 else 0.0)
        self.dirs = 2 if cfg.bidirectional else 1
        self.out_dim = cfg.hidden * self.dirs

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor, embed) -> torch.Tensor:
        """tokens (B, T), lengths (B,), embed: ids -> (B, T, E) -> summary (B, dirs * H)."""
        emb = embed(tokens)
        # packing makes the final state that of each sentence's last real token, not of padding
        packed = pack_padded_sequence(emb, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, (h, _) = self.lstm(packed)                       # h: (layers * dirs, B, H)
        top = h[-self.dirs:]                                # (dirs, B, H)
        return top.transpose(0, 1).reshape(emb.size(0), -1)  # (B, dirs * H)


class LSTMDecoder(nn.Module):
    """An LSTM language model conditioned on z: z sets the initial state and is
    concatenated to every input embedding, so the decoder cannot forget it."""

    def __init__(self, cfg: ModelConfig, cond_dim: int | None = None):
        """cond_dim: the size of the conditioning it reads (default z's; a labelled model's is larger)."""
        super().__init__()
        self.layers, self.hidden = cfg.dec_layers, cfg.hidden
        cond = cond_dim or cfg.latent
        self.z_to_state = nn.Linear(cond, 2 * cfg.dec_layers * cfg.hidden)
        self.lstm = nn.LSTM(cfg.emb_dim + cond, cfg.hidden, cfg.dec_layers, batch_first=True,
                            dropout=cfg.dropout if cfg.dec_layers > 1 else 0.0)
        self.out_dim = cfg.hidden

    def _initial(self, z: torch.Tensor):
        B = z.size(0)
        hc = self.z_to_state(z).view(B, 2, self.layers, self.hidden).permute(1, 2, 0, 3)
        return torch.tanh(hc[0]).contiguous(), hc[1].contiguous()   # (layers, B, H) each

    def forward(self, emb: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """emb (B, T, E), z (B, nz) -> hidden (B, T, H). Padding sits after each sentence's
        end, so it cannot change earlier outputs; the loss masks it."""
        zs = z.unsqueeze(1).expand(-1, emb.size(1), -1)       # (B, T, nz)
        out, _ = self.lstm(torch.cat([emb, zs], dim=-1), self._initial(z))
        return out

    def silence_latent(self) -> None:
        """Zero the weights that multiply z (not the biases): the decoder then predicts as it
        did with z = 0 -- a --no-latent LM's decoder, exactly -- whatever z is."""
        with torch.no_grad():
            self.z_to_state.weight.zero_()
            self.lstm.weight_ih_l0[:, -self.z_to_state.in_features:].zero_()   # z's input columns

    def init_state(self, z: torch.Tensor):
        return (*self._initial(z), z)

    def step(self, emb: torch.Tensor, state):
        h, c, z = state
        out, (h, c) = self.lstm(torch.cat([emb, z.unsqueeze(1)], dim=-1), (h, c))
        return out, (h, c, z)

    def reorder_state(self, state, index: torch.Tensor):
        h, c, z = state
        return h[:, index], c[:, index], z[index]
