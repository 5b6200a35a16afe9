"""The `sentvae` command line. Each command parses, calls the library, prints.

Heavy imports (torch, datasets, sentencepiece) happen inside the commands, so
`sentvae --help` answers at once. Data goes to stdout, everything else to stderr.
User errors (SentvaeError) are caught here only: one red line, exit 2 (or 1).
"""

import errno
import io
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from sentvae import __version__
from sentvae.cli_options import (DEFAULT_CKPT, DEFAULT_OUT, Checkpoint, Device, EncErr, Encoding, LabelFirstToken,
                                 Quiet, TextField, declared_option, load, with_options)
from sentvae.command_config import EvalConfig, check_option, given
from sentvae.config import ModelConfig, RunConfig, TrainConfig
from sentvae.errors import SentvaeError, TrainingInterrupted

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Train and use sentence variational autoencoders.")
_debug = False
FLAG = ""          # metavar of an on/off flag: nothing, rather than "<bool>" as if it took a value


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
@with_options(RunConfig, names=("model_type", "vocab_size", "encoding_errors", "text_field"))
def tokenize(
    data: Annotated[Optional[list[str]], typer.Argument(help="text files, one sentence per line; - or none for stdin")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="where to write the model")] = DEFAULT_OUT / "tokenizer.model",
    **options,
):
    """Train a SentencePiece tokenizer (pad 0, unk 1, bos 2, eos 3) and write it."""
    from sentvae.data import read_texts
    from sentvae.tokenizer import MAX_SENTENCE_BYTES, train_tokenizer
    from sentvae import console

    from sentvae.outputs import check_output

    run = RunConfig(**{k: v for k, v in options.items() if v is not None})
    paths = data or ["-"]
    if paths == ["-"] and sys.stdin.isatty():
        raise SentvaeError("tokenize: give text files, or pipe text on stdin")
    # said now, not after the training
    check_output(output, "-o", [("", p) for p in paths], make_folders=True)
    tok = train_tokenizer(read_texts(paths, run.encoding_errors, run.text_field, MAX_SENTENCE_BYTES), run.model_type,
                          run.vocab_size,
                          source=", ".join("<stdin>" if p == "-" else p for p in paths))
    try:
        tok.save(output)
    except OSError as e:
        raise SentvaeError(f"{output}: cannot write ({e.strerror})", 1) from None
    console.note(f"wrote {output}: {run.model_type} tokenizer with {tok.vocab_size} pieces")


@app.command()
@with_options(RunConfig, ModelConfig, TrainConfig)
def train(
    *,
    config: Annotated[Optional[Path], typer.Option("--config", help="a TOML recipe of these options (configs/*.toml); flags given here win", rich_help_panel="Output")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar or validation lines", rich_help_panel="Output")] = False,
    **options,
):
    """Train a sentence VAE (LSTM or Transformer); writes OUT/last.pt (resumable) and OUT/best.pt."""
    # --config is expanded into flags before parsing; the options not given are None
    given = {k: v for k, v in options.items() if v is not None}
    from sentvae import console, distributed
    from sentvae.launch import train as api_train

    quiet = quiet or distributed.launched() and os.environ.get("RANK", "0") != "0"
    progress = console.TrainProgress(quiet)
    try:
        result = api_train(on_event=progress, **given)
    finally:
        progress.close()
    if not quiet:
        best = result.best or {}
        latent = best.get("latent", result.model.cfg.latent)
        out = Path(given.get("out", RunConfig.out))
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
    from sentvae.label_vocab import LabelVocab
    from sentvae.model import facts
    from sentvae.tokenizer import Tokenizer

    ckpt = load_checkpoint(checkpoint)
    tok = Tokenizer(ckpt["tokenizer"], source=str(checkpoint))
    params = sum(v.numel() for v in ckpt["model"].values())
    cfg = ModelConfig.from_dict(ckpt["model_config"], source=str(checkpoint))    # an older file's: completed
    known = facts(cfg)
    summary = {"checkpoint": str(checkpoint), "format_version": ckpt["version"],
               "parameters": params, "vocab_size": tok.vocab_size,
               "resumable": "train_state" in ckpt, "model": cfg.to_dict(), **known,
               "train": ckpt.get("train_config", {}), **ckpt.get("info", {})}
    if as_json:
        print(json.dumps(summary))
        return
    info_ = ckpt.get("info", {})
    lines = [f"checkpoint   {checkpoint} (format {ckpt['version']}, "
             f"{'resumable' if summary['resumable'] else 'weights only'})",
             f"parameters   {params:,}; vocabulary {tok.vocab_size} pieces",
             "model        " + " ".join(f"{k}={_show(v)}" for k, v in summary["model"].items() if k != "labels"),
             *(["labels       " + "; ".join(f"{a}: {' | '.join(vals)}" for a, vals in LabelVocab.from_dict(cfg.labels).values.items())
                + f" (each value a {cfg.label_dim}-dim embedding the decoder reads beside z); p(c) {cfg.label_prior}"
                + (f" ({sum(n > 0 for n in cfg.labels['counts'])} of the {len(cfg.labels['counts'])} combinations "
                   "of values seen in training, add-one smoothed)" if cfg.label_prior == "joint" else "")]
               if cfg.labels else []),
             *([f"decoder      cnn, dilations {_show(cfg.dilations)}, kernel {cfg.kernel_size}: receptive field "
                f"{known['receptive_field']} (each next-word prediction sees the last {known['receptive_field']} input "
                f"tokens, and z)"]
               if "receptive_field" in known else []),
             *([f"latent       vmf, kappa {cfg.kappa:g} on the sphere S^{cfg.latent - 1}: KL fixed at "
                f"{known['kl_fixed']:.3f} nats per sentence"] if "kl_fixed" in known else []),
             "training     " + " ".join(f"{k}={v}" for k, v in summary["train"].items()),
             f"steps        {info_.get('step', '?')} (epoch {info_.get('epoch', '?')}), "
             f"{info_.get('train_seconds', 0):.0f} s"]
    v = info_.get("valid") or {}
    if v:
        lines.append(f"validation   -ELBO {v['elbo']:.3f}  rec {v['rec']:.3f}  KL {v['kl']:.3f}  "
                     f"AU {v['au']}/{v['latent']}  PPL<= {v['ppl_elbo']:.2f}  (at step {v['step']})"
                     + "".join(f"  acc({a}) {acc:.3f}" for a, acc in (v.get("accuracy") or {}).items()))
    print("\n".join(lines))


def _show(value) -> str:
    """A config value as `info` prints it: a tuple of ints as 1,2,4."""
    return ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


@app.command("eval")
def eval_(
    checkpoint: Checkpoint = DEFAULT_CKPT,
    data: Annotated[Optional[list[str]], typer.Option("--data", "-d", help="held-out text file(s), - for stdin \\[default: the bundled data/test.txt]")] = None,
    iw_samples: declared_option(EvalConfig, "iw_samples") = None,
    max_tokens: declared_option(EvalConfig, "max_tokens") = None,
    max_len: declared_option(TrainConfig, "max_len", panel=None) = None,   # eval truncates as training does
    seed: declared_option(EvalConfig, "seed") = None,
    device: Device = None,
    encoding_errors: EncErr = None,
    text_field: TextField = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object on stdout (also when stdout is not a terminal)")] = False,
    per_sentence: Annotated[Optional[Path], typer.Option(help="also write one JSON line per sentence here (index, words, elbo, iw_nll, ess, kl): for paired comparisons")] = None,
    svi_steps: declared_option(EvalConfig, "svi_steps") = None,
    svi_lr: declared_option(EvalConfig, "svi_lr") = None,
    quiet: Quiet = False,
    label_first_token: LabelFirstToken = None,
    encoding: Encoding = "utf-8",
):
    """ELBO, rec, KL, importance-weighted NLL and perplexity, mutual information, active units;
    for a labelled model, q(c|x)'s accuracy on labelled data (.jsonl/.csv fields named as its
    attributes, PATH@NAME=VALUE files, or --label-first-token lines)."""
    from sentvae import console
    from sentvae.data import bundled
    from sentvae.outputs import check_output
    from sentvae.corpus import load_corpus

    o = given(EvalConfig, iw_samples=iw_samples, max_tokens=max_tokens, seed=seed, svi_steps=svi_steps,
              svi_lr=svi_lr)
    max_len = check_option(TrainConfig, "max_len", TrainConfig.max_len if max_len is None else max_len)
    encoding_errors = encoding_errors or RunConfig.encoding_errors
    if per_sentence is not None:                                    # said now, not after the eval
        check_output(per_sentence, "--per-sentence", [("-c", checkpoint), *(("--data", p) for p in data or [])])
    model = load(checkpoint, device)
    model.check_svi(o.svi_steps)
    paths = data or [bundled("test", ".txt" if model.labels is None else ".jsonl")]
    if model.labels is None and label_first_token is not None:
        raise SentvaeError(f"--label-first-token: {checkpoint} has no labels")
    if model.labels is not None:       # the labels the data has, for q(c|x)'s accuracy
        from sentvae import label_data
        opts = label_data.eval_options(model.labels, paths, label_first_token, text_field or RunConfig.text_field, encoding,
                                       encoding_errors)
        texts, labels = label_data.read_held_out(paths, opts, model.labels, "--data")
        corpus = label_data.corpus(texts, labels, model.labels, model.tokenizer, max_len, paths)
    else:
        corpus = load_corpus(paths, model.tokenizer, max_len, encoding_errors, text_field or RunConfig.text_field)
    corpus.check_coverage()
    if not quiet:
        console.input_warnings(corpus.n_truncated, corpus.n_unk, f"--max-len {max_len}")
    with console.Counter("eval", len(corpus), disable=quiet) as progress:
        result = model.evaluate(corpus, o.iw_samples, o.seed, o.max_tokens, per_sentence=per_sentence is not None,
                                on_progress=progress, svi_steps=o.svi_steps, svi_lr=o.svi_lr)
    if per_sentence is not None:
        _write_lines(per_sentence, (json.dumps(r) for r in result.sentence_rows()))
    if result.iw_samples > 1 and result.ess < ESS_WARN_FRACTION * result.iw_samples:
        console.warn(f"degenerate importance weights: mean ESS {result.ess:.1f} of K = {result.iw_samples} "
                     f"(< {ESS_WARN_FRACTION:.0%}); the IW-NLL is then biased upwards by more than "
                     "its standard error shows: try a larger --iw-samples")
    report = {**result.to_dict(), "checkpoint": str(checkpoint), "data": corpus.source,
              "max_tokens": o.max_tokens}
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
    if "train" not in args or not any(a == "--config" or a.startswith("--config=") for a in args):
        return args
    from sentvae.recipe import expand

    i = args.index("train")
    return args[:i + 1] + expand(args[i + 1:], command.commands["train"].params)


def _register_commands() -> None:
    from sentvae import cli_generate
    from sentvae.cli_clusters import clusters
    from sentvae.cli_labels import classify
    from sentvae.cli_plot import plot
    from sentvae.cli_probe import probe

    if "sample" not in {c.name or c.callback.__name__ for c in app.registered_commands}:
        for fn in cli_generate.COMMANDS:
            app.command()(fn)
        app.command()(classify)
        app.command()(plot)
        app.command()(clusters)
        app.command()(probe)


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


def __getattr__(name: str):
    # `sentvae.cli.command`: the click command, built when asked for; the docs' command reference
    # (docs/reference/cli.md, generated by docs/hooks/cli_reference.py) reads it, so a new option
    # appears there by itself
    if name == "command":
        return build_command()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """Console entry point: runs the app and turns exceptions into exit codes."""
    # SIGTERM during training is handled by the training loop; elsewhere it ends quietly
    stdout_was_devnull = _stdout_is_devnull()
    if sys.stdout is None:                  # started with stdout closed (`>&-`): writing it fails below
        sys.stdout = ClosedStdout()
    try:
        command = build_command()
        args = _with_recipe(sys.argv[1:], command)
        rc = command(args=args, standalone_mode=False)
        sys.stdout.flush()                  # a full disk or device says so here, not at exit
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
    except OSError as e:     # writing the results to stdout (no file name); a file's own errors are SentvaeErrors
        if _debug:
            raise
        from sentvae.console import error
        error(f"{e.filename}: {e.strerror or e}" if e.filename else f"cannot write the output to stdout ({e.strerror or e})")
        _mute_stdout()
        sys.exit(1)
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
    _mute_stdout()
    sys.exit(0)


def _mute_stdout() -> None:
    """What stdout still holds goes nowhere: Python's flush at exit must not fail a second time."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):         # no descriptor at all (ClosedStdout)
        sys.stdout = open(os.devnull, "w")


class ClosedStdout(io.TextIOBase):
    """sys.stdout of a process started without one: any write is an OSError, as on a closed descriptor."""

    def write(self, s: str) -> int:
        raise OSError(errno.EBADF, "standard output is closed")

    def isatty(self) -> bool:
        return False


if __name__ == "__main__":
    main()
