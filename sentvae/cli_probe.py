"""`sentvae probe`: what a model's sentence representations know about a label, beside a
bag-of-words baseline and an LM's final states (sentvae/probe_run.py, sentvae/probe.py).

Registered on the app by cli.py; torch is imported inside the command.
"""

from pathlib import Path
from typing import Annotated, Optional

import typer

from sentvae.cli_options import DEFAULT_CKPT, Device, EncErr, Quiet, declared_option, load
from sentvae.command_config import ProbeConfig, check_option, given
from sentvae.config import RunConfig, TrainConfig
from sentvae.errors import SentvaeError

NAMES = {"majority": "majority class", "vae": "posterior mean", "lm": "LM final state", "bow": "bag of pieces (tf-idf)"}


def probe(
    checkpoint: Annotated[Path, typer.Argument(help="the model whose posterior means are probed")] = DEFAULT_CKPT,
    task: Annotated[Optional[list[str]], typer.Option("--task", "-t", help="labelled training sentences: 'label sentence' lines, FILE@NAME=VALUE for a file of one label, or .jsonl/.csv with --label-field (repeatable)")] = None,
    test: Annotated[Optional[list[str]], typer.Option(help="held-out labelled sentences, as --task: train/test instead of cross-validation (repeatable)")] = None,
    dev: Annotated[Optional[list[str]], typer.Option(help="with --test: labelled sentences that choose C (repeatable) \\[default: inner cross-validation]")] = None,
    lm: Annotated[Optional[Path], typer.Option(help="a --no-latent LM checkpoint: its final hidden state is the second baseline")] = None,
    label_field: Annotated[Optional[str], typer.Option(help="the field of .jsonl/.csv files holding the label")] = None,
    folds: declared_option(ProbeConfig, "folds") = None,
    inner_folds: declared_option(ProbeConfig, "inner_folds") = None,
    few: Annotated[Optional[str], typer.Option(help="the few-label curve: training sizes N,N,... drawn from --task, tested on --test")] = None,
    draws: declared_option(ProbeConfig, "draws") = None,
    seed: declared_option(ProbeConfig, "seed") = None,
    encoding: Annotated[str, typer.Option(help="the task files' encoding (latin-1 for MR's rt-polarity.all)")] = "utf-8",
    encoding_errors: EncErr = None,
    max_len: declared_option(TrainConfig, "max_len", panel=None) = None,
    device: Device = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object on stdout (also when stdout is not a terminal)")] = False,
    quiet: Quiet = False,
):
    """A logistic regression on the posterior means, beside a bag-of-words baseline and (--lm) an
    LM's final hidden states, on the same folds: 10-fold cross-validation of --task, or --task /
    --test (C chosen on --dev), or with --few the few-label curve."""
    import json

    from sentvae import console
    from sentvae.probe_run import run
    from sentvae.probe_tasks import read_set

    sizes = parse_sizes(few) if few is not None else None
    if not task:
        raise SentvaeError("--task: give the labelled sentences to probe with (--task FILE)")
    o = given(ProbeConfig, folds=folds, inner_folds=inner_folds, draws=draws, seed=seed)
    max_len = check_option(TrainConfig, "max_len", TrainConfig.max_len if max_len is None else max_len)
    read = dict(label_field=label_field, encoding=encoding,
                encoding_errors=encoding_errors or RunConfig.encoding_errors)
    train_set = read_set(task, "--task", **read)
    test_set = read_set(test, "--test", **read) if test else None
    dev_set = read_set(dev, "--dev", **read) if dev else None
    model = load(checkpoint, device)
    if lm is not None and not Path(lm).exists():
        raise SentvaeError(f"--lm {lm}: checkpoint not found")
    lm_model = load(lm, device) if lm is not None else None
    stats = {}
    report = run(model, train_set, test_set, dev_set, lm_model, o.folds, o.inner_folds, sizes, o.draws, o.seed, max_len,
                 stats)
    if not quiet:
        console.input_warnings(stats.get("truncated", 0), stats.get("unk", 0), f"--max-len {max_len}")
        table(report)
        _notes(report)
    if as_json or console.stdout_is_pipe():
        print(json.dumps(report))


def parse_sizes(text: str) -> list[int]:
    """'100,500,1000' -> [100, 500, 1000]: positive integers, one line for anything else."""
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise SentvaeError(f"--few {text}: expected sizes like 100,500,1000 (integers, comma-separated)") from None
    if not sizes or min(sizes) < 2:
        raise SentvaeError(f"--few {text}: every size must be >= 2")
    return sizes


def table(r: dict) -> None:
    """The report as a table on stderr: a row per feature set, or a row per few-label size."""
    from rich.table import Table
    from rich.text import Text

    from sentvae.console import err

    if r["protocol"] == "few-label":
        title = (f"{r['checkpoint']}: few-label curve, {r['draws']} draws per size from {r['pool']:,} "
                 f"sentences of {r['train']}, tested on {r['test_examples']:,} of {r['test']}; accuracy mean ± std (min-max)")
        names = [k for k in r["curve"][0] if k != "n"]
        t = Table(title=Text(title), title_justify="left")
        t.add_column("N", justify="right")
        for k in names:
            t.add_column(NAMES.get(k, k), justify="right")
        for point in r["curve"]:
            t.add_row(Text(f"{point['n']:,}"), *(Text(_cell(point[k])) for k in names))
        err.print(t)
        return
    if r["protocol"] == "cross-validation":
        how = (f"{r['folds']}-fold cross-validation of {r['examples']:,} sentences ({r['train']}); "
               f"C by {r['inner_folds']}-fold inner cross-validation")
    else:
        how = (f"train {r['train_examples']:,} ({r['train']}), test {r['test_examples']:,} ({r['test']}); "
               f"C chosen on {r['chosen_on']}")
    t = Table(title=Text(f"{r['checkpoint']}: {how}; {len(r['classes'])} classes"),
              title_justify="left")
    for name, justify in (("features", "left"), ("dim", "right"), ("accuracy", "right"),
                          ("std" if r["protocol"] == "cross-validation" else "s.e.", "right"),
                          ("min-max", "right"), ("C", "right")):
        t.add_column(name, justify=justify)
    for k, v in r["results"].items():
        spread = v.get("std") if r["protocol"] == "cross-validation" else v.get("se")
        chosen = v.get("C")
        t.add_row(Text(NAMES.get(k, k)), Text(str(v.get("dim", ""))),
                  Text(f"{v['accuracy']:.4f}"), Text("" if spread is None else f"{spread:.4f}"),
                  Text(f"{v['min']:.3f}-{v['max']:.3f}" if "min" in v else ""),
                  Text("" if chosen is None else (f"{chosen:g}" if not isinstance(chosen, list) else
                                                   f"{min(chosen):g}-{max(chosen):g}")))
    err.print(t)


def _cell(v: dict) -> str:
    std = "" if v["std"] is None else f" ± {v['std']:.3f}"
    return f"{v['accuracy']:.3f}{std} ({v['min']:.3f}-{v['max']:.3f})"


def _notes(r: dict) -> None:
    """Which LM the baseline is; fits lbfgs stopped before converging (said, not hidden)."""
    from sentvae import console

    if r.get("lm"):
        console.note(f"LM final state: {r['lm']}")
    rows = r["curve"] if r["protocol"] == "few-label" else [r["results"]]
    for k in NAMES:
        fits = [row[k] for row in rows if k in row and "fits" in row[k]]
        bad = sum(f["unconverged"] for f in fits)
        if bad:
            console.warn(f"{NAMES[k]}: {bad} of {sum(f['fits'] for f in fits)} fits stopped at lbfgs's "
                         "iteration limit before converging")
