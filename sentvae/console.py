"""What the user sees on stderr: training progress, validation lines, warnings, errors.

Nothing here writes to stdout, which is reserved for data.
"""

import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

err = Console(stderr=True, highlight=False)


def error(message: str) -> None:
    err.print(Text("error: ", style="bold red") + Text(message, style="red"), soft_wrap=True)


def warn(message: str) -> None:
    err.print(Text("warning: ", style="yellow") + Text(message), soft_wrap=True)


def note(message: str) -> None:
    err.print(Text(message), soft_wrap=True)


def input_warnings(n_truncated: int, n_unk: int, limit: str, what: str = "") -> None:
    """What reading the input changed: sentences cut to `limit` pieces, words with characters
    the tokenizer maps to <unk>."""
    if n_truncated:
        warn(f"{n_truncated} {what}sentence(s) longer than {limit} pieces were truncated")
    if n_unk:
        warn(f"{n_unk} {what}word(s) hold characters unknown to the tokenizer (mapped to <unk>)")


def format_valid(f: dict) -> str:
    return (f"step {f['step']:>6}  valid  -ELBO {f['elbo']:.2f}  rec {f['rec']:.2f}  KL {f['kl']:.2f}  "
            f"AU {f['au']}/{f['latent']}  PPL<= {f['ppl_elbo']:.2f}  lr {f.get('lr', 0):.2g}"
            + "".join(f"  acc({a}) {v:.3f}" for a, v in (f.get("accuracy") or {}).items() if v is not None)
            + ("  (best)" if f.get("best") else "")
            + ("  -> lr decayed" if f.get("decision") == "decay" else "")
            + ("  -> stop" if f.get("decision") == "stop" else ""))


class TrainProgress:
    """An on_event handler for sentvae.trainer.train that draws a rich progress bar."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.progress = None
        self.task = None

    def __call__(self, kind: str, info: dict) -> None:
        if kind == "note":                  # something put right in the run folder: always said
            warn(info["message"])
        if self.quiet:
            return
        if kind == "input":
            input_warnings(info["truncated"], info["unk"], info["limit"], f"{info['what']} ")
        elif kind == "start":
            kept = info["parameters"] - info.get("trainable", info["parameters"])   # --train-only encoder
            what = f"{info['trainable']:,} of {info['parameters']:,} parameters (the decoder's kept as they are)" \
                if kept else f"{info['parameters']:,} parameters"
            note(f"training {what} on {info['device']}: {info['sentences']:,} "
                 f"sentences, {info['batches_per_epoch']} batches/epoch, padding {100 * info['padding']:.1f}%")
            if info.get("reopened"):
                note(f"resumed a run its schedule had stopped ({info['reopened']}); the options given "
                     f"let it go on at lr {info['lr']:.3g}")
            self.progress = Progress(
                TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TimeRemainingColumn(), TextColumn("{task.fields[figures]}"),
                console=err, transient=False, disable=not err.is_terminal)
            self.progress.start()
            self.task = self.progress.add_task("train", total=info["steps"], completed=info["step"], figures="")
        elif kind == "step" and self.progress is not None:
            self.progress.update(self.task, completed=info["step"])
        elif kind == "log" and self.progress is not None:
            figures = (f"loss {info['loss']:.2f} rec {info['rec']:.2f} KL {info['kl']:.2f} "
                       f"beta {info['kl_weight']:.2f} lr {info.get('lr', 0):.2g} {info['tokens_per_s']:,.0f} tok/s")
            self.progress.update(self.task, figures=figures)
        elif kind == "valid":
            (self.progress.console if self.progress else err).print(format_valid(info), highlight=False, soft_wrap=True)
        elif kind == "end":
            self.close()

    def close(self):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


class Counter:
    """A progress bar over a known number of items; callable as on_progress(done, total)."""

    def __init__(self, label: str, total: int, disable: bool = False):
        self.progress = Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TimeRemainingColumn(), console=err,
                                 disable=disable or not err.is_terminal, transient=True)
        self.task = self.progress.add_task(label, total=total)

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()

    def __call__(self, done: int, total: int) -> None:
        self.progress.update(self.task, completed=done, total=total)


def eval_table(r: dict) -> None:
    from rich.table import Table
    t = Table(title=Text(f"{r['checkpoint']} on {r['data']}"), title_justify="left", show_header=False)
    t.add_column(style="bold")
    t.add_column(justify="right")
    t.add_column(style="dim")
    rows = [
        ("sentences", f"{r['sentences']:,}", f"{r['words']:,} words (+EOS), {r['tokens']:,} tokens"),
        ("-ELBO", f"{r['elbo']:.3f}", "nats/sentence, true bound (beta = 1)"
         + ("" if r.get("kl_exact", True) else ", its KL estimated")),
        ("rec", f"{r['rec']:.3f}", "-E_q log p(x|z)"),
        ("KL", f"{r['kl']:.3f}", "KL(q(z|x) || p(z)), " + ("closed form" if r.get("kl_exact", True)
                                                           else f"Monte Carlo over the K = {r['iw_samples']} samples")),
        ("NLL" if r.get("nll_exact") else "IW-NLL", f"{r['iw_nll']:.3f} ± {r['iw_nll_se']:.3f}",
         (f"exact: summed over the latent's {r['iw_samples']} value{'s' if r['iw_samples'] > 1 else ''}"
          if r.get("nll_exact") else f"K = {r['iw_samples']}, mean ESS {r['ess']:.1f}")),
        ("PPL", f"{r['ppl']:.2f}", "per word, from IW-NLL"),
        ("PPL (ELBO)", f"{r['ppl_elbo']:.2f}", "upper bound, from -ELBO"),
        ("MI", f"{r['mi']:.3f}", "I(x; z) under q, nats" + (", exact" if r.get("nll_exact") else "")),
        ("AU", f"{r['au']} / {r['latent']}", "active units, Cov_x(code) > 0.01 (E_q[z]; a category's one-hot)"),
    ]
    if r.get("svi_steps"):
        rows.insert(1, ("posteriors", f"{r['svi_steps']} SVI steps", f"each refined on its own ELBO, lr {r['svi_lr']:g}"))
    if r.get("accuracy") is not None:       # a labelled model (sentvae/labelled.py)
        rows[1] = (*rows[1][:2], rows[1][2] + f"; of p(x | labels) for the {r['conditioned']:,} labelled")
        rows.insert(4, ("KL (labels)", f"{r['kl_labels']:.3f}", "KL(q(c|x) || p(c)) of the labels a sentence lacks"))
        for a, acc in r["accuracy"].items():
            n = r["labelled"][a]
            rows.append((f"acc({a})", "-" if acc is None else f"{acc:.3f}", f"q(c|x)'s argmax, {n:,} labelled sentences"))
    for row in rows:
        t.add_row(*(Text(cell) for cell in row))     # Text: "[z]" is not rich markup
    err.print(t)


def clusters_table(r: dict) -> None:
    """`sentvae clusters`: one row per component (share, sentences, labels), its typical sentences."""
    from rich.table import Table
    t = Table(title=Text(f"{r['checkpoint']} on {r['data']}: {r['sentences']:,} sentences, entropy of the "
                         f"shares {r['entropy_of_shares']:.2f} of at most {r['max_entropy']:.2f} nats"),
              title_justify="left")
    for name in ("component", "share", "labels", "typical sentences (q(c|x))"):
        t.add_column(name)
    for row in r["components"]:
        typical = "\n".join(f"{s['probability']:.2f}  {s['text']}" for s in row["typical"])
        labels = ", ".join(f"{k} {v}" for k, v in sorted(row.get("labels", {}).items(), key=lambda kv: -kv[1]))
        t.add_row(Text(str(row["component"])), Text(f"{row['share']:.1%}"), Text(labels), Text(typical))
    err.print(t)
    if "agreement" in r:
        a = r["agreement"]
        note(f"against the labels: homogeneity {a['homogeneity']:.3f}, completeness {a['completeness']:.3f}, "
             f"NMI {a['nmi']:.3f}")


def stdout_is_pipe() -> bool:
    return not sys.stdout.isatty()
