"""Figure: the CNN decoder's capacity trade-off, KL and IW-NLL against its receptive field.

The Deep Latent NLP tutorial's point (Yang et al. 2017): a decoder that sees few past words must
take more from z (higher KL); one that sees many models the sentence alone and leaves z unused.
On the bundled corpus, one VAE per receptive field, each with the bundled defaults and only the
decoder changed, evaluated on data/test.txt:

    for d in 1 1,2 1,2,4 1,2,4,8; do                       # receptive fields 3, 7, 15, 31
      sentvae train --decoder cnn --dilations $d --out runs/rf-$d
      sentvae eval -c runs/rf-$d/best.pt -k 100 --json > runs/rf-$d.json
    done
    sentvae eval -c LSTM_VAE/best.pt -k 100 --json > runs/lstm-vae.json      # references (optional)
    sentvae eval -c LSTM_LM/best.pt --json > runs/lstm-lm.json
    .venv/bin/python bench/cnn_receptive_field.py 3=runs/rf-1.json 7=runs/rf-1,2.json ... \
        --ref "LSTM VAE=runs/lstm-vae.json" --ref "LSTM LM=runs/lstm-lm.json" -o docs/img/cnn-receptive-field.png

Prints the table and writes the figure; never part of the tests.
"""

import argparse
import json
from pathlib import Path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("points", nargs="+", help="[SERIES:]RECEPTIVE_FIELD=EVAL_JSON (sentvae eval --json output); "
                    "SERIES names a line (e.g. a word dropout), default 'CNN decoder'")
    ap.add_argument("--ref", action="append", default=[], help="NAME=EVAL_JSON: a horizontal reference line")
    ap.add_argument("-o", "--output", default="cnn-receptive-field.png")
    args = ap.parse_args()

    series = {}
    for p in args.points:
        head, path = p.split("=", 1)
        name, _, rf = head.rpartition(":")
        series.setdefault(name or "CNN decoder", []).append((int(rf), json.loads(Path(path).read_text())))
    for rows in series.values():
        rows.sort(key=lambda r: r[0])
    refs = [(name, json.loads(Path(path).read_text())) for name, path in (r.split("=", 1) for r in args.ref)]
    print(f"{'decoder':34s} {'-ELBO':>8s} {'IW-NLL':>8s} {'KL':>7s} {'MI':>6s} {'AU':>4s} {'PPL':>7s}")
    for name, rows in series.items():
        for rf, r in rows:
            print(f"{name + ', field ' + str(rf):34s} {r['elbo']:8.2f} {r['iw_nll']:8.2f} {r['kl']:7.2f} "
                  f"{r['mi']:6.2f} {r['au']:4d} {r['ppl']:7.2f}")
    for name, r in refs:
        mi = r.get("mi")
        print(f"{name:34s} {r['elbo']:8.2f} {r['iw_nll']:8.2f} {r['kl']:7.2f} "
              f"{mi if mi == mi else float('nan'):6.2f} {r['au']:4d} {r['ppl']:7.2f}")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax_kl, ax_nll) = plt.subplots(1, 2, figsize=(10, 4))
    xs = sorted({rf for rows in series.values() for rf, _ in rows})
    for i, (name, rows) in enumerate(series.items()):
        ax_kl.plot([rf for rf, _ in rows], [r["kl"] for _, r in rows], "o-", color=f"C{i}", label=name)
        ax_nll.plot([rf for rf, _ in rows], [r["iw_nll"] for _, r in rows], "o-", color=f"C{i}", label=name)
    for i, (name, r) in enumerate(refs):
        style = dict(color=f"C{len(series) + i}", linestyle="--")
        ax_kl.axhline(r["kl"], label=name, **style)
        ax_nll.axhline(r["iw_nll"], label=name, **style)
    for ax, what in ((ax_kl, "KL(q(z|x) || p(z)), nats per sentence"), (ax_nll, "IW-NLL, nats per sentence")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs, [str(x) for x in xs])
        ax.set_xlabel("receptive field (past tokens the decoder sees)")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("The bundled corpus's test set: what the decoder's reach does to the latent")
    fig.tight_layout()
    fig.savefig(args.output, dpi=110)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
