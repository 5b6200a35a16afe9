"""The sentence VAE around any encoder/decoder pair, posterior family and prior.

It owns what every model shares: the token embedding (shared by encoder, decoder and, tied, the
output layer), the posterior head (encoder summary -> a posterior object, sentvae/posteriors.py),
the prior (sentvae/priors.py, a module: it may learn), the one place where the decoder's
conditioning is built from a code and, for a labelled model, its labels (`condition`), q(c|x)'s
head beside the posterior head (a labelled model's: sentvae/labelled.py), and the output layer. The encoder maps tokens to
a summary vector; the decoder maps embedded inputs plus the conditioning to hidden states, and can
run one step at a time from a state (for decoding), so nothing outside build_model needs to know
which architecture or latent family it holds. The LM baseline is the same model with a point
latent at 0 (no encoder weights, no branch).

Token layout: x = [BOS, w1..wn, EOS, PAD..] (B, T+1). The encoder reads x[:, 1:] (words and
EOS); the decoder reads x[:, :-1] and predicts x[:, 1:].
"""

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from sentvae.config import ModelConfig
from sentvae.errors import SentvaeError
from sentvae.kl import KLTerm, kl_divergence
from sentvae.label_prior import LabelPrior
from sentvae.label_vocab import LabelVocab
from sentvae.labelled import label_terms, relaxed_terms
from sentvae.noise import StreamNoise
from sentvae.tokenizer import EOS, PAD


@dataclass
class Terms:
    """What one forward pass gives the objective, for B sentences and S samples of z each."""
    ll: torch.Tensor          # (B, S) log p(x|z_s), float32
    log_q: torch.Tensor       # (B, S) log q(z_s|x)
    log_p: torch.Tensor       # (B, S) log p(z_s)
    kl: KLTerm                # KL(q || p) of each sentence (analytic or estimated from the samples)
    bow: torch.Tensor         # (B,) bag-of-words NLL of z_1 (zeros without a bow head)
    posterior: object         # q(z|x) of the batch
    components: torch.Tensor | None = None   # (B, S, C) p(c|z_s) under a mixture prior, else None
    z: torch.Tensor | None = None            # (B, S, D) the codes decoded
    tokens: torch.Tensor | None = None       # (B,) target tokens per sentence (pieces + EOS)
    labels: object = None     # a labelled model's LabelTerms (sentvae/labelled.py): ll is then their
                              # expectation under q(c|x) for the labels a sentence lacks, else None


class Code(nn.Module):
    """The decoder's conditioning is the code z itself (an unlabelled model: no labels c to read)."""

    def forward(self, z: torch.Tensor, c=None) -> torch.Tensor:
        return z


class NoCode(nn.Module):
    """The LM baseline's conditioning: zeros whatever z is given (its latent is the point 0, but a
    code passed to decode() or log_likelihood() must not reach weights that never learned)."""

    def forward(self, z: torch.Tensor, c=None) -> torch.Tensor:
        return torch.zeros_like(z)


class NoEncoder(nn.Module):
    """The LM baseline's encoder: reads nothing, has no weights; its summary is empty."""

    out_dim = 0

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor, embed) -> torch.Tensor:
        return torch.zeros(tokens.size(0), 0, device=tokens.device)


class SentenceVAE(nn.Module):
    def __init__(self, cfg: ModelConfig, encoder: nn.Module, decoder: nn.Module, head, prior: nn.Module,
                 conditioner: nn.Module | None = None, classifier=None):
        """head: summary size -> the posterior head (a module made here, after the embedding, so
        that a model's initial weights do not depend on where its family was chosen).
        conditioner: (code, labels) -> the decoder's conditioning input (default: the code itself).
        classifier: summary size -> q(c|x)'s head, for a labelled model (sentvae/labelled.py)."""
        super().__init__()
        self.cfg = cfg
        self.emb = nn.Embedding(cfg.vocab_size, cfg.emb_dim, padding_idx=PAD)
        self.encoder = encoder
        self.decoder = decoder
        self.to_posterior = head(encoder.out_dim)      # encoder summary -> q(z|x)
        self.prior = prior
        self.conditioner = conditioner or Code()
        self.classifier = classifier(encoder.out_dim) if classifier is not None else None
        self.labels = LabelVocab.from_dict(cfg.labels) if cfg.labels is not None else None   # names of c's values
        self.label_prior = LabelPrior.from_config(cfg.labels, cfg.label_prior) if cfg.labels is not None else None  # p(c)
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
        """tokens (B, T) words + EOS, lengths (B,) -> the posterior q(z|x) of each sentence."""
        return self.to_posterior(self.encoder(tokens, lengths, self._embed_for_encoder))

    def infer(self, tokens: torch.Tensor, lengths: torch.Tensor):
        """-> (q(z|x), log q(c_a|x) per attribute: A tensors (B, V_a), or None for an unlabelled model),
        from one pass of the encoder."""
        summary = self.encoder(tokens, lengths, self._embed_for_encoder)
        return self.to_posterior(summary), None if self.classifier is None else self.classifier(summary)

    def _embed_for_encoder(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.enc_drop(self.emb(tokens))

    def condition(self, z: torch.Tensor, c=None) -> torch.Tensor:
        """The decoder's conditioning input built from a code z (B, nz) and, for a labelled model, the
        labels c (value indices (B, A), or A probability tensors (B, V_a)): the one place where it is."""
        return self.conditioner(z, c)

    # --- p(x|z)
    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        hidden = self.drop(hidden)
        if self.cfg.tie_weights:
            return F.linear(self.proj(hidden), self.emb.weight, self.out_bias)
        return self.out(hidden)

    def hidden_states(self, z: torch.Tensor, inp: torch.Tensor, c=None) -> torch.Tensor:
        """The decoder's top-layer states: z (B, nz), inp (B, T) -> (B, T, H); position t has read
        inp[:, :t+1] and predicts the next token. c: a labelled model's labels (see condition)."""
        return self.decoder(self.drop(self.emb(inp)), self.condition(z, c))

    def final_hidden(self, z: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Each sentence's decoder state after its last word (the state that predicts EOS): tokens
        (B, T+1) as a Batch holds them, lengths (B,) words + EOS -> (B, H). The decoders are causal,
        so the padding after a sentence cannot change it. A sentence representation for probing."""
        hidden = self.hidden_states(z, tokens[:, :-1])                       # (B, T, H)
        return hidden[torch.arange(tokens.size(0), device=tokens.device), lengths - 1]

    def log_likelihood(self, z: torch.Tensor, inp: torch.Tensor, tgt: torch.Tensor, c=None) -> torch.Tensor:
        """Sum over target tokens (EOS included, PAD excluded) of log p(tgt | inp, z, c): (B,)."""
        hidden = self.hidden_states(z, inp, c)                       # (B, T, H)
        logits = self.logits(hidden)                                 # (B, T, V)
        nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), tgt.reshape(-1),
                              ignore_index=PAD, reduction="none")
        return -nll.view(tgt.shape).sum(dim=1)

    def forward(self, batch, dec_inp: torch.Tensor | None = None, samples: int = 1, noise=None, draw=None,
                svi=None, relax=None) -> Terms:
        """A Batch (tokens x (B, T+1)) -> Terms of `samples` draws z ~ q(z|x) per sentence (from
        `noise`, by default the device's generator). draw(q, noise) -> (codes (B, S', D), log q (B, S')),
        if given, replaces q.rsample: an estimator's own codes (sentvae/estimators.py: every value
        of a categorical, a Gumbel-softmax sample). svi: a sentvae.svi.Refiner, whose refinement of
        the encoder's posterior the samples are then drawn from (semi-amortized inference).
        relax: (tau, straight-through) for a labelled model trained with --estimator gumbel: a sentence's
        missing labels as one Gumbel-softmax sample of q(c|x) (one decoder pass), not summed out.

        dec_inp replaces x[:, :-1] as decoder input (word dropout is applied by the caller). Every
        term an objective needs comes out of forward(), so DistributedDataParallel sees every
        parameter used (the prior's too).
        """
        x = batch.tokens
        B = x.size(0)
        q, log_qc = self.infer(x[:, 1:], batch.lengths)
        inp = x[:, :-1] if dec_inp is None else dec_inp
        tgt = x[:, 1:]
        if svi is not None:
            q = svi.refine(self, q, inp, tgt)
        noise = noise or StreamNoise(B, samples, x.device)
        z, log_q = q.rsample(noise) if draw is None else draw(q, noise)          # (B, S, nz), (B, S)
        S = z.size(1)
        labels = None
        if self.classifier is not None and relax is not None:    # the labels it lacks, relaxed
            labels = relaxed_terms(self, log_qc, z, inp, tgt, batch.labels, *relax)
            ll = labels.expected()                                                # (B, S)
        elif self.classifier is not None:    # every value of the labels a sentence lacks (M2)
            labels = label_terms(self, log_qc, z, inp, tgt, batch.labels)
            ll = labels.expected()                                                # (B, S)
        else:
            if S > 1:          # the decoder reads each sentence S times, once per sample
                inp, tgt = inp.repeat_interleave(S, dim=0), tgt.repeat_interleave(S, dim=0)
            ll = self.log_likelihood(z.reshape(B * S, -1), inp, tgt).view(B, S).float()
        zf, log_q = z.float(), log_q.float()
        log_p = self.prior.log_prob(zf)
        kl = kl_divergence(q.to(dtype=torch.float32), self.prior, zf, log_q)
        components = self.prior.responsibilities(zf) if hasattr(self.prior, "responsibilities") else None
        return Terms(ll, log_q, log_p, kl, self.bow_nll(z[:, 0], x[:, 1:]).float(), q, components, z, batch.lengths,
                     labels)

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
        fresh = ("encoder.", "to_posterior.", "bow.", "prior.", "conditioner.")
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
    def init_state(self, z: torch.Tensor, c=None):
        return self.decoder.init_state(self.condition(z, c))

    def step(self, tokens: torch.Tensor, state):
        """tokens (B,) -> next-token logits (B, V) and the new state."""
        hidden, state = self.decoder.step(self.emb(tokens).unsqueeze(1), state)  # (B, 1, H)
        return self.logits(hidden[:, 0]), state

    def reorder_state(self, state, index: torch.Tensor):
        """Select/reorder the batch rows of a decoding state (beam search)."""
        return self.decoder.reorder_state(state, index)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
