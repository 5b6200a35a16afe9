"""The Python face of sentvae: what the command line does, as functions and one model object.

    import sentvae
    result = sentvae.train(data="corpus.txt", out="runs/a", epochs=4, kl_anneal="cyclical")
    model = sentvae.load("runs/a/best.pt")

`train` takes the options of `sentvae train` as keyword arguments (flag names with
underscores). Errors the user can fix raise `sentvae.SentvaeError`; nothing is printed: progress
and warnings reach `on_event(kind, info)` if given.
"""

from contextlib import nullcontext
from dataclasses import fields
from pathlib import Path

from sentvae.config import ModelConfig, TrainConfig
from sentvae.errors import SentvaeError

MODEL_OPTIONS = ("arch", "emb_dim", "hidden", "latent", "enc_layers", "dec_layers", "bidirectional",
                 "dropout", "enc_dropout", "heads", "ff", "no_latent")
TRAIN_OPTIONS = tuple(f.name for f in fields(TrainConfig))


def _paths(value) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, (str, Path)):
        return [str(value)]
    return [str(v) for v in value]


def train(data=None, *, valid=None, out="checkpoints", tokenizer=None, model_type: str = "bpe",
          vocab_size: int = 8000, resume: bool = False, overwrite: bool = False, device: str = "auto",
          encoding_errors: str = "strict", text_field: str = "text", detect_anomaly: bool = False,
          d_model: int | None = None, layers: int | None = None, on_event=None, **options):
    """Train a sentence VAE as `sentvae train` does; -> sentvae.train.TrainResult.

    data / valid: a path or a list of paths (text, .jsonl, .csv, "-" for stdin, hf:NAME);
    default: the bundled corpus. out: the run folder (locked while training; one that holds a
    run needs resume=True or overwrite=True). options: any `sentvae train` option, e.g.
    arch="transformer", latent=16, epochs=2, lr=1e-3, kl_anneal="cyclical", lr_schedule="plateau".
    on_event(kind, info): "input" (what reading changed), "start", "step", "log", "valid", "end".
    """
    from sentvae import distributed
    from sentvae.data import bundled, load_corpus, read_texts, split_corpus
    from sentvae.model import resolve_device
    from sentvae.rundir import RunDir
    from sentvae.tokenizer import Tokenizer, train_tokenizer
    from sentvae.train import resume_configs
    from sentvae.train import train as run_training

    unknown = sorted(set(options) - set(MODEL_OPTIONS) - set(TRAIN_OPTIONS))
    if unknown:
        raise SentvaeError(f"unknown train option(s): {', '.join(unknown)}")
    emit = on_event or (lambda kind, info: None)
    out = Path(out)
    model_opts = {k: v for k, v in options.items() if k in MODEL_OPTIONS}
    if d_model is not None:
        model_opts["emb_dim"] = model_opts["hidden"] = d_model
    if layers is not None:
        model_opts["enc_layers"] = model_opts["dec_layers"] = layers
    if options.get("bow_weight", 0) > 0:
        model_opts["bow"] = True             # the loss needs its head
    train_opts = {k: v for k, v in options.items() if k in TRAIN_OPTIONS}
    if resume and overwrite:
        raise SentvaeError("--overwrite: cannot be used with --resume (continue the run, or replace it)")
    dev = distributed.setup(resolve_device(device))      # joins torchrun's process group, if any
    rank, _ = distributed.rank_world()
    RunDir(out, resume, overwrite).check()   # a run already there: refused before any work
    if resume:
        model_cfg, saved, tok = resume_configs(out)
        for k, v in model_opts.items():      # the same command line plus --resume is fine
            if getattr(model_cfg, k) != v:
                raise SentvaeError(f"--{k.replace('_', '-')}: the model cannot change on --resume "
                                   f"(last.pt has {getattr(model_cfg, k)}, not {v})")
        cfg = TrainConfig.from_dict({**saved, **train_opts})
    else:
        cfg = TrainConfig(**train_opts)
    train_paths = _paths(data) or [bundled("train")]
    valid_paths = _paths(valid) or ([bundled("valid")] if data is None else None)
    if not resume:
        if tokenizer is not None:
            tok = Tokenizer.load(tokenizer)
        else:
            if "-" in train_paths:
                raise SentvaeError("--data -: training from stdin needs --tokenizer (make one with "
                                   "`sentvae tokenize`), since the text cannot be read twice")
            proto = None
            if rank == 0:
                proto = train_tokenizer(read_texts(train_paths, encoding_errors, text_field), model_type,
                                        vocab_size, source=", ".join(train_paths)).proto
            tok = Tokenizer(distributed.broadcast_bytes(proto))   # rank 0's, byte for byte
        model_cfg = ModelConfig(vocab_size=tok.vocab_size, **model_opts)
    train_data = load_corpus(train_paths, tok, cfg.max_len, encoding_errors, text_field)
    if valid_paths:
        valid_data = load_corpus(valid_paths, tok, cfg.max_len, encoding_errors, text_field)
    else:
        train_data, valid_data = split_corpus(train_data, seed=cfg.seed)
    for name, c in (("training", train_data), ("validation", valid_data)):
        c.check_coverage()
        emit("input", {"what": name, "truncated": c.n_truncated, "unk": c.n_unk,
                       "limit": f"--max-len {cfg.max_len}"})
    if detect_anomaly:
        import torch
        torch.autograd.set_detect_anomaly(True)
    try:
        # every input is read and checked: now the folder is locked and written
        with RunDir(out, resume, overwrite) if rank == 0 else nullcontext():
            if rank == 0 and not resume:
                try:
                    tok.save(out / "tokenizer.model")
                except OSError as e:
                    raise SentvaeError(f"{out / 'tokenizer.model'}: cannot write ({e.strerror}); "
                                       "nothing else was written", 1) from None
            return run_training(model_cfg, cfg, tok, train_data, valid_data, out, dev, resume, on_event, overwrite)
    finally:
        distributed.shutdown()

