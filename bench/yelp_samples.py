"""Conditioned samples of a labelled Yelp model, judged by a model that is not it.

    .venv/bin/python bench/yelp_samples.py CKPT [--judge runs/yelp-judge.npz] [--lm runs/yelp-lm/best.pt]
        [--n 500] [--seed 0] [--strengths 1]

For each sentiment, n samples with z ~ p(z) and the label set (`sample --label sentiment=VALUE`,
greedy); beside them n unconditioned samples (the label drawn from p(c), as `sample` does without
--label). Columns: the judge's accuracy on the asked label (bench/yelp_transfer.py trains the judge:
tf-idf 1-2-grams + logistic regression on train.0/train.1 alone), per-word perplexity of the
samples under a separately trained --no-latent LM (fluency: lower is more fluent; the issue's
target is conditioned samples at <= 1.2x the unconditioned ones' perplexity), distinct-1/2.
--strengths S,S,..: the conditioned rows at each `sample --label-strength S` (the label's embedding
S times the way from its average under p(c) to the asked value; 1: the value itself), the same z.
Prints a table; never part of the tests.
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SENTIMENT = ("negative", "positive")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--judge", type=Path, default=ROOT / "runs" / "yelp-judge.npz")
    ap.add_argument("--lm", type=Path, default=ROOT / "runs" / "yelp-lm" / "best.pt")
    ap.add_argument("--n", type=int, default=500, help="samples per row")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--strengths", default="1", help="sample --label-strength values, comma-separated [%(default)s]")
    args = ap.parse_args(argv)

    import sentvae
    from sentvae.judge import Judge
    from sentvae.scoring import distinct_n, fluency, label_accuracy

    model = sentvae.load(args.checkpoint, device="cpu")
    judge, lm = Judge.load(args.judge), sentvae.load(args.lm, device="cpu")
    rows = []
    for value, strength in [(None, 1.0)] + [(v, float(s)) for s in args.strengths.split(",") for v in SENTIMENT]:
        label = None if value is None else {"sentiment": value}
        texts = model.sample(args.n, seed=args.seed, label=label, label_strength=strength if label else 1.0)
        row = {"asked": value or "none (c ~ p(c))", "strength": strength, "ppl": fluency(lm, texts)["ppl"],
               "dist1": distinct_n(texts, 1), "dist2": distinct_n(texts, 2),
               "acc": label_accuracy(judge.predict(texts), [value] * len(texts)) if value else None,
               "positive": sum(p == "positive" for p in judge.predict(texts)) / len(texts)}
        rows.append(row)
    base = rows[0]["ppl"]
    print(f"{args.checkpoint}: {args.n} samples per row, greedy, seed {args.seed}; judge {args.judge.name}, "
          f"fluency LM {args.lm}")
    print("| asked | S | judge accuracy | judged positive | PPL | PPL / unconditioned | dist-1 | dist-2 |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        acc = "-" if r["acc"] is None else f"{r['acc']:.3f}"
        print(f"| {r['asked']} | {r['strength']:g} | {acc} | {r['positive']:.3f} | {r['ppl']:.1f} | "
              f"{r['ppl'] / base:.2f} | {r['dist1']:.3f} | {r['dist2']:.3f} |")
    for strength in dict.fromkeys(r["strength"] for r in rows[1:]):
        both = [r for r in rows[1:] if r["strength"] == strength]
        print(f"conditioned at S={strength:g}: mean accuracy {sum(r['acc'] for r in both) / len(both):.3f}, "
              f"PPL {max(r['ppl'] for r in both) / base:.2f}x the unconditioned at most")
    return 0


if __name__ == "__main__":
    sys.exit(main())
