"""Settings as validated dataclasses: what the model is, how it is trained, where a run reads
and writes. Every field is an option declared once (sentvae/options.py): its help, panel and
domain live here, and the `train` command's flags, the Python API's keywords, recipe keys and
checkpoint configs all follow from it.

Errors name the command-line flag (``--latent``), since that is what the user typed. A config
goes into every checkpoint as a plain dict (`to_dict`) and comes back with `from_dict`, which
refuses keys it does not know and checks every value's domain.
"""

from dataclasses import asdict, dataclass, fields

from sentvae.errors import SentvaeError
from sentvae.options import (BOOL, INT_LIMIT, SEED, TEXT, Choice, Domain, Float, Int, IntList, check_declared, option,
                             require)

ARCHS = ("lstm", "transformer")
ENCODERS = ARCHS
DECODERS = (*ARCHS, "cnn")
ANNEAL = ("none", "linear", "logistic", "cyclical")
PRECISIONS = ("fp32", "bf16", "fp16")
LR_SCHEDULES = ("none", "plateau", "cosine")
OPTIMIZERS = ("adamw", "sgd")
FREE_BITS_OVER = ("batch", "sentence", "latent")
TRAIN_ONLY = ("all", "encoder")
OBJECTIVES = ("elbo", "iwae")
POSTERIORS = ("gaussian", "iaf", "vmf")
PRIORS = ("normal", "gmm", "uniform")
LABEL_PRIORS = ("uniform", "joint")       # sentvae/label_prior.py
LATENT_TYPES = ("gaussian", "categorical", "categorical+gaussian")
ESTIMATORS = ("exact", "reinforce", "gumbel")
MODEL_TYPES = ("unigram", "bpe", "word", "char")
ENCODING_ERRORS = ("strict", "replace")

# help panels of `sentvae train --help`
DATA, LABELS, TOKENIZER, MODEL, LATENT, OBJECTIVE, OPTIMISATION, STOPPING, HARDWARE, OUTPUT = (
    "Data", "Labels", "Tokenizer", "Model", "Latent", "Objective", "Optimisation", "Stopping", "Hardware", "Output")
PANELS = (DATA, LABELS, TOKENIZER, MODEL, LATENT, OBJECTIVE, OPTIMISATION, STOPPING, HARDWARE, OUTPUT)   # in --help's order

SIZE = Int(1, 65_536)              # widths and depths of the networks
RATE = Float(0.0, 1.0, hi_open=True)   # dropout probabilities
PATH = Domain(str, optional=True)  # a file; None: not given
SVI_LR = 0.03                      # --svi-lr's default, in training and in eval (sentvae/svi.py): about the paper's per-sentence step (lr 1 on a batch mean of 32)


class _Config:
    def __post_init__(self):
        check_declared(self)
        self.check_rules()

    def check_rules(self) -> None:
        """Rules between options (each field's own domain is checked before)."""

    @classmethod
    def from_dict(cls, d: dict, source: str = ""):
        """A config from a plain dict (a checkpoint's); unknown keys and bad values are refused,
        naming `source` (the file) when given."""
        if not isinstance(d, dict):
            raise SentvaeError(f"{source or cls.__name__}: config is not a table of options")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        where = f"{source}: " if source else ""
        if unknown:
            raise SentvaeError(f"{where}unknown {cls.__name__} key(s): {', '.join(map(str, unknown))}")
        try:
            return cls(**d)
        except TypeError as e:        # a required key missing
            raise SentvaeError(f"{where}{cls.__name__}: {e}") from None
        except SentvaeError as e:
            if not source:
                raise
            raise SentvaeError(f"{source}: {e}") from None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ModelConfig(_Config):
    """What the model is: its shape, its latent, its architecture."""
    vocab_size: int = option(None, "pieces of the tokenizer (set from it)", Int(5, INT_LIMIT),
                             panel=MODEL, cli=False)
    # arch is the shorthand for both sides; a checkpoint made before --encoder/--decoder has only it. Tagged
    # decoder_shape so that an --init-decoder model's encoder follows its source's arch, as it always did.
    arch: str = option("lstm", "encoder and decoder architecture (a shorthand: --encoder and --decoder, where given, "
                       "win)", Choice(*ARCHS), panel=MODEL, tags=("decoder_shape",))
    emb_dim: int = option(256, "embedding size", SIZE, panel=MODEL, tags=("decoder_shape",))
    hidden: int = option(256, "LSTM hidden size", SIZE, panel=MODEL, tags=("decoder_shape",))
    latent: int = option(32, "latent size nz", SIZE, panel=LATENT, tags=("decoder_shape",))
    posterior: str = option("gaussian", "q(z|x): gaussian (diagonal); iaf: that Gaussian through --flow-steps "
                            "inverse autoregressive flow steps (Kingma et al. 2016); or vmf: a von Mises-Fisher on the "
                            "unit sphere with a fixed --kappa (Xu & Durrett 2018), under the uniform prior there",
                            Choice(*POSTERIORS), panel=LATENT)
    flow_steps: int = option(2, "iaf: flow steps (each a MADE of width 4 nz)", Int(1, 64), panel=LATENT)
    prior: str | None = option(None, "p(z): normal, N(0, I); gmm: a learnable mixture of --components Gaussians, "
                               "with a component posterior q(c|x) (GM-VAE; DEM-VAE with --dispersion); or uniform: "
                               "on the unit sphere, vmf's", Choice(*PRIORS, optional=True), panel=LATENT,
                               default_help="normal; uniform with --posterior vmf")
    components: int = option(10, "gmm: mixture components C", Int(2, 100_000), panel=LATENT)
    kappa: float | None = option(None, "vmf: the concentration of q(z|x), fixed; with --latent it fixes the KL "
                                 "(e.g. kappa 35 in 32 dimensions: 8.59 nats)", Float(0.0, 1e5, lo_open=True,
                                                                                     optional=True),
                                 panel=LATENT, default_help="none: vmf needs one")
    latent_type: str = option("gaussian", "z: gaussian; categorical, one of --categories values (the decoder sees a "
                              "learned embedding of it, of size --latent); or categorical+gaussian, that embedding "
                              "concatenated to a Gaussian z of size --latent", Choice(*LATENT_TYPES), panel=LATENT)
    categories: int = option(10, "categorical: K, the values c takes (uniform prior)", Int(2, 100_000), panel=LATENT)
    enc_layers: int = option(1, "encoder layers", SIZE, panel=MODEL)
    dec_layers: int = option(1, "decoder layers", SIZE, panel=MODEL, tags=("decoder_shape",))
    bidirectional: bool = option(True, "encoder direction", BOOL, panel=MODEL,
                                 flags=("--bidirectional/--unidirectional",))
    dropout: float = option(0.2, "dropout on the decoder's input embeddings and outputs (and the encoder's, "
                            "unless --enc-dropout)", RATE, panel=MODEL, tags=("fine_tunable",))
    enc_dropout: float | None = option(None, "dropout on the encoder's input embeddings",
                                       Float(0.0, 1.0, hi_open=True, optional=True), panel=MODEL,
                                       tags=("fine_tunable",), default_help="--dropout")
    tie_weights: bool = option(True, "the output layer shares the input embedding", BOOL, panel=MODEL,
                               flags=("--tie-weights/--untie-weights",))
    no_latent: bool = option(False, "LM baseline: the same decoder without z (KL 0; eval gives its exact NLL)",
                             BOOL, panel=MODEL, flags=("--no-latent",))
    bow: bool = option(False, "a bag-of-words head on z (Zhao et al. 2017; set by --bow-weight)", BOOL,
                       panel=MODEL, cli=False)
    heads: int = option(4, "transformer attention heads", SIZE, panel=MODEL, tags=("decoder_shape",))
    ff: int = option(1024, "transformer feed-forward width", SIZE, panel=MODEL, tags=("decoder_shape",))
    # The transformer's width (d_model) is emb_dim (and hidden must equal it when no side uses hidden); its
    # depth is enc_layers / dec_layers. bidirectional applies to the LSTM encoder only.
    encoder: str | None = option(None, "encoder architecture", Choice(*ENCODERS, optional=True), panel=MODEL,
                                 default_help="--arch")
    decoder: str | None = option(None, "decoder architecture; cnn: dilated causal convolutions over a fixed window "
                                 "of past words (Yang et al. 2017)", Choice(*DECODERS, optional=True), panel=MODEL,
                                 tags=("decoder_shape",), default_help="--arch")
    dilations: tuple | None = option(None, "cnn: one residual block per dilation; the receptive field is "
                                     "1 + (kernel - 1) x their sum", IntList(1, 4096, optional=True), panel=MODEL,
                                     tags=("decoder_shape",), default_help="1,2,4 with --decoder cnn",
                                     metavar="D1,D2,..")
    kernel_size: int | None = option(None, "cnn: the width of each dilated convolution",
                                     Domain(int, 1, 64, optional=True), panel=MODEL, tags=("decoder_shape",),
                                     default_help="3 with --decoder cnn")
    labels: dict | None = option(None, "the label vocabulary (set from the labelled data: sentvae/label_vocab.py)",
                                 Domain(dict, optional=True), panel=LABELS, cli=False)
    label_dim: int = option(16, "labels: the size of each attribute's value embedding, which the decoder reads beside z",
                            SIZE, panel=LABELS)
    label_prior: str = option("uniform", "labels: p(c), the prior over the labels: uniform (each attribute's values "
                              "equally likely, independently; Kingma et al. 2014) or joint (the labelled training rows' "
                              "frequency of each combination of values, add-one smoothed: the labels a sentence lacks "
                              "and those `sample` draws keep the data's dependencies between attributes)",
                              Choice(*LABEL_PRIORS), panel=LABELS, tags=("fine_tunable",))

    def __post_init__(self):
        # Shorthands and family defaults, filled in before the checks, so that a saved config says what was
        # built: --arch gives each side not given; the prior is the posterior's own; a CNN decoder's shape.
        self.encoder = self.arch if self.encoder is None else self.encoder
        self.decoder = self.arch if self.decoder is None else self.decoder
        if self.prior is None:
            self.prior = "uniform" if self.posterior == "vmf" else "normal"
        if self.decoder == "cnn":
            self.dilations = (1, 2, 4) if self.dilations is None else self.dilations
            self.kernel_size = 3 if self.kernel_size is None else self.kernel_size
        super().__post_init__()

    def check_rules(self):
        if self.labels is not None:
            from sentvae.label_vocab import LabelVocab
            vocab = LabelVocab.from_dict(self.labels, "labels")     # its shape, or one line
            require(len(vocab) > 0 and all(len(v) >= 2 for v in vocab.values.values()), "labels",
                    "each attribute needs two values or more")
            require(not self.no_latent, "label_field", "a --no-latent model has no encoder to read labels with "
                    "(q(c|x)); leave out --no-latent")
            require(self.label_prior == "uniform" or self.labels.get("counts") is not None, "label_prior",
                    "joint: the label vocabulary carries no counts of the training rows' labels")
        require(self.label_prior == "uniform" or self.labels is not None, "label_prior",
                "joint: a prior over labels, for a model trained with them (--label-field, --label-first-token or "
                "PATH@NAME=VALUE data)")
        if self.no_latent:
            require(self.posterior == "gaussian", "posterior", "a --no-latent model has no latent to give a posterior")
            require(self.prior == "normal", "prior", "a --no-latent model has no latent to give a prior")
            require(self.latent_type == "gaussian", "latent_type", "a --no-latent model has no latent")
        if self.latent_type != "gaussian":
            require(self.labels is None, "latent_type", f"--latent-type {self.latent_type}: not with labels "
                    "(--label-field ...): the labels are the model's discrete code; use the Gaussian z beside them")
            require(self.posterior == "gaussian", "posterior", f"--latent-type {self.latent_type} takes the "
                    "diagonal Gaussian only (no flow beside a categorical)")
            require(self.prior == "normal", "prior", f"--latent-type {self.latent_type} has its own prior (uniform "
                    "over the categories, N(0, I) for a Gaussian part); a mixture prior is the other discrete latent")
        if self.posterior == "vmf":
            require(self.prior == "uniform", "prior", f"--posterior vmf lives on the unit sphere, under the uniform "
                    f"prior there; leave --prior out, not {self.prior}")
            require(self.kappa is not None, "kappa", "--posterior vmf needs its concentration (it fixes the KL: "
                    "docs/models.md has a table)")
            require(self.latent >= 2, "latent", "--posterior vmf needs 2 or more dimensions (the sphere S^(nz-1))")
        else:
            require(self.prior != "uniform", "prior", "uniform is the unit sphere's prior, for --posterior vmf")
            require(self.kappa is None, "kappa", f"applies to --posterior vmf, not {self.posterior}")
        if self.decoder != "cnn":
            require(self.dilations is None, "dilations", f"applies to --decoder cnn, not {self.decoder}")
            require(self.kernel_size is None, "kernel_size", f"applies to --decoder cnn, not {self.decoder}")
        else:
            require(self.dec_layers == 1, "dec_layers", "the CNN decoder's depth is one block per --dilations entry")
        sides = (self.encoder, self.decoder)
        if "transformer" in sides:
            require(self.emb_dim % self.heads == 0, "heads", f"must divide --d-model {self.emb_dim}, not {self.heads}")
        if sides == ("transformer", "transformer"):       # then nothing reads hidden: one width, one name
            require(self.hidden == self.emb_dim, "d_model",
                    f"the transformer's width is --d-model; --hidden {self.hidden} differs from it")


@dataclass
class TrainConfig(_Config):
    """How a model is trained. Defaults tuned on the bundled corpus so that a few CPU minutes give
    a used latent (KL >= 3 nats for both architectures): small batches (more updates), a brisk lr,
    and word dropout 0.6 (at 0.5 the Transformer decoder ends at 2.8 nats)."""
    max_tokens: int = option(1000, "padded tokens per batch", Int(1), panel=DATA)
    max_len: int = option(100, "pieces per sentence; longer ones are truncated", Int(1, 1_000_000), panel=DATA)
    lr: float = option(2e-3, "learning rate (AdamW ~2e-3; SGD ~1.0)", Float(0.0, 1e3, lo_open=True),
                       panel=OPTIMISATION)
    optimizer: str = option("adamw", "adamw, or plain sgd as in the published PTB recipes (lr 1.0, clip 5)",
                            Choice(*OPTIMIZERS), panel=OPTIMISATION, tags=("frozen_on_resume",))
    momentum: float = option(0.0, "sgd: momentum", Float(0.0, 1.0, hi_open=True), panel=OPTIMISATION)
    lr_schedule: str = option("none", "plateau: decay on validation plateaus; cosine: to --min-lr at the end",
                              Choice(*LR_SCHEDULES), panel=OPTIMISATION)
    lr_decay: float = option(0.5, "plateau: factor applied on each plateau", Float(0.0, 1.0, True, True),
                             panel=OPTIMISATION)
    patience: int = option(2, "plateau: validations without improvement before a decay", Int(1), panel=OPTIMISATION)
    max_decays: int = option(5, "plateau: the plateau after this many decays ends the run", Int(0),
                             panel=OPTIMISATION)
    decay_restart: bool = option(False, "plateau: on a decay, go back to the best weights with a fresh "
                                 "optimizer state", BOOL, panel=OPTIMISATION,
                                 flags=("--decay-restart/--no-decay-restart",))
    warmup_steps: int = option(0, "linear learning-rate warm-up steps", Int(0), panel=OPTIMISATION)
    min_lr: float = option(0.0, "cosine: the rate at the last step", Float(0.0), panel=OPTIMISATION)
    early_stop: int = option(0, "stop after N validations without improvement, 0 = off", Int(0), panel=STOPPING)
    min_improvement: float = option(0.0, "plateau and --early-stop: nats a validation -ELBO must fall below the "
                                    "best to count as improving (best.pt follows any improvement)", Float(0.0),
                                    panel=OPTIMISATION)
    weight_decay: float = option(0.0, "weight decay (AdamW: decoupled; SGD: L2)", Float(0.0), panel=OPTIMISATION)
    grad_clip: float = option(5.0, "gradient norm clip, 0 = off", Float(0.0), panel=OPTIMISATION)
    epochs: int = option(8, "passes over the data, 0 = no limit", Int(0), panel=STOPPING)
    max_steps: int = option(0, "optimizer steps, 0 = no limit", Int(0), panel=STOPPING)
    time_budget: float = option(0.0, "seconds of training in this run, 0 = no limit", Float(0.0), panel=STOPPING)
    objective: str = option("elbo", "what training maximises: elbo, or iwae, the --train-samples-sample importance-"
                            "weighted bound (Burda et al. 2016)", Choice(*OBJECTIVES), panel=OBJECTIVE)
    train_samples: int = option(1, "z samples per sentence in training (iwae: its K; elbo: averaged); a batch's "
                                "--max-tokens counts every copy", Int(1, 4096), panel=OBJECTIVE)
    dispersion: float = option(0.0, "gmm: DEM-VAE's dispersion bonus lambda: the objective gains lambda x L_d, "
                               "which keeps the components apart (0: a plain GM-VAE; Shi et al.'s PTB code: 0.8)",
                               Float(0.0), panel=OBJECTIVE)
    kl_anneal: str = option("logistic", "KL weight schedule", Choice(*ANNEAL), panel=OBJECTIVE)
    anneal_steps: int = option(1600, "steps for linear/logistic to reach 1", Int(1), panel=OBJECTIVE)
    cycles: int = option(4, "cyclical: cycles over the run", Int(1), panel=OBJECTIVE)
    cycle_ratio: float = option(0.5, "cyclical: ramp fraction of a cycle", Float(0.0, 1.0, lo_open=True),
                                panel=OBJECTIVE)
    word_dropout: float = option(0.6, "decoder input -> UNK probability", Float(0.0, 1.0), panel=OBJECTIVE)
    free_bits: float = option(0.0, "KL floor per latent dim, nats", Float(0.0), panel=OBJECTIVE)
    free_bits_over: str = option("batch", "the floor is on each dim's batch-mean KL; on each sentence's (Li et "
                                 "al.'s code); or, x the code's size (nz; K for a categorical), on the whole latent's "
                                 "batch-mean KL (any posterior and prior: a flow's or a mixture's KL does not split by "
                                 "dimension)", Choice(*FREE_BITS_OVER),
                                 panel=OBJECTIVE)
    beta: float = option(1.0, "final KL weight", Float(0.0), panel=OBJECTIVE)
    bow_weight: float = option(0.0, "bag-of-words loss weight (Zhao et al. 2017); adds a head on z", Float(0.0),
                               panel=OBJECTIVE)
    aggressive: bool = option(False, "aggressive inference-network training until validation MI stops rising "
                              "(He et al. 2019)", BOOL, panel=OBJECTIVE, flags=("--aggressive",))
    aggressive_every: int = option(0, "--aggressive: check validation MI every N steps, 0 = once an epoch "
                                   "(an aggressive epoch costs ~16 plain ones)", Int(0), panel=OBJECTIVE)
    pretrain_steps: int = option(0, "autoencoder pretraining steps, then a decoder reset (Li et al. 2019)",
                                 Int(0), panel=OBJECTIVE)
    init_decoder: str = option("", "start the embedding, decoder and output layer from this checkpoint (e.g. a "
                               "converged --no-latent LM), with its tokenizer and shape; z's weights start at 0, "
                               "so the VAE starts out predicting exactly as the LM", TEXT, panel=MODEL,
                               tags=("frozen_on_resume", "start"), default_help="fresh weights", metavar="CKPT")
    init_from: str = option("", "start every weight from this checkpoint (a fine-tune: its tokenizer and shape, "
                            "a fresh optimizer and schedule; e.g. SGD after AdamW)", TEXT, panel=MODEL,
                            tags=("frozen_on_resume", "start"), default_help="fresh weights", metavar="CKPT")
    train_only: str = option("all", "encoder: update only the encoder and posterior head of an --init-from "
                             "model (its decoder, and so p(x), kept; the bound tightens)", Choice(*TRAIN_ONLY),
                             panel=OBJECTIVE)
    estimator: str | None = option(None, "categorical latent, or a labelled model's missing labels: how q(c|x) gets "
                                   "its gradient: exact (the sum over the K values, K decoder passes), reinforce "
                                   "(the score function with a learned baseline; a latent only) or gumbel (the "
                                   "Gumbel-softmax relaxation, --tau...)",
                                   Domain(str, choices=ESTIMATORS, optional=True), panel=OBJECTIVE,
                                   default_help="exact")
    tau: float = option(1.0, "gumbel: the relaxation's temperature at step 0", Float(0.0, 100.0, lo_open=True),
                        panel=OBJECTIVE)
    tau_min: float = option(0.5, "gumbel: the temperature's floor", Float(0.0, 100.0, lo_open=True), panel=OBJECTIVE)
    tau_rate: float = option(3e-5, "gumbel: tau = max(--tau-min, --tau x exp(-rate x step)) (Jang et al. 2017's "
                             "schedule; their notebook's rate)", Float(0.0, 1.0), panel=OBJECTIVE)
    straight_through: bool = option(False, "gumbel: decode the one-hot argmax, back-propagate through the relaxed "
                                     "sample (Jang et al.'s straight-through estimator)", BOOL, panel=OBJECTIVE,
                                     flags=("--straight-through",))
    svi_steps: int = option(0, "semi-amortized inference (Kim et al. 2018): refine each sentence's posterior by N "
                            "gradient steps on its own ELBO before the loss, backpropagating through them into the "
                            "encoder (each step costs about a forward and backward pass more)", Int(0, 10_000),
                            panel=OBJECTIVE)
    svi_lr: float = option(SVI_LR, "--svi-steps: the step size, per sentence (momentum 0.5, each gradient's norm "
                           "clipped at 5)", Float(0.0, 1e3, lo_open=True), panel=OBJECTIVE)
    precision: str = option("fp32", "autocast precision (fp16: CUDA only, with a GradScaler)",
                            Choice(*PRECISIONS), panel=HARDWARE)
    eval_every: int = option(400, "validate and save every N steps", Int(1), panel=OUTPUT)
    log_every: int = option(50, "log figures every N steps", Int(1), panel=OUTPUT)
    seed: int = option(0, "random seed", SEED, panel=OPTIMISATION)
    classifier_weight: float = option(0.1, "labels: alpha, the weight of q(c|x)'s cross-entropy on the labelled "
                                      "sentences of a batch (their mean; Kingma et al. 2014's M2: 0.1)", Float(0.0),
                                      panel=LABELS)
    attr_weight: float = option(0.0, "labels: lambda_c, the weight of Hu et al. 2017's attribute term: the decoder, "
                                "run on its own soft outputs with labels drawn anew, trained so that q(c|x) reads "
                                "those labels back (0: off; Hu et al.: 0.1)", Float(0.0, 1e3), panel=LABELS)
    indep_weight: float = option(0.0, "labels: lambda_z, the weight of Hu et al. 2017's independence term: the same "
                                 "soft sentences' -log q(z|x) at the z they were decoded from (0: off; Hu et al.: 0.1)",
                                 Float(0.0, 1e3), panel=LABELS)
    sleep_weight: float = option(0.0, "labels: lambda_u, the weight of Hu et al. 2017's sleep step: q(c|x)'s heads "
                                 "also learn to read the labels back from the soft sentences the decoder writes for "
                                 "labels drawn anew (their cross-entropy, plus --sleep-entropy times q's entropy on "
                                 "them); the heads learn, not the encoder q(z|x) shares (0: off; Hu et al.: 0.1)",
                                 Float(0.0, 1e3), panel=LABELS)
    sleep_entropy: float = option(0.1, "labels: --sleep-weight: beta, the weight of q(c|x)'s entropy on the soft "
                                  "sentences (Hu et al.'s minimum-entropy term: confident readings of generated text)",
                                  Float(0.0, 1e3), panel=LABELS)
    soft_codes: str = option("posterior", "labels: --attr-weight/--indep-weight/--sleep-weight: the codes the soft sentences are "
                             "decoded from: posterior (the batch's own, as transfer uses them) or prior (z ~ p(z), as "
                             "Hu et al. and `sample`)", Choice("posterior", "prior"), panel=LABELS)
    soft_tau: float = option(0.5, "labels: --attr-weight/--indep-weight/--sleep-weight: the temperature of the soft outputs (the next "
                             "input: the expected embedding under softmax(logits / tau))", Float(0.0, 100.0, lo_open=True),
                             panel=LABELS)

    def check_rules(self):
        require(self.epochs > 0 or self.max_steps > 0 or self.time_budget > 0, "epochs",
                "give --epochs, --max-steps or --time-budget greater than 0")
        require(self.momentum == 0.0 or self.optimizer == "sgd", "momentum",
                f"applies to --optimizer sgd only (AdamW has its own), not {self.optimizer}")
        require(self.min_lr <= self.lr, "min_lr", f"must be in [0, --lr {self.lr}], not {self.min_lr}")
        require(not (self.init_decoder and self.pretrain_steps), "init_decoder",
                "cannot be combined with --pretrain-steps: the decoder reset after pretraining would discard it")
        require(not (self.init_from and self.pretrain_steps), "init_from",
                "cannot be combined with --pretrain-steps: the decoder reset after pretraining would discard its decoder")
        require(self.train_only == "all" or self.init_from, "train_only",
                "encoder: needs --init-from a trained model (the decoder it keeps as it is)")
        require(self.train_only == "all" or not self.aggressive, "train_only",
                "encoder: cannot be combined with --aggressive, whose decoder steps it would skip")
        require(not (self.init_from and self.init_decoder), "init_from", "cannot be combined with --init-decoder: give one start")
        if self.estimator != "gumbel":
            for name in ("tau", "tau_min", "tau_rate", "straight_through"):
                require(getattr(self, name) == _DEFAULTS[name], name, "applies to --estimator gumbel only")
        require(self.tau_min <= self.tau, "tau_min", f"must be at most --tau {self.tau}, not {self.tau_min}")
        require(self.max_tokens >= self.train_samples * (self.max_len + 1), "max_tokens",
                f"must be at least --train-samples x (--max-len + 1) ({self.train_samples * (self.max_len + 1)}) "
                "so the longest sentence fits with all its copies")


_DEFAULTS = {f.name: f.default for f in fields(TrainConfig)}


@dataclass
class RunConfig(_Config):
    """Where a training run reads and writes, and on what: the `train` options that are neither the
    model nor its training. Not saved in checkpoints."""
    data: list | None = option(None, "training data: text (one sentence per line), .jsonl, .csv, - for stdin, or "
                               "hf:NAME[:CONFIG]", Domain(list, optional=True), panel=DATA, flags=("--data", "-d"),
                               default_help="the bundled data/train.txt", metavar="FILE")
    valid: list | None = option(None, "validation text file(s)", Domain(list, optional=True), panel=DATA,
                                default_help="bundled data/valid.txt, or 5% held out of --data", metavar="FILE")
    encoding_errors: str = option("strict", "on invalid UTF-8: stop (strict) or use U+FFFD", Choice(*ENCODING_ERRORS),
                                  panel=DATA)
    text_field: str = option("text", "the field holding the text in .jsonl/.csv/hf: data", TEXT, panel=DATA)
    label_field: list | None = option(None, "labels: the .jsonl/.csv field holding an attribute's value (repeatable: "
                                      "several attributes); a row without it is unlabelled for it",
                                      Domain(list, optional=True), panel=LABELS, metavar="NAME")
    label_first_token: str | None = option(None, "labels: text files hold 'VALUE sentence' lines; the first token is "
                                           "this attribute's value (SentEval's format)", Domain(str, optional=True),
                                           panel=LABELS, metavar="NAME")
    encoding: str = option("utf-8", "labels: the text encoding of labelled --data (latin-1 for MR)", TEXT, panel=LABELS)
    tokenizer: str | None = option(None, "a tokenizer from `sentvae tokenize`", PATH, panel=TOKENIZER,
                                   default_help="train one", metavar="FILE")
    model_type: str = option("bpe", "tokenizer type when training one", Choice(*MODEL_TYPES), panel=TOKENIZER)
    vocab_size: int = option(8000, "tokenizer size when training one (a small corpus may give fewer pieces)",
                             Int(8), panel=TOKENIZER)
    d_model: int | None = option(None, "transformer width (sets --emb-dim and --hidden)",
                                 Domain(int, 1, 65_536, optional=True), panel=MODEL)
    layers: int | None = option(None, "encoder and decoder layers (sets both)", Domain(int, 1, 65_536, optional=True),
                                panel=MODEL)
    device: str = option("auto", "auto, cpu, cuda or cuda:N", TEXT, panel=HARDWARE)
    detect_anomaly: bool = option(False, "torch autograd anomaly detection (slow; finds the op making a NaN)", BOOL,
                                  panel=HARDWARE, flags=("--detect-anomaly",))
    out: str = option("checkpoints", "folder for last.pt, best.pt, tokenizer.model, metrics.jsonl", TEXT,
                      panel=OUTPUT, flags=("--out", "-o"), metavar="DIR")
    resume: bool = option(False, "continue exactly from OUT/last.pt", BOOL, panel=OUTPUT, flags=("--resume",))
    overwrite: bool = option(False, "replace the run already in OUT (its last.pt, best.pt, metrics.jsonl)", BOOL,
                             panel=OUTPUT, flags=("--overwrite",))

    def check_rules(self):
        require(not (self.resume and self.overwrite), "overwrite",
                "cannot be used with --resume (continue the run, or replace it)")


CONFIGS = (RunConfig, ModelConfig, TrainConfig)
