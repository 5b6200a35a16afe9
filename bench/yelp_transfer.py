"""Yelp sentiment transfer, scored side by side: the six systems released with Li et al. 2018
("Delete, Retrieve, Generate") and any transfers of ours, on the 1,000-sentence test set.

    .venv/bin/python bench/yelp_transfer.py [--judge runs/yelp-judge.npz] [--lm runs/yelp-lm/best.pt]
        [--outputs DIR ...] [--json FILE]

Columns, each over all 1,000 test sentences (500 negative -> positive, 500 positive -> negative):
- acc: the fraction the judge (sentvae/judge.py, trained here on train.0/train.1 alone, its C
  chosen on valid) calls the target sentiment; then the same on each half (negative sources
  made positive, ->pos; positive made negative, ->neg);
- BLEU: sacrebleu corpus BLEU against Li et al.'s human rewrites (reference.0/1);
- self-BLEU: corpus BLEU against the source sentences (how much is copied);
- dist-1/2: distinct uni/bigrams over all n-grams of the outputs;
- PPL: per-word perplexity of the outputs under a separately trained LM (--lm, a sentvae
  --no-latent checkpoint; its exact NLL).
Every text is normalised first (sentvae.scoring.normalize): the rewrites are not tokenized like
the corpus. Two reference rows frame the table: the human rewrites themselves (their BLEU
against themselves is 100 by definition, not shown) and the sources copied unchanged.

The released files (yelp/outputs/test.L.SUFFIX, `source<TAB>output<TAB>label`) are named by
their suffix; which system each is was established by comparing them line by line with the
outputs that luofuli/DualRL (outputs/yelp/) publishes under the systems' names: all 1,000
lines of each are identical (mit = CrossAligned, Shen et al. 2017; multi_decoder and fader =
MultiDecoder and StyleEmbedding, Fu et al. 2018; retrieval, rule_base and label = RetrieveOnly,
TemplateBased and DeleteOnly, Li et al. 2018). Li et al.'s DeleteAndRetrieve is not among them.

--outputs DIR adds a row for every pair DIR/test.0.NAME, DIR/test.1.NAME: lines in the released
layout, or one output per line (the source is then test.L's line of the same number).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sentvae.errors import SentvaeError  # noqa: E402

YELP = Path(os.environ.get("YELP", ROOT.parent / "shared" / "data" / "yelp"))
SENTIMENT = ("negative", "positive")          # file suffix .0, .1
RELEASED = [("CrossAligned (Shen et al. 2017)", "mit"), ("StyleEmbedding (Fu et al. 2018)", "fader"),
            ("MultiDecoder (Fu et al. 2018)", "multi_decoder"), ("TemplateBased (Li et al. 2018)", "rule_base"),
            ("RetrieveOnly (Li et al. 2018)", "retrieval"), ("DeleteOnly (Li et al. 2018)", "label")]
C_GRID = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise SentvaeError(f"{path}: no such file")
    return path.read_text(encoding="utf-8").rstrip("\n").split("\n")


def test_set(yelp: Path):
    """Sources, their target sentiments and the human rewrites, test.0 then test.1."""
    sources, targets, refs = [], [], []
    for label in (0, 1):
        src = _lines(yelp / f"test.{label}")
        ref = [line.split("\t") for line in _lines(yelp / f"reference.{label}")]
        if len(ref) != len(src) or any(len(r) != 2 or r[0].strip() != s.strip() for r, s in zip(ref, src)):
            raise SentvaeError(f"{yelp}/reference.{label}: not `source<TAB>rewrite` lines in test.{label}'s order")
        sources += [s.strip() for s in src]
        refs += [r[1].strip() for r in ref]
        targets += [SENTIMENT[1 - label]] * len(src)
    return sources, targets, refs


def read_system(folder: Path, name: str, sources: list[str], targets: list[str]) -> list[str]:
    """The outputs of one system for test.0 then test.1, checked line by line against the sources."""
    outputs, at = [], 0
    for label in (0, 1):
        path = folder / f"test.{label}.{name}"
        lines = _lines(path)
        n = targets.count(SENTIMENT[1 - label])        # test.L's sentences: those with the other target
        if len(lines) != n:
            raise SentvaeError(f"{path}: {len(lines)} lines, test.{label} has {n}")
        for i, line in enumerate(lines):
            cols = line.split("\t")
            if len(cols) >= 2 and cols[0].strip() != sources[at + i]:
                raise SentvaeError(f"{path} line {i + 1}: its source is not test.{label}'s line {i + 1}")
            outputs.append(cols[1].strip() if len(cols) >= 2 else cols[0].strip())
        at += n
    return outputs


def train_judge(yelp: Path, out: Path, log):
    """The judge on train.0/train.1 alone, C chosen by validation accuracy; saved to out."""
    from sentvae.judge import Judge
    from sentvae.labels import load_labelled

    def labelled(split, vocab=None):
        texts, arr, vocab = load_labelled([f"{yelp}/{split}.{i}@sentiment={s}" for i, s in enumerate(SENTIMENT)],
                                          vocab=vocab)
        return texts, [vocab.value("sentiment", int(i)) for i in arr[:, 0]], vocab

    texts, labels, vocab = labelled("train")
    vtexts, vlabels, _ = labelled("valid", vocab)
    best = None
    for C in C_GRID:
        t = time.time()
        judge = Judge.train(texts, labels, "sentiment", C=C)
        acc = judge.accuracy(vtexts, vlabels)
        log(f"judge C={C}: valid accuracy {acc:.4f} ({time.time() - t:.0f} s)")
        if best is None or acc > best[0]:
            best = (acc, judge)
    best[1].save(out)
    log(f"saved {out}: C={best[1].settings['C']}")
    return best[1]


def score(name, outputs, sources, targets, refs, judge, lm, with_bleu=True) -> dict:
    from sentvae.scoring import corpus_bleu, distinct_n, fluency, label_accuracy

    predicted = judge.predict(outputs)
    halves = {t: [p == t for p, tt in zip(predicted, targets) if tt == t] for t in SENTIMENT}
    row = {"system": name, "acc": label_accuracy(predicted, targets),
           "acc_to": {t: sum(h) / len(h) for t, h in halves.items()},
           "bleu": corpus_bleu(outputs, refs) if with_bleu else None,
           "self_bleu": corpus_bleu(outputs, sources),
           "dist1": distinct_n(outputs, 1), "dist2": distinct_n(outputs, 2)}
    if lm is not None:
        f = fluency(lm, outputs)
        row["ppl"], row["blank"] = f["ppl"], f["blank"]
    return row


def table(rows: list[dict]) -> str:
    has_ppl = any("ppl" in r for r in rows)
    head = ("| system | acc | acc ->pos / ->neg | BLEU (human) | self-BLEU | dist-1 | dist-2 |"
            + (" PPL |" if has_ppl else ""))
    out = [head, "|" + " --- |" * (head.count("|") - 1)]
    for r in rows:
        bleu = "-" if r["bleu"] is None else f"{r['bleu']:.1f}"
        line = (f"| {r['system']} | {r['acc']:.3f} | {r['acc_to']['positive']:.3f} / {r['acc_to']['negative']:.3f} | "
                f"{bleu} | {r['self_bleu']:.1f} | "
                f"{r['dist1']:.3f} | {r['dist2']:.3f} |")
        if has_ppl:
            line += f" {r['ppl']:.1f} |" if "ppl" in r else " - |"
        out.append(line)
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--yelp", type=Path, default=YELP, help="the yelp data folder [%(default)s]")
    ap.add_argument("--judge", type=Path, default=ROOT / "runs" / "yelp-judge.npz",
                    help="the judge: loaded if it exists, else trained and saved there [%(default)s]")
    ap.add_argument("--lm", type=Path, help="a sentvae --no-latent checkpoint for the PPL column")
    ap.add_argument("--outputs", type=Path, action="append", default=[],
                    help="a folder of our transfers, test.0.NAME and test.1.NAME (repeatable)")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = ap.parse_args(argv)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    try:
        from sentvae.judge import Judge
        sources, targets, refs = test_set(args.yelp)
        judge = Judge.load(args.judge) if args.judge.exists() else train_judge(args.yelp, args.judge, log)
        lm = None
        if args.lm is not None:
            import sentvae
            lm = sentvae.load(args.lm, device="cpu")
        src_labels = [SENTIMENT[1 - SENTIMENT.index(t)] for t in targets]
        log(f"judge {judge}: accuracy on the test sources' own labels {judge.accuracy(sources, src_labels):.4f}")
        rows = [score("human rewrites (Li et al. 2018)", refs, sources, targets, refs, judge, lm, with_bleu=False),
                score("source copied unchanged", sources, sources, targets, refs, judge, lm)]
        for name, suffix in RELEASED:
            rows.append(score(f"{name} [{suffix}]", read_system(args.yelp / "outputs", suffix, sources, targets),
                              sources, targets, refs, judge, lm))
        for folder in args.outputs:
            names = sorted({p.name.split(".", 2)[2] for p in folder.glob("test.0.*")})
            if not names:
                raise SentvaeError(f"--outputs {folder}: no test.0.NAME file")
            for name in names:
                rows.append(score(f"{folder.name}/{name}", read_system(folder, name, sources, targets),
                                  sources, targets, refs, judge, lm))
    except SentvaeError as e:
        log(f"error: {e}")
        return e.exit_code
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps({"judge": str(args.judge), "lm": str(args.lm) if args.lm else None,
                                         "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
