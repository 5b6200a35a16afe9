"""The Python face of sentvae: what the command line does, as functions and one model object.

    import sentvae
    result = sentvae.train(data="corpus.txt", out="runs/a", epochs=4, kl_anneal="cyclical")
    model = sentvae.load("runs/a/best.pt")

`train` takes the options of `sentvae train` as keyword arguments (flag names with
underscores). Errors the user can fix raise `sentvae.SentvaeError`; nothing is printed: progress
and warnings reach `on_event(kind, info)` if given.
"""

from dataclasses import fields
import os
from pathlib import Path

from sentvae.command_config import DecodeConfig, EvalConfig, GenerationConfig, check_option, stream_seed
from sentvae.config import SVI_LR, ModelConfig, RunConfig, TrainConfig
from sentvae.errors import SentvaeError
from sentvae.options import declared, domain_of, tagged

# The option tables below all follow from the declarations in sentvae/config.py.
RUN_OPTIONS = tuple(f.name for f, _ in declared(RunConfig))
MODEL_OPTIONS = tuple(f.name for f, opt in declared(ModelConfig) if opt.cli)
TRAIN_OPTIONS = tuple(f.name for f in fields(TrainConfig))


# Training options a resumed run cannot change, with the value a run saved before the option
# existed had (its default): the optimizer's saved state would not fit another optimizer.
FROZEN_ON_RESUME = {f.name: f.default for f in fields(TrainConfig) if f.name in tagged(TrainConfig, "frozen_on_resume")}

# The options that fix the shape of the embedding, decoder and output layer: a model started from
# --init-decoder takes them from that checkpoint (an option given must agree with it).
DECODER_SHAPE = tagged(ModelConfig, "decoder_shape")
# What a model started from --init-from may set otherwise than its checkpoint: the rest is its shape.
FINE_TUNABLE = tagged(ModelConfig, "fine_tunable")
START_OPTIONS = tagged(TrainConfig, "start")


def _start_source(option: str, path, tokenizer, model_opts: dict):
    """--init-decoder / --init-from PATH: -> (its tokenizer, model options completed with the
    checkpoint's shape, its weights), the file read once. One line, naming the option, for what
    cannot fit."""
    from sentvae.checkpoint import load_checkpoint
    from sentvae.tokenizer import Tokenizer

    flag = "--" + option.replace("_", "-")
    if tokenizer is not None:
        raise SentvaeError(f"--tokenizer: {flag} {path} brings its own tokenizer; give one of them")
    whole = option == "init_from"
    if not whole and model_opts.get("no_latent"):
        raise SentvaeError("--init-decoder: a --no-latent model would be a copy of it; leave out --no-latent")
    ckpt = load_checkpoint(path)
    src = ModelConfig.from_dict(ckpt["model_config"]).to_dict()     # an older file's: completed
    if not whole and not src.get("tie_weights", True):
        raise SentvaeError(f"--init-decoder {path}: its output layer is not tied to the embedding; "
                           "only tied models (the default) can be started from")
    shape = {k: v for k, v in src.items() if k != "vocab_size" and k not in FINE_TUNABLE} if whole else \
        {k: src[k] for k in DECODER_SHAPE}
    for k, v in model_opts.items():
        if k in shape and _as_held(k, v) != shape[k]:
            if k == "bow":
                raise SentvaeError(f"--bow-weight: {flag} {path} has no bag-of-words head to train")
            raise SentvaeError(f"--{k.replace('_', '-')}: {flag} {path} has {shape[k]}, not {v}; "
                               "leave it out to take the checkpoint's")
    if whole:     # what is not given stays as trained (dropout too)
        shape.update({k: src[k] for k in FINE_TUNABLE if k in src})
    return Tokenizer(ckpt["tokenizer"], source=f"{path} (tokenizer)"), {**shape, **model_opts}, ckpt["model"]


def _as_held(name: str, value):
    """A given option's value as its config holds it, to compare with a saved one ("1,2" -> (1, 2))."""
    return domain_of(ModelConfig if name in MODEL_OPTIONS or name == "bow" else TrainConfig, name).check(name, value)


def _same_file(a, b) -> bool:
    """Two paths name one existing file (relative and absolute, through a link...)."""
    try:
        return bool(a) and bool(b) and os.path.samefile(a, b)
    except OSError:
        return False


def _refuse_frozen(last: Path, was: dict, given: dict) -> None:
    """One line naming the first option given with --resume that differs from what `last` holds
    and cannot change: the model's shape, or a key of FROZEN_ON_RESUME. (The same command line
    plus --resume is fine; other training options take effect and are recorded.)"""
    for k, v in given.items():
        if (k in MODEL_OPTIONS or k in FROZEN_ON_RESUME) and was[k] != _as_held(k, v):
            raise SentvaeError(f"--{k.replace('_', '-')}: {last} was trained with {was[k]}, not {v}; it cannot "
                               f"change on --resume (start a new run, or --overwrite this one)")


def _refuse_with_labels(model_opts: dict, cfg) -> None:
    """What a labelled model cannot be, refused before any input is read."""
    from sentvae.semisup import refuse

    if model_opts.get("no_latent"):
        raise SentvaeError("--no-latent: a labelled model needs an encoder for q(c|x); leave out --no-latent "
                           "(or the label options)")
    if cfg.init_decoder:
        raise SentvaeError("--init-decoder: a labelled model's decoder reads the labels beside z, which the "
                           "checkpoint's does not; train without it")
    refuse(cfg.objective)


def train(data=None, *, on_event=None, **options):
    """Train a sentence VAE as `sentvae train` does; -> sentvae.train.TrainResult.

    data / valid: a path or a list of paths (text, .jsonl, .csv, "-" for stdin, hf:NAME);
    default: the bundled corpus. out: the run folder (locked while training; one that holds a
    run needs resume=True or overwrite=True). options: any `sentvae train` option (flag names with
    underscores), e.g. arch="transformer", latent=16, epochs=2, lr=1e-3, kl_anneal="cyclical",
    lr_schedule="plateau"; each is checked against its declared domain (sentvae/config.py).
    on_event(kind, info): "input" (what reading changed), "note" (a killed run's leftovers put right:
    info["message"]), "start", "step", "log", "valid", "end".
    """
    from sentvae import distributed, label_data
    from sentvae.data import bundled, load_corpus, read_texts, split_corpus
    from sentvae.label_vocab import LabelVocab
    from sentvae.model import latent_families, resolve_device
    from sentvae.objective import build_objective
    from sentvae.rundir import RunDir
    from sentvae.tokenizer import MAX_SENTENCE_BYTES, Tokenizer, train_tokenizer
    from sentvae.trainer import refuse_contradictions, resume_configs
    from sentvae.trainer import train as run_training

    if data is not None:
        options["data"] = data
    unknown = sorted(set(options) - set(RUN_OPTIONS) - set(MODEL_OPTIONS) - set(TRAIN_OPTIONS))
    if unknown:
        raise SentvaeError(f"unknown train option(s): {', '.join(unknown)}")
    emit = on_event or (lambda kind, info: None)
    run = RunConfig(**{k: v for k, v in options.items() if k in RUN_OPTIONS})
    out, resume, overwrite = Path(run.out), run.resume, run.overwrite
    model_opts = {k: v for k, v in options.items() if k in MODEL_OPTIONS}
    if run.d_model is not None:
        model_opts["emb_dim"] = model_opts["hidden"] = run.d_model
    if run.layers is not None:
        model_opts["enc_layers"] = model_opts["dec_layers"] = run.layers
    train_opts = {k: v for k, v in options.items() if k in TRAIN_OPTIONS}
    bow_weight = train_opts.get("bow_weight")
    if bow_weight is not None and domain_of(TrainConfig, "bow_weight").check("bow_weight", bow_weight) > 0:
        model_opts["bow"] = True             # the loss needs its head
    encoding_errors, text_field = run.encoding_errors, run.text_field
    dev = distributed.setup(resolve_device(run.device))      # joins torchrun's process group, if any
    rank, _ = distributed.rank_world()
    run_dir = RunDir(out, resume, overwrite)
    if run_dir.recover():                    # what a killed run had set aside is back
        emit("note", {"message": run_dir.recovered})
    run_dir.check()                          # a run already there: refused before any work
    if resume:
        model_cfg, saved, tok = resume_configs(out)
        for k in START_OPTIONS:
            if _same_file(train_opts.get(k), saved.get(k)):
                train_opts[k] = saved[k]     # the same file, named another way
        _refuse_frozen(out / "last.pt", {**vars(model_cfg), **FROZEN_ON_RESUME, **saved}, {**model_opts, **train_opts})
        cfg = TrainConfig.from_dict({**saved, **train_opts})
    else:
        cfg = TrainConfig(**train_opts)
    # before any input is read (an --init-from checkpoint's own --no-latent: by the trainer)
    refuse_contradictions(model_cfg.no_latent if resume else bool(model_opts.get("no_latent")), cfg)
    label_opts = label_data.options_of(run)
    # labels asked for without --data: the bundled corpus's, from its .jsonl files
    bundled_kind = ".jsonl" if label_data.wanted([], label_opts) else ".txt"
    train_paths = run.data or [bundled("train", bundled_kind)]
    valid_paths = run.valid or ([bundled("valid", bundled_kind)] if run.data is None else None)
    # labelled data (or text in another encoding) is read in memory, with its labels (label_data.py)
    labelled = label_data.wanted(train_paths, label_opts) or label_opts.encoding.lower() not in ("utf-8", "utf8")
    if label_data.wanted(train_paths, label_opts) and not resume:     # not for mere --encoding
        _refuse_with_labels(model_opts, cfg)
    init_weights = None
    start = next((k for k in START_OPTIONS if getattr(cfg, k)), None)
    if not resume and start:
        path = getattr(cfg, start)
        if overwrite and Path(path).resolve() in {(out / n).resolve() for n in ("last.pt", "best.pt")}:
            raise SentvaeError(f"--{start.replace('_', '-')}: {path} belongs to the run in {out} that "
                               "--overwrite would remove; copy it out of that folder first")
        tok, model_opts, init_weights = _start_source(start, path, run.tokenizer, model_opts)
    # the vocabulary the labels must keep: a resumed or --init-from model's
    kept = (model_cfg.labels if resume else model_opts.get("labels"))
    kept_vocab = LabelVocab.from_dict(kept) if kept is not None else None
    if kept_vocab is not None and not labelled:
        raise SentvaeError(f"{'--resume' if resume else '--init-from'}: the model was trained with the labels "
                           f"{', '.join(kept_vocab.attributes)}; give the same label options")
    texts = None
    if labelled:
        if (resume or start) and kept_vocab is None and label_data.wanted(train_paths, label_opts):
            raise SentvaeError(f"{'--resume' if resume else '--init-from'}: the model was trained without labels")
        texts, labels, vocab = label_data.read(train_paths, label_opts, kept_vocab)
    if not resume and not start:
        if run.tokenizer is not None:
            tok = Tokenizer.load(run.tokenizer)
        elif texts is not None:          # read once, in memory (stdin too)
            proto = None
            if rank == 0:
                proto = train_tokenizer(label_data.tokenizer_texts(texts, train_paths, MAX_SENTENCE_BYTES),
                                        run.model_type, run.vocab_size, source=", ".join(train_paths)).proto
            tok = Tokenizer(distributed.broadcast_bytes(proto))
        else:
            if "-" in train_paths:
                raise SentvaeError("--data -: training from stdin needs --tokenizer (make one with "
                                   "`sentvae tokenize`), since the text cannot be read twice")
            proto = None
            if rank == 0:
                proto = train_tokenizer(read_texts(train_paths, encoding_errors, text_field, MAX_SENTENCE_BYTES),
                                        run.model_type, run.vocab_size, source=", ".join(train_paths)).proto
            tok = Tokenizer(distributed.broadcast_bytes(proto))   # rank 0's, byte for byte
    if not resume:
        if texts is not None and len(vocab):
            model_opts["labels"] = vocab.to_dict()
        model_cfg = ModelConfig(vocab_size=tok.vocab_size, **model_opts)
    # what training cannot do with this latent: refused before anything is read or written
    build_objective(cfg, model_cfg).check(*latent_families(model_cfg), model_cfg.labels is not None)
    refuse_contradictions(model_cfg.no_latent, cfg)        # now that an --init-from model's is known too
    if texts is not None:
        train_data = label_data.corpus(texts, labels, vocab, tok, cfg.max_len, train_paths)
        del texts
    else:
        train_data = load_corpus(train_paths, tok, cfg.max_len, encoding_errors, text_field)
    if valid_paths and labelled:
        valid_texts, valid_labels = label_data.read_held_out(valid_paths, label_opts, vocab)
        valid_data = label_data.corpus(valid_texts, valid_labels, vocab, tok, cfg.max_len, valid_paths)
    elif valid_paths:
        valid_data = load_corpus(valid_paths, tok, cfg.max_len, encoding_errors, text_field)
    else:
        train_data, valid_data = split_corpus(train_data, seed=cfg.seed)
    for name, c in (("training", train_data), ("validation", valid_data)):
        c.check_coverage()
        emit("input", {"what": name, "truncated": c.n_truncated, "unk": c.n_unk,
                       "limit": f"--max-len {cfg.max_len}"})
    if run.detect_anomaly:
        import torch
        torch.autograd.set_detect_anomaly(True)
    try:
        # every input is read and checked; the trainer checks its options before it locks and
        # writes the folder (tokenizer.model first)
        result = run_training(model_cfg, cfg, tok, train_data, valid_data, out, dev, resume, on_event,
                              overwrite, init_weights)
        # every rank done before any tears the group down: one whose peer has already gone can
        # abort in gloo's teardown (the 2-process test saw rank 1 end on SIGABRT once, under load)
        distributed.barrier()
        return result
    finally:
        distributed.shutdown()



def load(path="checkpoints/best.pt", device: str = "auto") -> "Model":
    """A trained model from a checkpoint (best.pt or last.pt), ready to use on `device`."""
    from sentvae.checkpoint import load_model
    from sentvae.model import resolve_device

    dev = resolve_device(device)
    net, tok, ckpt = load_model(path, dev)
    return Model(net, tok, ckpt, dev, str(path))


class Model:
    """A trained sentence VAE: sentences to codes and back, samples, interpolations, scores.

    Returned by `sentvae.load(path)`. Texts are lists of strings (one sentence each, not blank);
    codes are float tensors (N, latent). Decoding options, wherever sentences come out:
    max_len, sample (ancestral sampling instead of greedy; implied by temperature, top_k, top_p),
    temperature, top_k, top_p, beam (beam search width; 1 = off), length_penalty, seed.
    `stats`, where taken, is a dict to which input counts are added: "truncated" (sentences cut
    to max_len pieces) and "unk" (words holding characters the tokenizer maps to <unk>).
    Every option is checked against the domain its command-line flag declares (sentvae/
    command_config.py), with the same message: `model.sample(n=0)` raises SentvaeError
    "-n: must be an integer in [1, 2147483647], not 0", as `sentvae sample -n 0` says.
    """

    def __init__(self, net, tokenizer, checkpoint: dict, device, source: str = "<model>"):
        self.net, self.tokenizer, self.device, self.source = net, tokenizer, device, source
        self.config = net.cfg
        self.info = checkpoint.get("info", {})

    @property
    def latent(self) -> int:
        """The size of a code: nz, or for a categorical latent K (+ nz beside a Gaussian)."""
        from sentvae.model import code_size
        return code_size(self.config)

    @property
    def labels(self):
        """A labelled model's label vocabulary (sentvae.label_vocab.LabelVocab: .attributes, .values),
        or None."""
        return self.net.labels

    @property
    def posterior_params(self) -> tuple:
        """The names of q(z|x)'s parameters, as `encode` writes them (mu, logvar for the Gaussian)."""
        head = self.net.to_posterior
        return getattr(head, "param_names", None) or head.family.param_names

    def check_svi(self, svi_steps: int) -> None:
        """Refuse (one line naming --svi-steps) a refinement this model's posterior cannot take."""
        from sentvae.svi import check, refuse_labels
        if self.net.classifier is not None:
            refuse_labels(svi_steps)
        check(svi_steps, self.net.to_posterior.family)

    def __repr__(self) -> str:
        return (f"sentvae.Model({self.source!r}: {self.config.encoder} encoder, {self.config.decoder} decoder, "
                f"{self.config.posterior} latent {self.latent}, "
                f"{self.net.num_parameters():,} parameters, on {self.device})")

    # --- sentences -> codes
    def encode(self, texts: list[str], max_len: int = 100, stats: dict | None = None):
        """-> q(z|x) of each text: a posterior object of N sentences (sentvae/posteriors.py) with
        .mean() (N, latent), .params() (what `sentvae encode` writes: mu and logvar for the
        Gaussian), .rsample(), .log_prob(). `model.decode(model.encode(texts))` decodes the means."""
        from sentvae.latent import encode_texts
        max_len = check_option(TrainConfig, "max_len", max_len)
        return encode_texts(self.net, self.tokenizer, _texts(texts), max_len, self.device, stats=stats)

    def final_states(self, texts: list[str], max_len: int = 100, stats: dict | None = None):
        """(N, hidden) float32: each text's decoder state after its last word, the decoder
        conditioned on the posterior mean; for a --no-latent LM, its final hidden state. Features
        for `sentvae probe` (sentvae/features.py)."""
        from sentvae.features import final_states
        return final_states(self.net, self.tokenizer, _texts(texts), max_len, self.device, stats=stats)

    def codes(self, texts: list[str], posterior: str = "mean", seed: int = 0, stats: dict | None = None,
              first: int = 0):
        """One code per text (N, latent): the posterior mean, or a sample z ~ q(z|x), seeded by
        (seed, the text's position + first): a text's sample does not depend on its neighbours."""
        from sentvae.latent import codes
        o = GenerationConfig(posterior=posterior, seed=seed)
        return codes(self.net, self.tokenizer, _texts(texts), o.posterior, o.seed, self.device, stats, first)

    def infer(self, texts: list[str], max_len: int = 100, stats: dict | None = None):
        """-> (q(z|x) of each text, as `encode`; and a labelled model's q(c|x) of each text as
        `classify` gives it, or None)."""
        from sentvae.label_codes import described
        from sentvae.latent import infer_texts
        q, log_qc = infer_texts(self.net, self.tokenizer, _texts(texts), max_len, self.device, stats=stats)
        return q, None if log_qc is None else described(self.labels, log_qc)

    def classify(self, texts: list[str], max_len: int = 100, stats: dict | None = None) -> list[dict]:
        """A labelled model's q(c|x) of each text: {"label": {NAME: most likely VALUE},
        "probabilities": {NAME: {VALUE: probability}}}."""
        if self.labels is None:
            raise SentvaeError(f"classify: {self.source} has no labels (train it with --label-field, "
                               "--label-first-token or PATH@NAME=VALUE data)")
        return self.infer(texts, max_len, stats)[1]

    # --- codes -> sentences
    def decode(self, z, label=None, code_labels: list | None = None, **decoding) -> list[str]:
        """Sentences from codes z (N, latent) (a tensor or nested lists), or from a posterior (its
        means). A labelled model decodes with `label` ({NAME: VALUE} or ["NAME=VALUE"]), else each
        code's own labels if given (code_labels: per code, a {NAME: VALUE} dict as `encode` writes
        it, or None; or (where, dict) pairs, where naming the code in messages), else labels drawn
        from p(c), seeded by `seed`."""
        import torch
        from sentvae.codes import check_codes
        from sentvae.label_codes import from_prior, from_rows, request
        asked = request(label, self.labels, self.source)
        if hasattr(z, "mean") and hasattr(z, "rsample"):          # a posterior from encode()
            z = z.mean()
        z = check_codes(z, self.latent).to(self.device)     # finite float32 values, (N, latent)
        if hasattr(self.net.conditioner, "check"):          # a categorical part: on the simplex
            self.net.conditioner.check(z)
        c = None
        if self.labels is not None:
            gen = torch.Generator().manual_seed(decoding.get("seed", 0))
            if code_labels is None:
                c = from_prior(self.labels, asked, z.size(0), gen)
            else:
                rows = [row if isinstance(row, tuple) else (f"code {i + 1}", row) for i, row in enumerate(code_labels)]
                c = from_rows(self.labels, asked, rows, gen)
        return self._decode(z, c, **decoding)

    def _decode(self, z, c, **decoding) -> list[str]:
        """Codes z (N, latent) on the device and labels c (or None) -> sentences."""
        from sentvae.decode import decode
        if isinstance(c, list):
            c = [p.to(self.device) for p in c]
        elif c is not None:
            c = c.to(self.device)
        return self.tokenizer.decode(decode(self.net, z, decode_config(**decoding), c))

    def iter_sample(self, n: int, seed: int = 0, batch_size: int = 256, component: int | None = None,
                    category: int | None = None, label=None, **decoding):
        """Yield n sentences from the prior z ~ p(z) (of one component of a mixture prior, or with one
        value of a categorical latent, if given), batch_size codes at a time; a labelled model's with
        `label` ({NAME: VALUE} or ["NAME=VALUE"]), the attributes not given drawn from p(c)."""
        import torch
        from sentvae.label_codes import from_prior, request
        o = GenerationConfig(n=n, seed=seed, batch_size=batch_size, component=component, category=category)
        n, seed, batch_size, component, category = o.n, o.seed, o.batch_size, o.component, o.category
        decode_config(**decoding)                # checked now, not after the first batch
        asked = request(label, self.labels, self.source)
        prior, where = self.net.prior, {}
        if category is not None:
            count = getattr(prior, "categories", None)
            if count is None:
                raise SentvaeError(f"--category: {self.source} has no categorical latent (--latent-type categorical) "
                                   "to pick from")
            if category >= count:
                raise SentvaeError(f"--category: must be an integer in [0, {count - 1}], not {category!r}")
            where = {"category": category}
        if component is not None:
            count = getattr(prior, "components", None)
            if count is None:
                raise SentvaeError(f"--component: {self.source} has no mixture prior (--prior gmm) to pick from")
            if component >= count:
                raise SentvaeError(f"--component: must be an integer in [0, {count - 1}], not {component!r}")
            where = {"component": component}
        gen = torch.Generator().manual_seed(seed)
        for start in range(0, n, batch_size):
            count = min(batch_size, n - start)
            with torch.inference_mode():
                z = prior.sample(count, gen, **where).to(self.device)
            # after z, from the same stream: the same z whatever labels are asked for
            c = None if self.labels is None else from_prior(self.labels, asked, count, gen)
            # each batch its own sampling stream, reproducibly
            yield from self._decode(z, c, **{**decoding, "seed": stream_seed(seed, start)})

    def sample(self, n: int = 10, seed: int = 0, batch_size: int = 256, component: int | None = None,
               category: int | None = None, label=None, **decoding) -> list[str]:
        """n sentences from the prior z ~ p(z) (of one component of a mixture prior, or with one value
        of a categorical latent, if given); a labelled model's with `label` ({NAME: VALUE} or
        ["NAME=VALUE"]), the others drawn from p(c)."""
        return list(self.iter_sample(n, seed, batch_size, component, category, label, **decoding))

    def interpolate(self, a: str, b: str, steps: int = 8, method: str = "lerp", posterior: str = "mean",
                    seed: int = 0, label=None, **decoding) -> list[str]:
        """Sentences decoded at `steps` points from z(a) to z(b), endpoints included. A labelled
        model's labels move from q(c|a)'s most likely values to q(c|b)'s with z, but for those
        `label` holds ({NAME: VALUE} or ["NAME=VALUE"])."""
        import torch
        from sentvae.label_codes import from_classifier, path, request
        from sentvae.latent import code_of, infer_texts, lerp, slerp
        o = GenerationConfig(steps=steps, method=method, posterior=posterior, seed=seed)
        decode_config(**decoding)
        asked = request(label, self.labels, self.source)
        if o.method == "slerp" and self.config.latent_type != "gaussian":
            raise SentvaeError("--method slerp: a categorical code's category part lives on the simplex, which "
                               "a great circle leaves; use lerp (it mixes the categories' embeddings)")
        for name, s in (("A", a), ("B", b)):
            if not s.strip():
                raise SentvaeError(f"interpolate: sentence {name} is empty")
        q, log_qc = infer_texts(self.net, self.tokenizer, [a, b], device=self.device)
        z_ab = code_of(q, o.posterior, o.seed, 0, self.device)
        t = torch.linspace(0, 1, o.steps, device=self.device)
        z = (slerp if o.method == "slerp" else lerp)(z_ab[0], z_ab[1], t)
        c = None if log_qc is None else path(self.labels, asked, from_classifier(self.labels, {}, log_qc), t)
        return self._decode(z, c, **{**decoding, "seed": o.seed})

    def reconstruct(self, texts: list[str], posterior: str = "mean", seed: int = 0, stats: dict | None = None,
                    first: int = 0, decode_seed: int | None = None, label=None, **decoding) -> list[str]:
        """Encode then decode each text (a sampled code seeded as in `codes`; sampled words from
        decode_seed, by default seed). A labelled model decodes with q(c|x)'s most likely labels,
        but for those `label` sets ({NAME: VALUE} or ["NAME=VALUE"]): transfer, z from the text."""
        from sentvae.label_codes import from_classifier, request
        from sentvae.latent import code_of, infer_texts
        o = GenerationConfig(posterior=posterior, seed=seed)          # --posterior, --seed: before decode_seed
        decode_config(**{**decoding, "seed": seed if decode_seed is None else decode_seed})
        asked = request(label, self.labels, self.source)
        q, log_qc = infer_texts(self.net, self.tokenizer, _texts(texts), device=self.device, stats=stats)
        z = code_of(q, o.posterior, o.seed, first, self.device)
        c = None if log_qc is None else from_classifier(self.labels, asked, log_qc)
        return self._decode(z, c, **{**decoding, "seed": seed if decode_seed is None else decode_seed})

    # --- scores
    def score(self, texts: list[str], k: int = 500, seed: int = 0, max_tokens: int = 2000,
              max_len: int = 100, svi_steps: int = 0, svi_lr: float = SVI_LR) -> list[dict]:
        """Per sentence, as `sentvae eval --per-sentence`: index, words (+EOS), elbo (-ELBO),
        iw_nll (importance-weighted -log p(x), K = k), ess, kl; nats."""
        return list(self.evaluate(texts, k, seed, max_tokens, max_len, per_sentence=True, svi_steps=svi_steps,
                                  svi_lr=svi_lr).sentence_rows())

    def evaluate(self, texts, k: int = 500, seed: int = 0, max_tokens: int = 2000, max_len: int = 100,
                 per_sentence: bool = False, on_progress=None, svi_steps: int = 0, svi_lr: float = SVI_LR):
        """Every eval figure over texts (a list of strings, or a Corpus): -> EvalResult.
        svi_steps: first refine each sentence's posterior by that many gradient steps of size
        svi_lr on its own ELBO (semi-amortized inference, sentvae/svi.py)."""
        from sentvae.data import Corpus, corpus_from_texts
        from sentvae.evaluate import evaluate
        o = EvalConfig(iw_samples=k, max_tokens=max_tokens, seed=seed, svi_steps=svi_steps, svi_lr=svi_lr)
        max_len = check_option(TrainConfig, "max_len", max_len)
        corpus = texts if isinstance(texts, Corpus) else corpus_from_texts(_texts(texts), self.tokenizer, max_len)
        if len(corpus) == 0:
            raise SentvaeError("texts: no sentence to evaluate (the list is empty)")
        return evaluate(self.net, corpus, o.iw_samples, o.max_tokens, self.device, o.seed, on_progress=on_progress,
                        per_sentence=per_sentence, svi_steps=o.svi_steps, svi_lr=o.svi_lr)


DECODE_OPTIONS = tuple(f.name for f in fields(DecodeConfig))


def decode_config(**decoding) -> DecodeConfig:
    """Decoding options (max_len, sample, temperature, top_k, top_p, beam, length_penalty, seed) ->
    DecodeConfig, each checked (sampling is implied by temperature, top_k or top_p)."""
    unknown = sorted(set(decoding) - set(DECODE_OPTIONS))
    if unknown:
        raise SentvaeError(f"unknown decoding option(s): {', '.join(unknown)}")
    return DecodeConfig(**decoding)


def _texts(texts) -> list[str]:
    if isinstance(texts, str):
        raise SentvaeError("texts: give a list of sentences, not one string")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str) or not t.strip():
            raise SentvaeError(f"texts[{i}]: not a sentence ({t!r})")
    return texts
