"""Benchmark: a training step with only the encoder learning (`train --train-only encoder`), three ways.

    .venv/bin/python bench/encoder_only_speed.py [--precision bf16] [--threads 1] [--reps 6]

The PTB LSTM VAE's shape (V 10,000, emb/hidden 256, nz 32, dropout 0.5), one batch of 45 sentences
of 23 tokens, sentvae.step.train_step with AdamW:
  all      every weight learns (a plain training step: the reference)
  frozen   the decoder side's weights switched off with requires_grad_(False)
  dropped  every weight requires grad; the decoder side's gradients are dropped after backward
           (train_step's `only`, what the trainer does)
The three alternate every 5 steps, so they see the same machine load. Prints seconds and steps/s
of each and the ratios to `all`.
"""

import argparse
import time

import numpy as np
import torch

from sentvae.aggressive import split_parameters
from sentvae.config import ModelConfig, TrainConfig
from sentvae.corpus import Batch
from sentvae.model import build_model
from sentvae.step import build_optimizer, train_step


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=6)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    mc = ModelConfig(vocab_size=10000, emb_dim=256, hidden=256, latent=32, bidirectional=False,
                     dropout=0.5, enc_dropout=0.0)
    cfg = TrainConfig(lr=1e-4, kl_anneal="none", word_dropout=0.0, precision=args.precision, epochs=1)
    x = torch.randint(4, 10000, (45, 24))       # (B, T): BOS, 22 words, EOS
    x[:, 0], x[:, -1] = 1, 2
    lengths = torch.full((45,), 23)
    batch = Batch(x, lengths, np.arange(45))

    runs = {}
    for way in ("all", "frozen", "dropped"):
        model = build_model(mc).train()
        enc, dec = split_parameters(model)
        if way == "frozen":
            for p in dec:
                p.requires_grad_(False)
        runs[way] = (model, build_optimizer(model.parameters(), cfg), enc if way == "dropped" else None)
    secs = dict.fromkeys(runs, 0.0)
    for _ in range(args.reps):
        for way, (model, opt, only) in runs.items():
            t0 = time.perf_counter()
            for _ in range(5):
                train_step(model, opt, batch, 1.0, cfg, None, only)
            secs[way] += time.perf_counter() - t0
    steps = 5 * args.reps
    print(f"{args.precision}, {args.threads} thread(s), {steps} steps each, interleaved:")
    for way, s in secs.items():
        print(f"  {way:8s} {s:6.2f} s  {steps / s:5.2f} steps/s  x{secs['all'] / s:.2f} the speed of all")


if __name__ == "__main__":
    main()
