"""Print README's PTB results table from what `bench/ptb.sh ROW` left in runs/ptb-ROW/.

    .venv/bin/python bench/ptb_table.py

A row not yet run is printed with its cells marked "not run"; runs/ptb-ROW/note.txt, if
present, is appended to the row's name (a row stopped early says so there)."""

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROWS = [("LSTM-LM", "lstm-lm"),
        ("LSTM-VAE (Bowman: anneal + word dropout 0.4)", "lstm-vae"),
        ("+ cyclical annealing (4 cycles)", "lstm-vae-cyclical"),
        ("+ AE pretraining + free bits 0.25/dim", "lstm-vae-pretrain-freebits"),
        ("+ aggressive encoder training", "lstm-vae-aggressive"),
        ("Transformer-LM", "transformer-lm"),
        ("Transformer-VAE (anneal + word dropout 0.4)", "transformer-vae")]


def row(name: str, key: str) -> str:
    run = ROOT / "runs" / f"ptb-{key}"
    def read(name):
        try:
            return json.loads((run / name).read_text())
        except (OSError, ValueError):      # not run (or not finished) yet
            return None

    full, k500 = read("eval-test.json"), read("eval-k500.json")
    note = run / "note.txt"                  # a row run differently from its recipe says how
    if note.is_file():
        name += f" (**{note.read_text().strip()}**)"
    if full is None:
        return f"| {name} | not run | | | | | | | | `bench/ptb.sh {key}` |"
    nll = ppl = "not run"
    if k500 is not None:
        exact = k500["iw_samples"] == 1          # an LM baseline: its NLL is exact
        nll = f"{k500['iw_nll']:.2f}" + (" (exact)" if exact else f" ± {k500['iw_nll_se']:.3f}")
        ppl = f"{k500['ppl']:.1f}"
    try:
        secs, rest = (run / "time.txt").read_text().split(" s training, ", 1)
        took = f"{int(secs) / 60:.0f} min, {rest.split(' thread')[0]} thread"
    except (OSError, ValueError):
        took = "not finished"
    return (f"| {name} | {nll} | {ppl} | {full['elbo']:.2f} | {full['ppl_elbo']:.1f} "
            f"| {full['kl']:.2f} | {full['mi']:.2f} | {full['au']} | {took} | `bench/ptb.sh {key}` |")


if __name__ == "__main__":
    print("| model | IW-NLL (K=500, subset) | PPL (subset) | -ELBO (test) | PPL from -ELBO (test) "
          "| KL | MI | AU | training time | command |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, key in ROWS:
        print(row(name, key))
