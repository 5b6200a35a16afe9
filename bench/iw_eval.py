"""Benchmark: importance-weighted evaluation vs the bare-decoder limit, and memory vs K.

    .venv/bin/python bench/iw_eval.py [--sentences 200] [--k 500] [--threads 2]

On Penn Treebank (../shared/data/ptb, word tokenizer, 10k vocabulary) with a freshly
initialised emb 256 / hidden 256 / nz 32 LSTM VAE (speed does not depend on training):

1. speed: `evaluate(K)` on the first N test sentences against a bare teacher-forced pass of a
   plain embedding + LSTM + output layer of the same size over the same K copies of the same
   sentences in exactly the chunks evaluate() runs (`iw_plan`): the decoder work IW-NLL cannot
   avoid, so the ratio measures everything else (encoder, noise, weights, streaming logsumexp).
   A/B interleaved group by group, so both see the same machine load; the ratio is the figure.
2. memory: peak RSS of a fresh process running `evaluate` at K = 50 and at K = 500.
Prints figures; never part of the test suite.
"""

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from ptb import PTB, ptb_tokenizer  # first: puts the repository on sys.path, Hub offline

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from sentvae.config import ModelConfig  # noqa: E402
from sentvae.corpus import collate, corpus_from_texts, subset  # noqa: E402
from sentvae.evaluate import evaluate, iw_plan  # noqa: E402
from sentvae.model import build_model  # noqa: E402
from sentvae.tokenizer import PAD  # noqa: E402


class BareDecoder(nn.Module):
    def __init__(self, vocab, emb=256, hidden=256, nz=32):
        super().__init__()
        self.emb = nn.Embedding(vocab, emb)
        self.lstm = nn.LSTM(emb + nz, hidden, batch_first=True)
        self.out = nn.Linear(hidden, vocab)
        self.nz = nz

    def forward(self, inp, tgt, z):
        e = self.emb(inp)
        h, _ = self.lstm(torch.cat([e, z.unsqueeze(1).expand(-1, e.size(1), -1)], -1))
        logits = self.out(h)
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)), tgt.reshape(-1),
                               ignore_index=PAD, reduction="none").view(tgt.shape).sum(1)


@torch.inference_mode()
def bare_pass(dec, corpus, K, max_tokens):
    for idx, chunk in iw_plan(corpus.lengths, K, max_tokens):   # the very chunks evaluate() runs
        x = collate(corpus, idx).tokens
        B = x.size(0)
        for start in range(0, K, chunk):
            kc = min(chunk, K - start)
            xr = x.repeat_interleave(kc, dim=0)
            dec(xr[:, :-1], xr[:, 1:], torch.randn(B * kc, dec.nz))


def setup(ptb: Path, n: int):
    tok = ptb_tokenizer(ptb)
    lines = [s for s in (ptb / "ptb.test.txt").read_text().splitlines() if s.strip()][:n]
    corpus = corpus_from_texts(lines, tok, 200)
    torch.manual_seed(0)
    model = build_model(ModelConfig(vocab_size=tok.vocab_size, emb_dim=256, hidden=256, latent=32,
                                    bidirectional=False)).eval()
    return tok, corpus, model


def child(args):
    """Run one evaluation in this fresh process and report its peak RSS."""
    torch.set_num_threads(args.threads)
    _, corpus, model = setup(args.ptb, args.sentences)
    t = time.perf_counter()
    evaluate(model, corpus, iw_samples=args.child, max_tokens=args.max_tokens, with_mi=True)
    print(json.dumps({"k": args.child, "seconds": time.perf_counter() - t,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ptb", type=Path, default=PTB)
    ap.add_argument("--sentences", type=int, default=200)
    ap.add_argument("--k", type=int, default=500)
    ap.add_argument("--max-tokens", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--groups", type=int, default=4, help="A/B alternations")
    ap.add_argument("--mem-sentences", type=int, default=40)
    ap.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    torch.set_num_threads(args.threads)
    tok, corpus, model = setup(args.ptb, args.sentences)
    bare = BareDecoder(tok.vocab_size).eval()
    n = len(corpus)
    tokens = int(corpus.lengths.sum()) + n
    print(f"PTB test, first {n} sentences ({tokens} tokens incl. EOS), K = {args.k}, vocab {tok.vocab_size}, "
          f"emb/hidden/nz 256/256/32, max_tokens {args.max_tokens}, {args.threads} threads, torch {torch.__version__}")
    flops = 2 * (4 * 256 * (256 + 32 + 256) + 256 * tok.vocab_size)
    print(f"decoder forward FLOPs per token: {flops / 1e6:.2f} M ({100 * 2 * 256 * tok.vocab_size / flops:.0f}% "
          f"in the output layer); one K = {args.k} pass: {flops * tokens * args.k / 1e12:.2f} TFLOP")
    groups = np.array_split(np.arange(n), args.groups)
    t_eval = t_bare = 0.0
    for g in groups:
        part = subset(corpus, g)
        t = time.perf_counter()
        evaluate(model, part, iw_samples=args.k, max_tokens=args.max_tokens, with_mi=False)
        t_eval += time.perf_counter() - t
        t = time.perf_counter()
        bare_pass(bare, part, args.k, args.max_tokens)
        t_bare += time.perf_counter() - t
    print(f"sentvae eval (K={args.k}):  {n / t_eval:8.2f} sentences/s  ({t_eval:.1f} s, "
          f"{tokens * args.k / t_eval:,.0f} decoder tokens/s, {flops * tokens * args.k / t_eval / 1e9:.1f} GFLOP/s)")
    print(f"bare decoder limit:      {n / t_bare:8.2f} sentences/s  ({t_bare:.1f} s)")
    print(f"ratio eval / limit:      {t_bare / t_eval:8.3f}  (target >= 0.8)")
    mem = []
    for k in (50, 500):
        r = subprocess.run([sys.executable, __file__, "--child", str(k), "--sentences", str(args.mem_sentences),
                            "--max-tokens", str(args.max_tokens), "--threads", str(args.threads),
                            "--ptb", str(args.ptb)], capture_output=True, text=True, check=True)
        mem.append(json.loads(r.stdout.strip().splitlines()[-1]))
        print(f"peak RSS, fresh process, K = {k:3d} on {args.mem_sentences} sentences: "
              f"{mem[-1]['peak_rss_mb']:.0f} MB")
    print(f"peak RSS ratio K=500 / K=50: {mem[1]['peak_rss_mb'] / mem[0]['peak_rss_mb']:.3f}  (target within 10%)")


if __name__ == "__main__":
    main()
