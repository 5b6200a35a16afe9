"""Benchmark: the LSTM decoder against the dilated-CNN decoder at the same width, on CPU.

    .venv/bin/python bench/cnn_decoder_speed.py [--threads 1] [--reps 5] [--width 256]

Decoders alone (no embedding, no output layer: those are the same for both), one batch of
32 sentences of 24 tokens, forward + backward of a fixed random projection of the hidden states.
The runs alternate, so each sees the same machine load. Prints tokens/s and FLOPs per token.

FLOPs are counted analytically, 2 per multiply-add of the matrix products of one position's
forward pass (biases, norms, gates' nonlinearities left out):
  LSTM, per layer   2 * 4H * (in + H)           in = E + nz (z is concatenated to every input)
  CNN               2 * [(E + nz) H + sum over blocks (2 H I + k I^2)]     I = inner width
and forward + backward is taken as 3x the forward (backward: two products per forward product).
The CNN's cost does not depend on the receptive field's span, only on the number of blocks.
"""

import argparse
import time

import torch

from sentvae.config import ModelConfig
from sentvae.model.cnn import CNNDecoder, receptive_field
from sentvae.model.lstm import LSTMDecoder

STACKS = {                   # Yang et al.'s names for three depths of the same pattern
    "cnn 1,2,4": (1, 2, 4),
    "cnn 1..16": (1, 2, 4, 8, 16),
    "cnn 1..16 x2": (1, 2, 4, 8, 16) * 2,
}


def lstm_flops_per_token(emb: int, latent: int, hidden: int, layers: int = 1) -> int:
    ins = [emb + latent] + [hidden] * (layers - 1)
    return sum(2 * 4 * hidden * (i + hidden) for i in ins)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--width", type=int, default=256, help="embedding and hidden size of both decoders")
    ap.add_argument("--latent", type=int, default=32)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--length", type=int, default=24)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    W, nz, B, T = args.width, args.latent, args.batch, args.length
    cfg = ModelConfig(vocab_size=100, emb_dim=W, hidden=W, latent=nz, dropout=0.0)
    decoders = {"lstm": (LSTMDecoder(cfg), lstm_flops_per_token(W, nz, W), "all")}
    for name, dil in STACKS.items():
        dec = CNNDecoder(W, nz, W, dilations=dil, kernel_size=3)
        decoders[name] = (dec, dec.flops_per_token(), str(receptive_field(dil, 3)))
    emb, z = torch.randn(B, T, W), torch.randn(B, nz)
    proj = torch.randn(W)

    def fwd_bwd(dec):
        dec.zero_grad(set_to_none=True)
        (dec(emb, z) @ proj).sum().backward()

    for dec, _, _ in decoders.values():           # warm-up
        dec.train()
        fwd_bwd(dec)
    secs = dict.fromkeys(decoders, 0.0)
    iters = 4
    for _ in range(args.reps):
        for name, (dec, _, _) in decoders.items():
            t0 = time.perf_counter()
            for _ in range(iters):
                fwd_bwd(dec)
            secs[name] += time.perf_counter() - t0
    tokens = B * T * iters * args.reps
    print(f"decoders alone, width {W}, nz {nz}, batch {B} x {T} tokens, fp32, {args.threads} thread(s), "
          f"{iters * args.reps} forward+backward each, interleaved")
    print(f"{'decoder':14s} {'RF':>4s} {'params':>9s} {'fwd MFLOP/tok':>14s} {'fwd+bwd MFLOP/tok':>18s} "
          f"{'tokens/s':>9s} {'GFLOP/s':>8s}")
    for name, (dec, flops, rf) in decoders.items():
        tps = tokens / secs[name]
        params = sum(p.numel() for p in dec.parameters())
        print(f"{name:14s} {rf:>4s} {params:9,d} {flops / 1e6:14.3f} {3 * flops / 1e6:18.3f} "
              f"{tps:9,.0f} {3 * flops * tps / 1e9:8.2f}")


if __name__ == "__main__":
    main()
