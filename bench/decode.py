"""Benchmark: decoding speed, batched vs one sentence at a time.

    .venv/bin/python bench/decode.py [--n 1000] [--sequential 200] [--threads 2]

A PTB-size LSTM VAE (vocabulary 10,000, emb/hidden/nz 256/256/32, freshly initialised, so
no sequence stops early: every code decodes exactly --max-len steps, the worst case and the
same work in both modes). For greedy, top-p 0.9 sampling and beam 5 it times N codes decoded
in batches of --batch-size against codes decoded one at a time (on the first --sequential
codes; a rate, so the counts need not match), interleaved strategy by strategy, and prints
sentences/s and the speedup of batching. Prints figures; never part of the test suite.
"""

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from sentvae.config import ModelConfig  # noqa: E402
from sentvae.decode import DecodeConfig, decode  # noqa: E402
from sentvae.model import build_model  # noqa: E402


def rate(model, z, cfg, batch_size):
    t = time.perf_counter()
    for s in range(0, z.size(0), batch_size):
        decode(model, z[s:s + batch_size], cfg)
    return z.size(0) / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--sequential", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--max-len", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model(ModelConfig(vocab_size=10000, emb_dim=256, hidden=256, latent=32)).eval()
    z = torch.randn(args.n, 32)
    print(f"PTB-size model (V=10000, 256/256/32), {args.max_len} steps per sentence, {args.threads} threads, "
          f"batch {args.batch_size}; torch {torch.__version__}")
    strategies = {"greedy": DecodeConfig(max_len=args.max_len),
                  "top-p 0.9": DecodeConfig(max_len=args.max_len, sample=True, top_p=0.9),
                  "beam 5": DecodeConfig(max_len=args.max_len, beam=5)}
    print(f"{'strategy':<10} {'batched sent/s':>15} {'one-at-a-time':>15} {'speedup':>8}")
    for name, cfg in strategies.items():
        batched = rate(model, z, cfg, args.batch_size)
        single = rate(model, z[:args.sequential], cfg, 1)
        print(f"{name:<10} {batched:>15.1f} {single:>15.1f} {batched / single:>7.1f}x")


if __name__ == "__main__":
    main()
