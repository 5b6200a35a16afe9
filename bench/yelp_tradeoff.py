"""Yelp transfer's accuracy/BLEU trade-off: labelled models swept over the transfer strength
(`reconstruct --label-strength S`), on the same axes as the six released systems.

    .venv/bin/python bench/yelp_tradeoff.py NAME=CKPT [NAME=CKPT ...] [--strengths 0,0.5,1,1.5,2,3]
        [--judge runs/yelp-judge.npz] [--lm runs/yelp-lm/best.pt] [--out DIR] [--json FILE] [--plot PNG]

For each model and strength S, every test sentence is reconstructed (greedy, z the posterior
mean) with the other sentiment set at strength S: its label embedding moved S times the way from
q(c|x)'s reading of the sentence to the asked value (0: the model's reconstruction, 1: its
transfer, above 1: pushed past). The outputs (DIR/test.L.NAME-sS, one per line) are scored as
bench/yelp_transfer.py scores the released systems (the same judge, BLEU against the human
rewrites, self-BLEU, and, with --lm, perplexity), and the figure puts every (model, S) point and
the released systems on accuracy x BLEU, with the issue's target corner (accuracy >= 0.90, BLEU
>= 22.5) shaded. A model's trade-off across models (free bits, KL) is the spread of its curves.

One operating point is chosen on validation, never on test: every (model, S) also transfers
valid.0 / valid.1 (which have no human rewrites), and the point chosen is the one with the highest
validation self-BLEU among those whose validation accuracy reaches the target's 0.90, or, where
none does, the highest geometric mean sqrt(accuracy x self-BLEU). Its test row is then read off
the table (and starred in the figure). (The judge's C was chosen on the same validation sentences.)
Never part of the tests' timing; ~10 s a point on one CPU thread.
"""

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import yelp_transfer  # noqa: E402
from sentvae.errors import SentvaeError  # noqa: E402

TARGET = (0.90, 22.5)          # the corner: accuracy and BLEU at once


def transfers(model, sources: list[str], targets: list[str], strength: float, batch: int = 250) -> list[str]:
    """Each source reconstructed with its target sentiment set at `strength`, in order."""
    outputs = []
    for at in range(0, len(sources), batch):
        chunk, goal = sources[at:at + batch], targets[at:at + batch]
        for value in set(goal):          # one call per target value: --label is per call
            idx = [i for i, g in enumerate(goal) if g == value]
            outs = model.reconstruct([chunk[i] for i in idx], label={"sentiment": value}, label_strength=strength)
            outputs.extend(zip([at + i for i in idx], outs))
    return [o for _, o in sorted(outputs)]


def valid_set(yelp: Path) -> tuple[list[str], list[str]]:
    """Validation sources (valid.0 then valid.1) and their target sentiments (the other one)."""
    sources, targets = [], []
    for label in (0, 1):
        lines = [line.strip() for line in yelp_transfer._lines(yelp / f"valid.{label}") if line.strip()]
        sources += lines
        targets += [yelp_transfer.SENTIMENT[1 - label]] * len(lines)
    return sources, targets


def choose(points: list[dict]) -> dict:
    """The operating point by validation alone (see the module docstring)."""
    reach = [p for p in points if p["valid_acc"] >= TARGET[0]]
    if reach:
        return max(reach, key=lambda p: p["valid_self_bleu"])
    return max(points, key=lambda p: (p["valid_acc"] * p["valid_self_bleu"]) ** 0.5)


def plot(points: list[dict], released: list[dict], path: Path, chosen: dict | None = None) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    fig, ax = plt.subplots(figsize=(7.5, 5.2))
    ax.add_patch(Rectangle(TARGET, 1.02 - TARGET[0], 40 - TARGET[1], color="tab:green", alpha=0.12, lw=0))
    for r in released:          # the human rewrites have no BLEU against themselves: not drawn
        x, y = r["acc"], r["bleu"]
        if y is None:
            continue
        ax.scatter([x], [y], marker="s", color="0.35", zorder=3)
        ax.annotate(r["system"].split(" (")[0].split(" [")[0], (x, y), textcoords="offset points", xytext=(5, 3),
                    fontsize=8, color="0.25")
    for i, name in enumerate(dict.fromkeys(p["model"] for p in points)):
        mine = sorted((p for p in points if p["model"] == name), key=lambda p: p["strength"])
        color = f"C{i}"
        ax.plot([p["acc"] for p in mine], [p["bleu"] for p in mine], "o-", color=color, label=f"sentvae {name}")
        for k, p in enumerate(mine):         # labels alternately below and above: neighbours crowd
            ax.annotate(f"S={p['strength']:g}", (p["acc"], p["bleu"]), textcoords="offset points",
                        xytext=(4, -10 if k % 2 == 0 else 5), fontsize=7, color=color)
    if chosen is not None:
        ax.scatter([chosen["acc"]], [chosen["bleu"]], marker="*", s=220, facecolor="none", edgecolor="k", zorder=4,
                   label=f"chosen on validation: {chosen['model']} S={chosen['strength']:g}")
    ax.set_xlim(0, 1.02)
    top = max([TARGET[1] + 5] + [r["bleu"] + 3 for r in released if r["bleu"] is not None])
    ax.set_ylim(0, top)
    ax.text(TARGET[0] + 0.005, top - 1.5, "target", color="tab:green", fontsize=9)
    ax.set_xlabel("transfer accuracy (judge: n-gram logistic regression)")
    ax.set_ylabel("BLEU against the human rewrites")
    ax.set_title("Yelp sentiment transfer, 1,000 test sentences")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+", help="NAME=CKPT: a labelled model with a 'sentiment' attribute")
    ap.add_argument("--strengths", default="0,0.5,1,1.5,2,3", help="transfer strengths S [%(default)s]")
    ap.add_argument("--yelp", type=Path, default=yelp_transfer.YELP)
    ap.add_argument("--judge", type=Path, default=ROOT / "runs" / "yelp-judge.npz")
    ap.add_argument("--lm", type=Path, help="a --no-latent checkpoint: a PPL column")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "yelp-tradeoff", help="outputs folder [%(default)s]")
    ap.add_argument("--json", type=Path, help="write every row here")
    ap.add_argument("--plot", type=Path, help="write the figure here (PNG)")
    args = ap.parse_args(argv)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    try:
        import sentvae
        from sentvae.judge import Judge
        from sentvae.scoring import corpus_bleu, label_accuracy
        try:
            strengths = list(dict.fromkeys(float(s) for s in args.strengths.split(",")))
        except ValueError:
            raise SentvaeError(f"--strengths {args.strengths}: expected numbers, comma-separated") from None
        models = [m.split("=", 1) for m in args.models]
        if any(len(m) != 2 or not m[0] for m in models):
            raise SentvaeError("models: give NAME=CKPT")
        loaded = []                 # every model checked before anything is scored: a wrong one costs nothing
        for name, ckpt in models:
            model = sentvae.load(ckpt, device="cpu")
            if model.labels is None or "sentiment" not in model.labels.attributes:
                raise SentvaeError(f"{ckpt}: not a model with a 'sentiment' label")
            loaded.append((name, ckpt, model))
        sources, targets, refs = yelp_transfer.test_set(args.yelp)
        vsources, vtargets = valid_set(args.yelp)
        judge = (Judge.load(args.judge) if args.judge.exists()
                 else yelp_transfer.train_judge(args.yelp, args.judge, log))
        lm = sentvae.load(args.lm, device="cpu") if args.lm else None
        released = [yelp_transfer.score("human rewrites (Li et al. 2018)", refs, sources, targets, refs, judge, lm,
                                        with_bleu=False),
                    yelp_transfer.score("source copied unchanged", sources, sources, targets, refs, judge, lm)]
        for name, suffix in yelp_transfer.RELEASED:
            outs = yelp_transfer.read_system(args.yelp / "outputs", suffix, sources, targets)
            released.append(yelp_transfer.score(f"{name} [{suffix}]", outs, sources, targets, refs, judge, lm))
        args.out.mkdir(parents=True, exist_ok=True)
        points = []
        for name, ckpt, model in loaded:
            for s in strengths:
                t = time.time()
                outs = transfers(model, sources, targets, s)
                half = targets.count("positive")               # test.0's sentences come first
                for label, part in ((0, outs[:half]), (1, outs[half:])):
                    (args.out / f"test.{label}.{name}-s{s:g}").write_text("".join(o + "\n" for o in part))
                row = yelp_transfer.score(f"{name} S={s:g}", outs, sources, targets, refs, judge, lm)
                vouts = transfers(model, vsources, vtargets, s)
                valid = {"valid_acc": label_accuracy(judge.predict(vouts), vtargets),
                         "valid_self_bleu": corpus_bleu(vouts, vsources)}
                points.append({**row, **valid, "model": name, "checkpoint": str(ckpt), "strength": s})
                log(f"{name} S={s:g}: test acc {row['acc']:.3f} BLEU {row['bleu']:.1f} self-BLEU "
                    f"{row['self_bleu']:.1f}; valid acc {valid['valid_acc']:.3f} self-BLEU "
                    f"{valid['valid_self_bleu']:.1f} ({time.time() - t:.0f} s)")
    except SentvaeError as e:
        log(f"error: {e}")
        return e.exit_code
    chosen = choose(points)
    print(yelp_transfer.table(released + points))
    print(f"\nchosen on validation: {chosen['system']} (valid accuracy {chosen['valid_acc']:.3f}, self-BLEU "
          f"{chosen['valid_self_bleu']:.1f}); on test: accuracy {chosen['acc']:.3f}, BLEU {chosen['bleu']:.1f}")
    if args.json:
        args.json.write_text(json.dumps({"judge": str(args.judge), "released": released, "points": points,
                                         "chosen": chosen["system"]}, indent=1) + "\n")
    if args.plot:
        plot(points, released, args.plot, chosen)
    return 0


if __name__ == "__main__":
    sys.exit(main())
