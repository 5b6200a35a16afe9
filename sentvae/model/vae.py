"""The sentence VAE around any encoder/decoder pair.

It owns what both architectures share: the token embedding (shared by encoder, decoder
and, tied, the output layer), the posterior head q(z|x) = N(mu, diag(exp(logvar))),
the reparameterised sample and the output layer. The encoder maps embedded tokens to a
summary vector; the decoder maps embedded inputs plus z to hidden states, and can run
one step at a time from a state (for decoding), so nothing outside build_model needs
to know which architecture it holds.

Token layout: x = [BOS, w1..wn, EOS, PAD..] (B, T+1). The encoder reads x[:, 1:]
(words and EOS); the decoder reads x[:, :-1] and predicts x[:, 1:].
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from sentvae.config import ModelConfig
from sentvae.errors import SentvaeError
from sentvae.tokenizer import EOS, PAD


class SentenceVAE(nn.Module):
    def __init__(self, cfg: ModelConfig, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.cfg = cfg
        self.emb = nn.Embedding(cfg.vocab_size, cfg.emb_dim, padding_idx=PAD)
        self.encoder = encoder              # None for the LM baseline (cfg.no_latent)
        self.decoder = decoder
        self.to_posterior = nn.Linear(encoder.out_dim, 2 * cfg.latent) if encoder is not None else None
        self.drop = nn.Dropout(cfg.dropout)     # decoder input embeddings and outputs
        self.enc_drop = nn.Dropout(cfg.dropout if cfg.enc_dropout is None else cfg.enc_dropout)
        H, E = decoder.out_dim, cfg.emb_dim
        if cfg.tie_weights:
            # tied output: logits = proj(h) @ emb.T + b; a projection only when sizes differ
            self.proj = nn.Linear(H, E) if H != E else nn.Identity()
            self.out_bias = nn.Parameter(torch.zeros(cfg.vocab_size))
        else:
            self.out = nn.Linear(H, cfg.vocab_size)
        # bag-of-words head: predicts the sentence's words from z alone (Zhao et al. 2017)
        self.bow = nn.Linear(cfg.latent, cfg.vocab_size) if cfg.bow else None
        nn.init.normal_(self.emb.weight, std=E ** -0.5)
        with torch.no_grad():
            self.emb.weight[PAD].zero_()

    # --- q(z|x)
    def encode(self, tokens: torch.Tensor, lengths: torch.Tensor):
        """tokens (B, T) words + EOS, lengths (B,) -> mu, logvar (B, nz).

        The LM baseline's posterior is the prior N(0, I): KL 0, and since its decoder never
        sees z, importance weights are exactly p(x) and IW-NLL is the exact NLL."""
        if self.encoder is None:
            zeros = self.emb.weight.new_zeros(tokens.size(0), self.cfg.latent)
            return zeros, zeros
        h = self.encoder(self.enc_drop(self.emb(tokens)), lengths)     # (B, S)
        mu, logvar = self.to_posterior(h).chunk(2, dim=-1)
        return mu, logvar

    @staticmethod
    def reparameterize(mu, logvar, generator=None):
        eps = torch.randn(mu.shape, device=mu.device, dtype=mu.dtype, generator=generator)
        return mu + eps * torch.exp(0.5 * logvar)

    # --- p(x|z)
    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        hidden = self.drop(hidden)
        if self.cfg.tie_weights:
            return F.linear(self.proj(hidden), self.emb.weight, self.out_bias)
        return self.out(hidden)

    def log_likelihood(self, z: torch.Tensor, inp: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        """Sum over target tokens (EOS included, PAD excluded) of log p(tgt | inp, z): (B,)."""
        hidden = self.decoder(self.drop(self.emb(inp)), self._condition(z))   # (B, T, H)
        logits = self.logits(hidden)                                 # (B, T, V)
        nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), tgt.reshape(-1),
                              ignore_index=PAD, reduction="none")
        return -nll.view(tgt.shape).sum(dim=1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, dec_inp: torch.Tensor | None = None,
                generator=None):
        """x (B, T+1) -> (log p(x|z) (B,), mu, logvar, bag-of-words NLL (B,)) with z ~ q(z|x).

        dec_inp replaces x[:, :-1] as decoder input (word dropout is applied by the caller).
        The bag-of-words NLL is zeros without a bow head. Everything a training step needs
        comes out of forward(), so DistributedDataParallel sees every parameter used.
        """
        mu, logvar = self.encode(x[:, 1:], lengths)
        z = self.reparameterize(mu, logvar, generator)
        inp = x[:, :-1] if dec_inp is None else dec_inp
        return self.log_likelihood(z, inp, x[:, 1:]), mu, logvar, self.bow_nll(z, x[:, 1:])

    def bow_nll(self, z: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        """-sum over the sentence's pieces (EOS and PAD excluded) of log softmax(W z): (B,)."""
        if self.bow is None:
            return z.new_zeros(z.size(0))
        logp = F.log_softmax(self.bow(z).float(), dim=-1)              # (B, V)
        words = (tgt != PAD) & (tgt != EOS)                             # (B, T)
        return -(logp.gather(1, tgt) * words).sum(dim=1)

    def reset_decoder(self) -> list[nn.Parameter]:
        """Re-initialise the decoder and output layer (the embedding, shared with the encoder,
        stays): Li et al. 2019's reset after autoencoder pretraining. -> the parameters reset."""
        parts = [self.decoder] + ([self.proj] if self.cfg.tie_weights else [self.out])
        for module in parts:
            for m in module.modules():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
        params = [p for module in parts for p in module.parameters()]
        if self.cfg.tie_weights:
            with torch.no_grad():
                self.out_bias.zero_()
            params.append(self.out_bias)
        return params

    def start_decoder_from(self, state: dict) -> None:
        """Li et al. 2019 pretrain the encoder; this starts the other half from a trained model's
        (e.g. a converged --no-latent LM's) state dict: its embedding, decoder and output layer,
        with the decoder's weights on z zeroed, so the VAE starts out predicting exactly what the
        LM predicts and leaves it only as far as using z pays. The encoder keeps its fresh weights.
        Weights that do not fit this model: one line naming --init-decoder."""
        fresh = ("encoder.", "to_posterior.", "bow.")
        try:
            missing, unexpected = self.load_state_dict(
                {k: v for k, v in state.items() if not k.startswith(fresh)}, strict=False)
        except RuntimeError as e:        # a tensor of another shape
            raise SentvaeError(f"--init-decoder: the weights do not fit this model "
                               f"({str(e).splitlines()[-1].strip()[:120]})") from None
        missing = [k for k in missing if not k.startswith(fresh)]
        if missing or unexpected:
            raise SentvaeError(f"--init-decoder: the weights do not fit this model "
                               f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
        self.decoder.silence_latent()

    def start_from(self, state: dict) -> None:
        """--init-from: every weight from a trained model of this very shape (a fine-tune)."""
        try:
            self.load_state_dict(state)
        except RuntimeError as e:        # missing, unexpected or another shape
            raise SentvaeError(f"--init-from: the weights do not fit this model "
                               f"({str(e).splitlines()[-1].strip()[:120]})") from None

    # --- incremental decoding
    def init_state(self, z: torch.Tensor):
        return self.decoder.init_state(self._condition(z))

    def _condition(self, z: torch.Tensor) -> torch.Tensor:
        """What the decoder is given: z, or zeros for the LM baseline."""
        return torch.zeros_like(z) if self.encoder is None else z

    def step(self, tokens: torch.Tensor, state):
        """tokens (B,) -> next-token logits (B, V) and the new state."""
        hidden, state = self.decoder.step(self.emb(tokens).unsqueeze(1), state)  # (B, 1, H)
        return self.logits(hidden[:, 0]), state

    def reorder_state(self, state, index: torch.Tensor):
        """Select/reorder the batch rows of a decoding state (beam search)."""
        return self.decoder.reorder_state(state, index)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
