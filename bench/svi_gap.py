"""SA-VAE's evaluation refinement against a row's amortisation gap (issue: "close at least half of
the gap between -ELBO and IW-NLL"), from per-sentence evaluations of one checkpoint:

    .venv/bin/python bench/svi_gap.py RUN_DIR

RUN_DIR (a bench/ptb.sh run folder, or its bench/results copy) holds, each as NAME.json and
NAME.sentences.jsonl(.gz), made by `sentvae eval -c best.pt --per-sentence ...`:
  eval-k500              every 10th test sentence, K = 500, no refinement (bench/ptb.sh makes it)
  eval-svi20-k500        the same sentences and seed, after `--svi-steps 20`
  eval-svi0-k10, eval-svi20-k10   (optional) the whole test set at K = 10, without and with it
Prints, per set of sentences: -ELBO before and after, the gap -ELBO - IW-NLL before, the change in
-ELBO with a 95% interval over sentences (paired: the same sentences and noise), the share of the
gap it closes (a paired bootstrap interval), and how many sentences' bound rose. Nats a sentence.
The -ELBO of an evaluation is the mean over its K samples, so K changes its noise, not its value.
"""

import gzip
import json
import math
import random
import sys
from pathlib import Path


def rows(folder: Path, name: str) -> dict[int, dict] | None:
    for path, opener in ((folder / f"{name}.sentences.jsonl", open), (folder / f"{name}.sentences.jsonl.gz", gzip.open)):
        if path.is_file():
            with opener(path, "rt") as f:
                return {r["index"]: r for r in map(json.loads, f)}
    return None


def interval(d: list[float]) -> tuple[float, float, float]:
    """mean and a 95% normal interval over sentences."""
    m = sum(d) / len(d)
    h = 1.96 * math.sqrt(sum((x - m) ** 2 for x in d) / (len(d) - 1) / len(d))
    return m, m - h, m + h


def share(change: list[float], gap: list[float], draws: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """mean(change) / mean(gap) with a paired bootstrap 95% interval over sentences."""
    rng = random.Random(seed)
    n = len(change)
    est = sum(change) / sum(gap)
    boot = []
    for _ in range(draws):
        idx = [rng.randrange(n) for _ in range(n)]
        boot.append(sum(change[i] for i in idx) / sum(gap[i] for i in idx))
    boot.sort()
    return est, boot[int(0.025 * draws)], boot[int(0.975 * draws) - 1]


def report(folder: Path) -> list[str]:
    out = []
    plain, refined = rows(folder, "eval-k500"), rows(folder, "eval-svi20-k500")
    if plain is None or refined is None or plain.keys() != refined.keys():
        raise SystemExit(f"svi_gap: {folder} needs eval-k500 and eval-svi20-k500 per-sentence files of the same sentences")
    idx = sorted(plain)
    change = [plain[i]["elbo"] - refined[i]["elbo"] for i in idx]        # > 0: the bound tightened
    gap = [plain[i]["elbo"] - plain[i]["iw_nll"] for i in idx]
    n = len(idx)
    mean = lambda key, table: sum(table[i][key] for i in idx) / n                      # noqa: E731
    m, lo, hi = interval(change)
    s, slo, shi = share(change, gap)
    rose = sum(c < 0 for c in change)
    out.append(f"subset ({n} sentences, K = 500): -ELBO {mean('elbo', plain):.2f} -> {mean('elbo', refined):.2f}, "
               f"IW-NLL {mean('iw_nll', plain):.2f} (refined proposal: {mean('iw_nll', refined):.2f}); "
               f"gap {sum(gap) / n:.2f}; refinement closes {m:.2f} [{lo:.2f}, {hi:.2f}] = "
               f"{100 * s:.0f}% [{100 * slo:.0f}%, {100 * shi:.0f}%] of it; bound rose on {rose} of {n}")
    whole0, whole20 = rows(folder, "eval-svi0-k10"), rows(folder, "eval-svi20-k10")
    if whole0 is not None and whole20 is not None and whole0.keys() == whole20.keys():
        idx = sorted(whole0)
        change = [whole0[i]["elbo"] - whole20[i]["elbo"] for i in idx]
        m, lo, hi = interval(change)
        n = len(idx)
        out.append(f"whole test ({n} sentences, K = 10): -ELBO {sum(whole0[i]['elbo'] for i in idx) / n:.2f} -> "
                   f"{sum(whole20[i]['elbo'] for i in idx) / n:.2f}: the refinement closes {m:.2f} [{lo:.2f}, {hi:.2f}]; "
                   f"bound rose on {sum(c < 0 for c in change)} of {n}")
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: bench/svi_gap.py RUN_DIR")
    print("\n".join(report(Path(sys.argv[1]))))
