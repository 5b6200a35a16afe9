"""Settings as validated dataclasses: what the model is, and how it is trained.

Errors name the command-line flag (``--latent``), since that is what the user typed.
A config goes into every checkpoint as a plain dict (`to_dict`) and comes back with
`from_dict`, which refuses keys it does not know.
"""

import math
from dataclasses import asdict, dataclass, fields

from sentvae.errors import SentvaeError

ARCHS = ("lstm", "transformer")
ANNEAL = ("none", "linear", "logistic", "cyclical")
PRECISIONS = ("fp32", "bf16", "fp16")
LR_SCHEDULES = ("none", "plateau", "cosine")
OPTIMIZERS = ("adamw", "sgd")
FREE_BITS_OVER = ("batch", "sentence")
TRAIN_ONLY = ("all", "encoder")


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check(cond: bool, name: str, what: str):
    if not cond:
        raise SentvaeError(f"{flag(name)}: {what}")


class _Config:
    @classmethod
    def from_dict(cls, d: dict):
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise SentvaeError(f"unknown {cls.__name__} key(s): {', '.join(unknown)}")
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ModelConfig(_Config):
    vocab_size: int
    arch: str = "lstm"
    emb_dim: int = 256
    hidden: int = 256
    latent: int = 32
    enc_layers: int = 1
    dec_layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.2          # on the decoder's input embeddings and its outputs (not word dropout)
    enc_dropout: float | None = None   # on the encoder's input embeddings; None: the same as dropout
    tie_weights: bool = True      # output layer shares the input embedding
    no_latent: bool = False       # LM baseline: the same decoder, z always 0, no encoder, KL 0
    bow: bool = False             # a bag-of-words head on z (Zhao et al. 2017), for --bow-weight
    heads: int = 4                # transformer: attention heads
    ff: int = 1024                # transformer: feed-forward width
    # The transformer's width (d_model) is emb_dim, and hidden must equal it; its depth is
    # enc_layers / dec_layers. bidirectional applies to the LSTM encoder only.

    def __post_init__(self):
        _check(self.arch in ARCHS, "arch", f"must be one of {', '.join(ARCHS)}, not {self.arch!r}")
        _check(self.vocab_size >= 5, "vocab_size", f"must be >= 5, not {self.vocab_size}")
        for name in ("emb_dim", "hidden", "latent", "enc_layers", "dec_layers"):
            _check(getattr(self, name) >= 1, name, f"must be >= 1, not {getattr(self, name)}")
        _check(0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1), not {self.dropout}")
        _check(self.enc_dropout is None or 0.0 <= self.enc_dropout < 1.0, "enc_dropout",
               f"must be in [0, 1), not {self.enc_dropout}")
        if self.arch == "transformer":
            _check(self.heads >= 1 and self.emb_dim % self.heads == 0, "heads",
                   f"must divide --d-model {self.emb_dim}, not {self.heads}")
            _check(self.ff >= 1, "ff", f"must be >= 1, not {self.ff}")
            _check(self.hidden == self.emb_dim, "d_model",
                   f"the transformer's width is --d-model; --hidden {self.hidden} differs from it")


@dataclass
class TrainConfig(_Config):
    # Defaults tuned on the bundled corpus so that a few CPU minutes give a used latent
    # (KL >= 3 nats for both architectures): small batches (more updates), a brisk lr, and word
    # dropout 0.6 (at 0.5 the Transformer decoder ends at 2.8 nats).
    max_tokens: int = 1000        # token budget per batch (padded tokens, EOS included)
    max_len: int = 100            # tokens per sentence; longer ones are truncated and counted
    lr: float = 2e-3
    optimizer: str = "adamw"      # adamw | sgd (plain SGD is what the published PTB recipes use, at lr 1.0)
    momentum: float = 0.0         # sgd: heavy-ball momentum
    lr_schedule: str = "none"     # none | plateau | cosine (sentvae/schedule.py)
    lr_decay: float = 0.5         # plateau: multiply the rate by this on a plateau
    patience: int = 2             # plateau: validations without improvement before a decay
    max_decays: int = 5           # plateau: after this many decays, the next plateau stops the run
    decay_restart: bool = False   # plateau: go back to the best weights (fresh optimizer state) on a decay
    warmup_steps: int = 0         # linear warm-up of the rate over the first N steps
    min_lr: float = 0.0           # cosine: the rate at the last step
    early_stop: int = 0           # stop after N validations without improvement; 0 = off
    min_improvement: float = 0.0  # plateau / early stop: nats of validation -ELBO below the best that count as improving
    weight_decay: float = 0.0
    grad_clip: float = 5.0
    epochs: int = 8
    max_steps: int = 0            # 0: no limit beyond --epochs
    time_budget: float = 0.0      # seconds; 0: no limit
    kl_anneal: str = "logistic"
    anneal_steps: int = 1600      # linear/logistic: steps to reach weight 1
    cycles: int = 4               # cyclical: number of cycles over the whole run
    cycle_ratio: float = 0.5      # cyclical: fraction of each cycle spent ramping up
    word_dropout: float = 0.6
    free_bits: float = 0.0        # nats per latent dimension: a floor under the KL term
    free_bits_over: str = "batch"  # batch: each dimension's batch-mean KL floored; sentence: each
                                   # sentence's, as Li et al. 2019's code does (fb = 2)
    beta: float = 1.0             # final weight on the KL term
    bow_weight: float = 0.0       # bag-of-words loss weight (Zhao et al. 2017); needs the bow head
    aggressive: bool = False      # He et al. 2019: encoder inner loop until validation MI stops rising
    aggressive_every: int = 0     # check that MI every N steps; 0 = at each epoch's end (He et al.)
    pretrain_steps: int = 0       # Li et al. 2019: train as an autoencoder (KL weight 0) this many
                                  # steps, then re-initialise the decoder and anneal from there
    init_decoder: str = ""        # a checkpoint whose embedding, decoder and output layer the model
                                  # starts from (z's weights zeroed); "" = fresh weights
    init_from: str = ""           # a checkpoint whose weights (all of them) the model starts from: a
                                  # fine-tune, with a fresh optimizer and schedule; "" = fresh weights
    train_only: str = "all"       # encoder: only the encoder and posterior head learn (a fine-tune of
                                  # q(z|x) for a trained decoder: p(x) stays what it was, the bound tightens)
    precision: str = "fp32"       # fp32 | bf16 | fp16 (autocast; fp16 adds a GradScaler, CUDA only)
    eval_every: int = 400
    log_every: int = 50
    seed: int = 0

    def __post_init__(self):
        _check(self.kl_anneal in ANNEAL, "kl_anneal",
               f"must be one of {', '.join(ANNEAL)}, not {self.kl_anneal!r}")
        for name in ("max_tokens", "max_len", "eval_every", "log_every", "cycles", "anneal_steps"):
            _check(getattr(self, name) >= 1, name, f"must be >= 1, not {getattr(self, name)}")
        for name in ("epochs", "max_steps"):
            _check(getattr(self, name) >= 0, name, f"must be >= 0, not {getattr(self, name)}")
        _check(self.epochs > 0 or self.max_steps > 0 or self.time_budget > 0, "epochs",
               "give --epochs, --max-steps or --time-budget greater than 0")
        _check(self.precision in PRECISIONS, "precision",
               f"must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        _check(self.lr > 0, "lr", f"must be > 0, not {self.lr}")
        _check(self.optimizer in OPTIMIZERS, "optimizer",
               f"must be one of {', '.join(OPTIMIZERS)}, not {self.optimizer!r}")
        _check(0.0 <= self.momentum < 1.0, "momentum", f"must be in [0, 1), not {self.momentum}")
        _check(self.momentum == 0.0 or self.optimizer == "sgd", "momentum",
               f"applies to --optimizer sgd only (AdamW has its own), not {self.optimizer}")
        _check(self.lr_schedule in LR_SCHEDULES, "lr_schedule",
               f"must be one of {', '.join(LR_SCHEDULES)}, not {self.lr_schedule!r}")
        _check(0.0 < self.lr_decay < 1.0, "lr_decay", f"must be in (0, 1), not {self.lr_decay}")
        _check(self.patience >= 1, "patience", f"must be >= 1, not {self.patience}")
        for name in ("max_decays", "warmup_steps", "early_stop"):
            _check(getattr(self, name) >= 0, name, f"must be >= 0, not {getattr(self, name)}")
        _check(0.0 <= self.min_improvement < math.inf, "min_improvement",
               f"must be >= 0 nats (finite), not {self.min_improvement}")
        _check(0.0 <= self.min_lr <= self.lr, "min_lr", f"must be in [0, --lr {self.lr}], not {self.min_lr}")
        _check(self.weight_decay >= 0, "weight_decay", f"must be >= 0, not {self.weight_decay}")
        _check(self.grad_clip >= 0, "grad_clip", f"must be >= 0, not {self.grad_clip}")
        _check(self.time_budget >= 0, "time_budget", f"must be >= 0, not {self.time_budget}")
        _check(0.0 < self.cycle_ratio <= 1.0, "cycle_ratio", f"must be in (0, 1], not {self.cycle_ratio}")
        _check(0.0 <= self.word_dropout <= 1.0, "word_dropout", f"must be in [0, 1], not {self.word_dropout}")
        _check(self.free_bits >= 0, "free_bits", f"must be >= 0, not {self.free_bits}")
        _check(self.free_bits_over in FREE_BITS_OVER, "free_bits_over",
               f"must be one of {', '.join(FREE_BITS_OVER)}, not {self.free_bits_over!r}")
        _check(self.beta >= 0, "beta", f"must be >= 0, not {self.beta}")
        _check(self.bow_weight >= 0, "bow_weight", f"must be >= 0, not {self.bow_weight}")
        _check(self.aggressive_every >= 0, "aggressive_every", f"must be >= 0, not {self.aggressive_every}")
        _check(self.pretrain_steps >= 0, "pretrain_steps", f"must be >= 0, not {self.pretrain_steps}")
        _check(not (self.init_decoder and self.pretrain_steps), "init_decoder",
               "cannot be combined with --pretrain-steps: the decoder reset after pretraining would discard it")
        _check(not (self.init_from and self.pretrain_steps), "init_from",
               "cannot be combined with --pretrain-steps: the decoder reset after pretraining would discard its decoder")
        _check(self.train_only in TRAIN_ONLY, "train_only",
               f"must be one of {', '.join(TRAIN_ONLY)}, not {self.train_only!r}")
        _check(self.train_only == "all" or self.init_from, "train_only",
               "encoder: needs --init-from a trained model (the decoder it keeps as it is)")
        _check(self.train_only == "all" or not self.aggressive, "train_only",
               "encoder: cannot be combined with --aggressive, whose decoder steps it would skip")
        _check(not (self.init_from and self.init_decoder), "init_from",
               "cannot be combined with --init-decoder: give one start")
        _check(self.max_tokens >= self.max_len + 1, "max_tokens",
               f"must be at least --max-len + 1 ({self.max_len + 1}) so the longest sentence fits")
