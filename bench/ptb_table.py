"""Print README's PTB results table from what `bench/ptb.sh ROW` left in runs/ptb-ROW/.

    .venv/bin/python bench/ptb_table.py

A row not yet run is printed with its cells marked "not run"."""

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
    try:
        full = json.loads((run / "eval-test.json").read_text())
        k500 = json.loads((run / "eval-k500.json").read_text())
        secs, rest = (run / "time.txt").read_text().split(" s training, ", 1)
    except (OSError, ValueError):
        return f"| {name} | not run | | | | | | | | `bench/ptb.sh {key}` |"
    threads = rest.split(" thread")[0]
    lm = full["kl"] == 0 and full["au"] == 0 and full.get("no_latent", key.endswith("-lm"))
    nll = f"{k500['iw_nll']:.2f}" + ("" if lm else f" ± {k500['iw_nll_se']:.2f}")
    return (f"| {name} | {nll} | {k500['ppl']:.1f} | {full['elbo']:.2f} | {full['ppl_elbo']:.1f} "
            f"| {full['kl']:.2f} | {full['mi']:.2f} | {full['au']} | {int(secs) / 60:.0f} min, {threads} thr "
            f"| `bench/ptb.sh {key}` |")


if __name__ == "__main__":
    print("| model | IW-NLL (K=500, subset) | PPL (subset) | -ELBO (test) | PPL from -ELBO (test) "
          "| KL | MI | AU | train time, CPU threads | command |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, key in ROWS:
        print(row(name, key))
