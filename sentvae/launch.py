"""`sentvae.train`: how a run starts — the options resolved against their declarations, a
resumed run's frozen options and a start checkpoint's shape checked, the run folder locked — before
sentvae/trainer.py's loop runs. The API twin of `sentvae train` (sentvae/cli.py).

    import sentvae
    result = sentvae.train(data="corpus.txt", out="runs/a", epochs=4, kl_anneal="cyclical")

Options are the flags of `sentvae train` with underscores. Errors the user can fix raise
`sentvae.SentvaeError`; nothing is printed: progress and warnings reach `on_event(kind, info)`.
"""

from dataclasses import fields, replace
import os
from pathlib import Path

from sentvae.config import ModelConfig, RunConfig, TrainConfig
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
    ckpt = load_checkpoint(path, flag=flag)
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
    from sentvae.data import bundled, read_texts
    from sentvae.corpus import load_corpus, split_corpus
    from sentvae.label_vocab import LabelVocab
    from sentvae.label_prior import joint_counts
    from sentvae.model import latent_families, resolve_device
    from sentvae.objective import build_objective
    from sentvae.rundir import RunDir
    from sentvae.tokenizer import MAX_SENTENCE_BYTES, Tokenizer, train_tokenizer
    from sentvae.resume import resume_configs
    from sentvae.trainer import refuse_contradictions
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
    if "-" in train_paths and "-" in (valid_paths or []):
        raise SentvaeError("--valid -: stdin is read once, and --data - reads it: give the validation text as a file")
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
            if model_opts.get("label_prior") == "joint":      # p(c): the rows' combinations, in the checkpoint
                model_opts["labels"]["counts"] = joint_counts(labels, [len(v) for v in vocab.values.values()],
                                                              ", ".join(train_paths))
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
        if not resume and model_cfg.label_prior == "joint":    # p(c) from the rows it trains on, not the held-out
            model_cfg = replace(model_cfg, labels={**model_cfg.labels, "counts": joint_counts(
                train_data.labels, [len(v) for v in vocab.values.values()], ", ".join(train_paths))})
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
