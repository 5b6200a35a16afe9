"""Benchmark: control of a labelled model on the bundled corpus, judged by the grammar's rules.

    .venv/bin/python -m sentvae train --label-field tense --label-field aspect --label-field mood \
        --label-field negation --out runs/labels
    .venv/bin/python bench/bundled_control.py runs/labels/best.pt [--n 200] [--seed 0] [--strength 1]

The model is never its own judge: data/corpus_labels.py reads each output's tense, aspect, mood
and negation from its words by the grammar's rules (data/make_corpus.py). Two figures per value:

- sample: n sentences with z ~ p(z) and the label set (`sample --label NAME=VALUE`; the other
  attributes drawn from p(c)), greedy decoding; the share the judge reads as asked;
- transfer: every test sentence (data/test.jsonl) whose own value differs, rewritten with the value
  set (`reconstruct --label NAME=VALUE`: z from the sentence, c set, greedy); the share the judge
  reads as asked, and how much of the source is kept (sacrebleu BLEU against the sources: a
  transfer that rewrote everything would score near 0, a copy 100).

--strength S: both at `--label-strength S` (the label's embedding S times the way to the asked
value from the sentence's own, for transfers, or from the values' average, for samples; 1: as asked).
Choose S on `--test data/valid.jsonl` and another `--seed`, then report the test split.

Per attribute, the figure is the mean over its values (each value weighs the same, however rare).
Prints a table; never part of the tests.
"""

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "data"))

from corpus_labels import judge  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--n", type=int, default=200, help="samples per value")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--test", default=str(ROOT / "data" / "test.jsonl"))
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument("--strength", type=float, default=1.0, help="--label-strength of samples and transfers")
    args = ap.parse_args()

    import sentvae
    from sentvae.latent import corpus_bleu

    model = sentvae.load(args.checkpoint, device="cpu")
    if model.labels is None:
        sys.exit(f"{args.checkpoint}: a model without labels")
    rows = [json.loads(line) for line in open(args.test, encoding="utf-8") if line.strip()]
    out = {}
    for name, values in model.labels.values.items():
        per_value = {}
        for v in values:
            samples = model.sample(args.n, seed=args.seed, label={name: v}, label_strength=args.strength)
            hit_s = sum(judge(s)[name] == v for s in samples) / len(samples)
            sources = [r["text"] for r in rows if r.get(name) not in (None, v)]
            outs = model.reconstruct(sources, label={name: v}, label_strength=args.strength)
            hit_t = sum(judge(s)[name] == v for s in outs) / len(outs) if outs else float("nan")
            kept = corpus_bleu(outs, sources)["bleu"] if outs else float("nan")
            per_value[v] = {"sample": hit_s, "transfer": hit_t, "transfer_n": len(sources), "self_bleu": kept}
        out[name] = per_value
    print(f"{args.checkpoint}: the rule judge (data/corpus_labels.py) on {args.n} samples per value and on "
          f"the test sentences rewritten to each value ({Path(args.test).name}), greedy, label strength {args.strength:g}")
    print(f"{'attribute':10s} {'value':14s} {'sample acc':>10s} {'transfer acc':>12s} {'n':>5s} {'self-BLEU':>9s}")
    for name, per_value in out.items():
        for v, f in per_value.items():
            print(f"{name:10s} {v:14s} {f['sample']:10.3f} {f['transfer']:12.3f} {f['transfer_n']:5d} {f['self_bleu']:9.1f}")
        mean = {k: sum(f[k] for f in per_value.values()) / len(per_value) for k in ("sample", "transfer", "self_bleu")}
        print(f"{name:10s} {'(mean)':14s} {mean['sample']:10.3f} {mean['transfer']:12.3f} {'':5s} {mean['self_bleu']:9.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
