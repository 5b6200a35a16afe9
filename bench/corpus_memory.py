"""Benchmark: training memory does not grow with corpus size.

    .venv/bin/python bench/corpus_memory.py [--sizes 40000 400000] [--steps 40]

Writes Penn Treebank train repeated to each size into a temporary folder and runs
`sentvae train` on it in a fresh process (cold datasets cache: tokenization, the Arrow
cache and the memory-mapped token file are all built in that run), for the same number of
steps with the same model (emb/hidden/nz 256/256/32, word tokenizer V = 10,000). Prints
the peak RSS of each process. Prints figures; never part of the test suite.
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import resource, runpy, sys
sys.argv = ["sentvae"] + sys.argv[1:]
try:
    runpy.run_module("sentvae", run_name="__main__")
except SystemExit as e:
    if e.code:
        raise
print("PEAK_RSS_MB=%.0f" % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ptb", type=Path, default=ROOT.parent / "shared" / "data" / "ptb")
    ap.add_argument("--sizes", type=int, nargs="+", default=[40_000, 400_000])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    lines = [s for s in (args.ptb / "ptb.train.txt").read_text().splitlines() if s.strip()]
    tok = ROOT / "bench" / ".ptb-word10k.model"
    if not tok.is_file():
        sys.exit("run bench/train_speed.py or bench/iw_eval.py once first: they build the PTB tokenizer")
    print(f"PTB train repeated; {args.steps} training steps; emb/hidden/nz 256/256/32; {args.threads} threads")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            data = Path(tmp) / f"ptb{n}.txt"
            data.write_text("\n".join((lines * (n // len(lines) + 1))[:n]) + "\n")
            env = {**os.environ, "HF_DATASETS_CACHE": str(Path(tmp) / f"cache{n}"),
                   "OMP_NUM_THREADS": str(args.threads)}
            r = subprocess.run([sys.executable, "-c", CHILD, "train", "--data", str(data),
                                "--valid", str(args.ptb / "ptb.valid.txt"), "--tokenizer", str(tok),
                                "--out", str(Path(tmp) / f"ck{n}"), "--max-steps", str(args.steps),
                                "--eval-every", "100000", "--max-tokens", "2000", "--quiet"],
                               cwd=ROOT, env=env, capture_output=True, text=True)
            if r.returncode:
                sys.exit(r.stderr[-2000:])
            peak = r.stdout.strip().rsplit("PEAK_RSS_MB=", 1)[1]
            print(f"{n:>9,} sentences ({data.stat().st_size / 1e6:6.1f} MB of text): peak RSS {peak} MB")


if __name__ == "__main__":
    main()
