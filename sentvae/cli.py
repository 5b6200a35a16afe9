"""The `sentvae` command line. Each command parses, calls the library, prints.

Heavy imports (torch, datasets, sentencepiece) happen inside the commands, so
`sentvae --help` answers at once. Data goes to stdout, everything else to stderr.
User errors (SentvaeError) are caught here only: one red line, exit 2 (or 1).
"""

import json
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from sentvae import __version__
from sentvae.cli_options import (DEFAULT_CKPT, DEFAULT_OUT, Anneal, Arch, Checkpoint, Device, EncErr,
                                 EncodingErrors, FreeBitsOver, LRSchedule, ModelType, Optimizer, Precision, TrainOnly,
                                 Quiet, TextField, load)
from sentvae.config import ModelConfig, TrainConfig
from sentvae.errors import SentvaeError, TrainingInterrupted

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Train and use sentence variational autoencoders.")
_debug = False
FLAG = ""          # metavar of an on/off flag: nothing, rather than "<bool>" as if it took a value


def _d(cls, name) -> str:
    # escaped: rich would take a bare "[default: 256]" for markup and print nothing
    return f" \\[default: {getattr(cls, name)}]"


def _version(value: bool) -> None:
    if value:
        print(f"sentvae {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="show full tracebacks on errors")] = False,
    version: Annotated[bool, typer.Option("--version", "-V", is_eager=True, callback=_version,
                                          help="print the version and exit")] = False,
):
    """Train and use sentence variational autoencoders (Bowman et al. 2016).

    Run `sentvae train` in the repository root to train on the bundled corpus, then
    `sentvae sample`, `sentvae interpolate A B`, `sentvae info`, `sentvae plot checkpoints`.
    """
    global _debug
    _debug = debug


@app.command()
def tokenize(
    data: Annotated[Optional[list[str]], typer.Argument(help="text files, one sentence per line; - or none for stdin")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="where to write the model")] = DEFAULT_OUT / "tokenizer.model",
    model_type: Annotated[ModelType, typer.Option(help="SentencePiece model type")] = ModelType.bpe,
    vocab_size: Annotated[int, typer.Option(help="pieces wanted (a small corpus may give fewer)")] = 8000,
    encoding_errors: EncErr = EncodingErrors.strict,
    text_field: TextField = "text",
):
    """Train a SentencePiece tokenizer (pad 0, unk 1, bos 2, eos 3) and write it."""
    from sentvae.data import read_texts
    from sentvae.tokenizer import MAX_SENTENCE_BYTES, train_tokenizer
    from sentvae import console

    from sentvae.atomic import output_problem

    paths = data or ["-"]
    if paths == ["-"] and sys.stdin.isatty():
        raise SentvaeError("tokenize: give text files, or pipe text on stdin")
    if output_problem(output, make_folders=True):          # said now, not after the training
        raise SentvaeError(f"-o {output}: {output_problem(output, make_folders=True)}")
    tok = train_tokenizer(read_texts(paths, encoding_errors.value, text_field, MAX_SENTENCE_BYTES), model_type.value, vocab_size,
                          source=", ".join("<stdin>" if p == "-" else p for p in paths))
    try:
        tok.save(output)
    except OSError as e:
        raise SentvaeError(f"{output}: cannot write ({e.strerror})", 1) from None
    console.note(f"wrote {output}: {model_type.value} tokenizer with {tok.vocab_size} pieces")


@app.command()
def train(
    data: Annotated[Optional[list[str]], typer.Option("--data", "-d", help="training data: text (one sentence per line), .jsonl, .csv, - for stdin, or hf:NAME[:CONFIG] \\[default: the bundled data/train.txt]", rich_help_panel="Data")] = None,
    valid: Annotated[Optional[list[str]], typer.Option(help="validation text file(s) \\[default: bundled data/valid.txt, or 5% held out of --data]", rich_help_panel="Data")] = None,
    max_tokens: Annotated[Optional[int], typer.Option(help="padded tokens per batch" + _d(TrainConfig, "max_tokens"), rich_help_panel="Data")] = None,
    max_len: Annotated[Optional[int], typer.Option(help="pieces per sentence; longer ones are truncated" + _d(TrainConfig, "max_len"), rich_help_panel="Data")] = None,
    encoding_errors: Annotated[EncodingErrors, typer.Option(help="on invalid UTF-8: stop (strict) or use U+FFFD", rich_help_panel="Data")] = EncodingErrors.strict,
    text_field: Annotated[str, typer.Option(help="the field holding the text in .jsonl/.csv/hf: data", rich_help_panel="Data")] = "text",
    tokenizer: Annotated[Optional[Path], typer.Option(help="a tokenizer from `sentvae tokenize` \\[default: train one]", rich_help_panel="Tokenizer")] = None,
    model_type: Annotated[ModelType, typer.Option(help="tokenizer type when training one", rich_help_panel="Tokenizer")] = ModelType.bpe,
    vocab_size: Annotated[int, typer.Option(help="tokenizer size when training one", rich_help_panel="Tokenizer")] = 8000,
    arch: Annotated[Optional[Arch], typer.Option(help="encoder/decoder architecture \\[default: lstm]", rich_help_panel="Model")] = None,
    emb_dim: Annotated[Optional[int], typer.Option(help="embedding size" + _d(ModelConfig, "emb_dim"), rich_help_panel="Model")] = None,
    hidden: Annotated[Optional[int], typer.Option(help="LSTM hidden size" + _d(ModelConfig, "hidden"), rich_help_panel="Model")] = None,
    d_model: Annotated[Optional[int], typer.Option(help="transformer width (sets --emb-dim and --hidden)", rich_help_panel="Model")] = None,
    no_latent: Annotated[Optional[bool], typer.Option("--no-latent", help="LM baseline: the same decoder without z (KL 0; eval gives its exact NLL)", rich_help_panel="Model")] = None,
    layers: Annotated[Optional[int], typer.Option(help="encoder and decoder layers (sets both)", rich_help_panel="Model")] = None,
    heads: Annotated[Optional[int], typer.Option(help="transformer attention heads" + _d(ModelConfig, "heads"), rich_help_panel="Model")] = None,
    ff: Annotated[Optional[int], typer.Option(help="transformer feed-forward width" + _d(ModelConfig, "ff"), rich_help_panel="Model")] = None,
    latent: Annotated[Optional[int], typer.Option(help="latent size nz" + _d(ModelConfig, "latent"), rich_help_panel="Model")] = None,
    enc_layers: Annotated[Optional[int], typer.Option(help="encoder layers" + _d(ModelConfig, "enc_layers"), rich_help_panel="Model")] = None,
    dec_layers: Annotated[Optional[int], typer.Option(help="decoder layers" + _d(ModelConfig, "dec_layers"), rich_help_panel="Model")] = None,
    bidirectional: Annotated[Optional[bool], typer.Option("--bidirectional/--unidirectional", help="encoder direction" + _d(ModelConfig, "bidirectional"), rich_help_panel="Model")] = None,
    dropout: Annotated[Optional[float], typer.Option(help="dropout on the decoder's input embeddings and outputs (and the encoder's, unless --enc-dropout)" + _d(ModelConfig, "dropout"), rich_help_panel="Model")] = None,
    enc_dropout: Annotated[Optional[float], typer.Option(help="dropout on the encoder's input embeddings \\[default: --dropout]", rich_help_panel="Model")] = None,
    init_decoder: Annotated[Optional[Path], typer.Option(help="start the embedding, decoder and output layer from this checkpoint (e.g. a converged --no-latent LM), with its tokenizer and shape; z's weights start at 0, so the VAE starts out predicting exactly as the LM", rich_help_panel="Model")] = None,
    init_from: Annotated[Optional[Path], typer.Option(help="start every weight from this checkpoint (a fine-tune: its tokenizer and shape, a fresh optimizer and schedule; e.g. SGD after AdamW)", rich_help_panel="Model")] = None,
    kl_anneal: Annotated[Optional[Anneal], typer.Option(help="KL weight schedule" + _d(TrainConfig, "kl_anneal"), rich_help_panel="Objective")] = None,
    anneal_steps: Annotated[Optional[int], typer.Option(help="steps for linear/logistic to reach 1" + _d(TrainConfig, "anneal_steps"), rich_help_panel="Objective")] = None,
    cycles: Annotated[Optional[int], typer.Option(help="cyclical: cycles over the run" + _d(TrainConfig, "cycles"), rich_help_panel="Objective")] = None,
    cycle_ratio: Annotated[Optional[float], typer.Option(help="cyclical: ramp fraction of a cycle" + _d(TrainConfig, "cycle_ratio"), rich_help_panel="Objective")] = None,
    word_dropout: Annotated[Optional[float], typer.Option(help="decoder input -> UNK probability" + _d(TrainConfig, "word_dropout"), rich_help_panel="Objective")] = None,
    free_bits: Annotated[Optional[float], typer.Option(help="KL floor per latent dim, nats" + _d(TrainConfig, "free_bits"), rich_help_panel="Objective")] = None,
    free_bits_over: Annotated[Optional[FreeBitsOver], typer.Option(help="the floor is on each dim's batch-mean KL, or on each sentence's (Li et al.'s code)" + _d(TrainConfig, "free_bits_over"), rich_help_panel="Objective")] = None,
    beta: Annotated[Optional[float], typer.Option(help="final KL weight" + _d(TrainConfig, "beta"), rich_help_panel="Objective")] = None,
    bow_weight: Annotated[Optional[float], typer.Option(help="bag-of-words loss weight (Zhao et al. 2017); adds a head on z" + _d(TrainConfig, "bow_weight"), rich_help_panel="Objective")] = None,
    aggressive: Annotated[Optional[bool], typer.Option("--aggressive", help="aggressive inference-network training until validation MI stops rising (He et al. 2019)", rich_help_panel="Objective")] = None,
    aggressive_every: Annotated[Optional[int], typer.Option(help="--aggressive: check validation MI every N steps, 0 = once an epoch (an aggressive epoch costs ~16 plain ones)" + _d(TrainConfig, "aggressive_every"), rich_help_panel="Objective")] = None,
    train_only: Annotated[Optional[TrainOnly], typer.Option(help="encoder: update only the encoder and posterior head of an --init-from model (its decoder, and so p(x), kept; the bound tightens)" + _d(TrainConfig, "train_only"), rich_help_panel="Objective")] = None,
    pretrain_steps: Annotated[Optional[int], typer.Option(help="autoencoder pretraining steps, then a decoder reset (Li et al. 2019)" + _d(TrainConfig, "pretrain_steps"), rich_help_panel="Objective")] = None,
    lr: Annotated[Optional[float], typer.Option(help="learning rate (AdamW ~2e-3; SGD ~1.0)" + _d(TrainConfig, "lr"), rich_help_panel="Optimisation")] = None,
    optimizer: Annotated[Optional[Optimizer], typer.Option(help="adamw, or plain sgd as in the published PTB recipes" + _d(TrainConfig, "optimizer"), rich_help_panel="Optimisation")] = None,
    momentum: Annotated[Optional[float], typer.Option(help="sgd: momentum" + _d(TrainConfig, "momentum"), rich_help_panel="Optimisation")] = None,
    lr_schedule: Annotated[Optional[LRSchedule], typer.Option(help="plateau: decay on validation plateaus; cosine: to --min-lr at the end" + _d(TrainConfig, "lr_schedule"), rich_help_panel="Optimisation")] = None,
    lr_decay: Annotated[Optional[float], typer.Option(help="plateau: factor applied on each plateau" + _d(TrainConfig, "lr_decay"), rich_help_panel="Optimisation")] = None,
    patience: Annotated[Optional[int], typer.Option(help="plateau: validations without improvement before a decay" + _d(TrainConfig, "patience"), rich_help_panel="Optimisation")] = None,
    max_decays: Annotated[Optional[int], typer.Option(help="plateau: the plateau after this many decays ends the run" + _d(TrainConfig, "max_decays"), rich_help_panel="Optimisation")] = None,
    min_improvement: Annotated[Optional[float], typer.Option(help="plateau and --early-stop: nats a validation -ELBO must fall below the best to count as improving (best.pt follows any improvement)" + _d(TrainConfig, "min_improvement"), rich_help_panel="Optimisation")] = None,
    decay_restart: Annotated[Optional[bool], typer.Option("--decay-restart/--no-decay-restart", help="plateau: on a decay, go back to the best weights with a fresh optimizer state" + _d(TrainConfig, "decay_restart"), rich_help_panel="Optimisation")] = None,
    warmup_steps: Annotated[Optional[int], typer.Option(help="linear learning-rate warm-up steps" + _d(TrainConfig, "warmup_steps"), rich_help_panel="Optimisation")] = None,
    min_lr: Annotated[Optional[float], typer.Option(help="cosine: the rate at the last step" + _d(TrainConfig, "min_lr"), rich_help_panel="Optimisation")] = None,
    weight_decay: Annotated[Optional[float], typer.Option(help="weight decay (AdamW: decoupled; SGD: L2)" + _d(TrainConfig, "weight_decay"), rich_help_panel="Optimisation")] = None,
    grad_clip: Annotated[Optional[float], typer.Option(help="gradient norm clip, 0 = off" + _d(TrainConfig, "grad_clip"), rich_help_panel="Optimisation")] = None,
    seed: Annotated[Optional[int], typer.Option(help="random seed" + _d(TrainConfig, "seed"), rich_help_panel="Optimisation")] = None,
    early_stop: Annotated[Optional[int], typer.Option(help="stop after N validations without improvement, 0 = off" + _d(TrainConfig, "early_stop"), rich_help_panel="Stopping")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="passes over the data, 0 = no limit" + _d(TrainConfig, "epochs"), rich_help_panel="Stopping")] = None,
    max_steps: Annotated[Optional[int], typer.Option(help="optimizer steps, 0 = no limit" + _d(TrainConfig, "max_steps"), rich_help_panel="Stopping")] = None,
    time_budget: Annotated[Optional[float], typer.Option(help="seconds of training in this run, 0 = no limit" + _d(TrainConfig, "time_budget"), rich_help_panel="Stopping")] = None,
    precision: Annotated[Optional[Precision], typer.Option(help="autocast precision (fp16: CUDA only, with a GradScaler)" + _d(TrainConfig, "precision"), rich_help_panel="Hardware")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N", rich_help_panel="Hardware")] = "auto",
    detect_anomaly: Annotated[bool, typer.Option("--detect-anomaly", help="torch autograd anomaly detection (slow; finds the op making a NaN)", rich_help_panel="Hardware")] = False,
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for last.pt, best.pt, tokenizer.model, metrics.jsonl", rich_help_panel="Output")] = DEFAULT_OUT,
    resume: Annotated[bool, typer.Option("--resume", help="continue exactly from OUT/last.pt", rich_help_panel="Output")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace the run already in OUT (its last.pt, best.pt, metrics.jsonl)", rich_help_panel="Output")] = False,
    config: Annotated[Optional[Path], typer.Option("--config", help="a TOML recipe of these options (configs/*.toml); flags given here win", rich_help_panel="Output")] = None,
    eval_every: Annotated[Optional[int], typer.Option(help="validate and save every N steps" + _d(TrainConfig, "eval_every"), rich_help_panel="Output")] = None,
    log_every: Annotated[Optional[int], typer.Option(help="log figures every N steps" + _d(TrainConfig, "log_every"), rich_help_panel="Output")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar or validation lines", rich_help_panel="Output")] = False,
):
    """Train a sentence VAE (LSTM or Transformer); writes OUT/last.pt (resumable) and OUT/best.pt."""
    given = {k: v.value if isinstance(v, Enum) else v for k, v in locals().items()
             if v is not None and k not in ("quiet", "config")}      # --config is expanded before parsing
    from sentvae import console, distributed
    from sentvae.api import train as api_train

    quiet = quiet or distributed.launched() and os.environ.get("RANK", "0") != "0"
    progress = console.TrainProgress(quiet)
    try:
        result = api_train(on_event=progress, **given)
    finally:
        progress.close()
    if not quiet:
        best = result.best or {}
        latent = result.model.cfg.latent
        console.note(f"done ({result.stopped}) at step {result.position.step}; best valid -ELBO "
                     f"{best.get('elbo', float('nan')):.2f} (KL {best.get('kl', float('nan')):.2f}, "
                     f"AU {best.get('au', 0)}/{latent}) -> {out / 'best.pt'}")


@app.command()
def info(
    checkpoint: Annotated[Path, typer.Argument(help="checkpoint file")] = DEFAULT_CKPT,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object on stdout")] = False,
):
    """Show what a checkpoint holds: config, parameters, steps, validation figures."""
    from sentvae.checkpoint import load_checkpoint
    from sentvae.tokenizer import Tokenizer

    ckpt = load_checkpoint(checkpoint)
    tok = Tokenizer(ckpt["tokenizer"], source=str(checkpoint))
    params = sum(v.numel() for v in ckpt["model"].values())
    summary = {"checkpoint": str(checkpoint), "format_version": ckpt["version"],
               "parameters": params, "vocab_size": tok.vocab_size,
               "resumable": "train_state" in ckpt, "model": ckpt["model_config"],
               "train": ckpt.get("train_config", {}), **ckpt.get("info", {})}
    if as_json:
        print(json.dumps(summary))
        return
    info_ = ckpt.get("info", {})
    lines = [f"checkpoint   {checkpoint} (format {ckpt['version']}, "
             f"{'resumable' if summary['resumable'] else 'weights only'})",
             f"parameters   {params:,}; vocabulary {tok.vocab_size} pieces",
             "model        " + " ".join(f"{k}={v}" for k, v in ckpt["model_config"].items()),
             "training     " + " ".join(f"{k}={v}" for k, v in summary["train"].items()),
             f"steps        {info_.get('step', '?')} (epoch {info_.get('epoch', '?')}), "
             f"{info_.get('train_seconds', 0):.0f} s"]
    v = info_.get("valid") or {}
    if v:
        lines.append(f"validation   -ELBO {v['elbo']:.3f}  rec {v['rec']:.3f}  KL {v['kl']:.3f}  "
                     f"AU {v['au']}/{v['latent']}  PPL<= {v['ppl_elbo']:.2f}  (at step {v['step']})")
    print("\n".join(lines))


@app.command("eval")
def eval_(
    checkpoint: Checkpoint = DEFAULT_CKPT,
    data: Annotated[Optional[list[str]], typer.Option("--data", "-d", help="held-out text file(s), - for stdin \\[default: the bundled data/test.txt]")] = None,
    iw_samples: Annotated[int, typer.Option("--iw-samples", "-k", help="importance samples K per sentence")] = 500,
    max_tokens: Annotated[int, typer.Option(help="decoder tokens per call (bounds memory for any K)")] = 2000,
    max_len: Annotated[int, typer.Option(help="pieces per sentence; longer ones are truncated")] = 100,
    seed: Annotated[int, typer.Option(help="random seed for z ~ q(z|x)")] = 0,
    device: Device = "auto",
    encoding_errors: EncErr = EncodingErrors.strict,
    text_field: TextField = "text",
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object on stdout (also when stdout is not a terminal)")] = False,
    per_sentence: Annotated[Optional[Path], typer.Option(help="also write one JSON line per sentence here (index, words, elbo, iw_nll, ess, kl): for paired comparisons")] = None,
    quiet: Quiet = False,
):
    """ELBO, rec, KL, importance-weighted NLL and perplexity, mutual information, active units."""
    from sentvae import console
    from sentvae.atomic import output_problem
    from sentvae.data import bundled, load_corpus

    if iw_samples < 1:
        raise SentvaeError(f"--iw-samples: must be >= 1, not {iw_samples}")
    if max_tokens < 1:
        raise SentvaeError(f"--max-tokens: must be >= 1, not {max_tokens}")
    if per_sentence is not None and output_problem(per_sentence):   # said now, not after the eval
        raise SentvaeError(f"--per-sentence {per_sentence}: {output_problem(per_sentence)}")
    paths = data or [bundled("test")]
    model = load(checkpoint, device)
    corpus = load_corpus(paths, model.tokenizer, max_len, encoding_errors.value, text_field)
    corpus.check_coverage()
    if not quiet:
        console.input_warnings(corpus.n_truncated, corpus.n_unk, f"--max-len {max_len}")
    with console.Counter("eval", len(corpus), disable=quiet) as progress:
        result = model.evaluate(corpus, iw_samples, seed, max_tokens, per_sentence=per_sentence is not None,
                                on_progress=progress)
    if per_sentence is not None:
        _write_lines(per_sentence, (json.dumps(r) for r in result.sentence_rows()))
    if result.iw_samples > 1 and result.ess < ESS_WARN_FRACTION * result.iw_samples:
        console.warn(f"degenerate importance weights: mean ESS {result.ess:.1f} of K = {result.iw_samples} "
                     f"(< {ESS_WARN_FRACTION:.0%}); the IW-NLL is then biased upwards by more than "
                     "its standard error shows: try a larger --iw-samples")
    report = {**result.to_dict(), "checkpoint": str(checkpoint), "data": corpus.source,
              "max_tokens": max_tokens}
    if not quiet:
        console.eval_table(report)
    if as_json or console.stdout_is_pipe():
        print(json.dumps(report))


ESS_WARN_FRACTION = 0.01   # mean ESS below this fraction of K: a few weights carry the estimate


def _write_lines(path: Path, lines) -> None:
    """Text lines to a file, atomically: a failure never leaves half a file or clobbers one."""
    from sentvae.atomic import write_atomically
    try:
        write_atomically(path, lambda f: f.writelines((line + "\n").encode() for line in lines))
    except OSError as e:
        raise SentvaeError(f"{path}: cannot write ({e.strerror})", 1) from None


def _with_recipe(args: list[str], command) -> list[str]:
    """`train --config FILE`: the file's options become flags before the typed ones."""
    if "train" not in args or "--config" not in args:
        return args
    from sentvae.recipe import expand

    i = args.index("train")
    return args[:i + 1] + expand(args[i + 1:], command.commands["train"].params)


def _register_commands() -> None:
    from sentvae import cli_generate
    from sentvae.cli_plot import plot

    if "sample" not in {c.name or c.callback.__name__ for c in app.registered_commands}:
        for fn in cli_generate.COMMANDS:
            app.command()(fn)
        app.command()(plot)


def build_command():
    """The click command behind `sentvae`: every command registered, and on/off flags shown
    without a value placeholder (typer would print `--help <bool>`, as if it took one)."""
    _register_commands()
    command = typer.main.get_command(app)
    ctx = typer.Context(command, help_option_names=["-h", "--help"])
    for cmd in [command, *command.commands.values()]:
        help_option = cmd.get_help_option(ctx)
        if help_option is not None:
            help_option.metavar = FLAG
        for param in cmd.params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = FLAG
    return command


def main() -> None:
    """Console entry point: runs the app and turns exceptions into exit codes."""
    # SIGTERM during training is handled by the training loop; elsewhere it ends quietly
    stdout_was_devnull = _stdout_is_devnull()
    try:
        command = build_command()
        args = _with_recipe(sys.argv[1:], command)
        rc = command(args=args, standalone_mode=False)
    except SentvaeError as e:
        if _debug:
            raise
        from sentvae.console import error
        error(str(e))
        sys.exit(e.exit_code)
    except TrainingInterrupted as e:
        from sentvae.console import note
        note(f"stopped: {e}")
        sys.exit(130)
    except typer.Abort:
        sys.exit(130)
    except typer.TyperException as e:  # usage errors from the (vendored) click parser
        ctx = getattr(e, "ctx", None)
        if type(e).__name__ == "NoArgsIsHelpError" and ctx is not None:
            print(ctx.get_help())
            sys.exit(0)
        from sentvae.console import error
        message = e.format_message().replace("\n", " ").replace("Value error, ", "")
        error(message + (f" (see `{ctx.command_path} --help`)" if ctx is not None else ""))
        sys.exit(getattr(e, "exit_code", 2))
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        _closed_pipe()
    except SystemExit as e:
        # typer and rich answer a closed stdout (EPIPE) with exit 1, after wrapping the streams
        # (typer) or pointing stdout at /dev/null (rich, printing help): for us the reader going
        # away (`| head -1`) is a normal end
        if e.code == 1 and (type(sys.stdout).__name__ == "PacifyFlushWrapper"
                            or (_stdout_is_devnull() and not stdout_was_devnull)):
            _closed_pipe()
        raise
    sys.exit(rc or 0)


def _stdout_is_devnull() -> bool:
    try:
        return os.path.samestat(os.fstat(sys.stdout.fileno()), os.stat(os.devnull))
    except (OSError, ValueError, AttributeError):
        return False


def _closed_pipe() -> None:
    """The reader went away: end quietly with 0, and keep Python from complaining again when it
    flushes stdout at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(0)


if __name__ == "__main__":
    main()
