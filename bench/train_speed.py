"""Benchmark: training speed of sentvae against the bare networks, on the same batches.

    .venv/bin/python bench/train_speed.py [--arch lstm|transformer] [--batches 60] [--threads 2]

Penn Treebank train (../shared/data/ptb, word tokenizer, V = 10,000) loaded through
sentvae.data (HF datasets), length-bucketed batches of --max-tokens (2,000). Emb/hidden/nz
256/256/32 with the tool's other defaults.

A: sentvae's real training step (`sentvae.step.train_step`: word dropout, reparameterised
   sample, annealed ELBO with KL, backward, gradient clipping, AdamW) plus collation.
B: the limit, a plain PyTorch loop over the same batches with no VAE logic:
   lstm        the same embedding + encoder LSTM + decoder LSTM (z = the encoder head's
               output, no sampling) + output layer; no dropout, no packing, no clipping.
   transformer a causal Transformer LM (nn.TransformerEncoderLayer, pre-LN, causal mask)
               with as many layers as the VAE's encoder and decoder together, same width.
Both run forward, backward and AdamW; they alternate every --block batches, so both see
the same machine load. Prints tokens/s of each and the ratio, padding fraction, peak RSS,
and for the transformer the speed-up of decoding with the key/value cache.
"""

import argparse
import resource
import time
from pathlib import Path

from ptb import PTB, ptb_tokenizer  # first: puts the repository on sys.path, Hub offline

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from sentvae.config import ModelConfig, TrainConfig  # noqa: E402
from sentvae.corpus import collate, load_corpus, make_batches, padding_fraction  # noqa: E402
from sentvae.decode import greedy  # noqa: E402
from sentvae.model import build_model  # noqa: E402
from sentvae.objective import kl_weight  # noqa: E402
from sentvae.tokenizer import BOS, PAD  # noqa: E402
from sentvae.step import train_step  # noqa: E402


class BareLSTM(nn.Module):
    def __init__(self, V, E=256, H=256, nz=32):
        super().__init__()
        self.emb = nn.Embedding(V, E)
        self.enc = nn.LSTM(E, H, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * H, 2 * nz)
        self.dec = nn.LSTM(E + nz, H, batch_first=True)
        self.out = nn.Linear(H, V)

    def forward(self, x):
        _, (h, _) = self.enc(self.emb(x[:, 1:]))
        z = self.head(torch.cat([h[0], h[1]], dim=-1)).chunk(2, dim=-1)[0]
        e = self.emb(x[:, :-1])
        d, _ = self.dec(torch.cat([e, z.unsqueeze(1).expand(-1, e.size(1), -1)], dim=-1))
        return self.out(d)


class BareTransformerLM(nn.Module):
    def __init__(self, V, d=256, layers=4, heads=4, ff=1024):
        super().__init__()
        self.emb = nn.Embedding(V, d)
        self.pos = nn.Embedding(512, d)
        layer = nn.TransformerEncoderLayer(d, heads, ff, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.ln = nn.LayerNorm(d)

    def forward(self, x):
        inp = x[:, :-1]
        T = inp.size(1)
        h = self.emb(inp) + self.pos(torch.arange(T, device=x.device))
        mask = nn.Transformer.generate_square_subsequent_mask(T, device=x.device)
        return F.linear(self.ln(self.blocks(h, mask=mask, is_causal=True)), self.emb.weight)


def bare_step(net, opt, x):
    logits = net(x)
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), x[:, 1:].reshape(-1), ignore_index=PAD,
                           reduction="sum") / x.size(0)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


@torch.inference_mode()
def greedy_without_cache(model, z, max_len):
    """Re-runs the decoder over the whole prefix for every new token: O(T^2) work."""
    tokens = torch.full((z.size(0), 1), BOS, dtype=torch.long)
    for _ in range(max_len):
        logits = model.logits(model.decoder(model.emb(tokens), z)[:, -1])
        tokens = torch.cat([tokens, logits.argmax(-1, keepdim=True)], dim=1)
    return tokens


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", choices=["lstm", "transformer"], default="lstm")
    ap.add_argument("--ptb", type=Path, default=PTB)
    ap.add_argument("--max-tokens", type=int, default=2000)
    ap.add_argument("--batches", type=int, default=60, help="timed batches per side")
    ap.add_argument("--block", type=int, default=5, help="batches per A/B alternation")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tok = ptb_tokenizer(args.ptb)
    corpus = load_corpus([str(args.ptb / "ptb.train.txt")], tok, 100)
    epoch = make_batches(corpus.lengths, args.max_tokens, seed=0, epoch=0)
    batches = epoch[:args.batches + args.block]          # the first block warms both up
    mcfg = ModelConfig(vocab_size=tok.vocab_size, arch=args.arch, emb_dim=256, hidden=256, latent=32)
    cfg = TrainConfig(max_tokens=args.max_tokens)
    model = build_model(mcfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    if args.arch == "lstm":
        bare = BareLSTM(tok.vocab_size)
    else:
        bare = BareTransformerLM(tok.vocab_size, 256, mcfg.enc_layers + mcfg.dec_layers, mcfg.heads, mcfg.ff)
    bare_opt = torch.optim.AdamW(bare.parameters(), lr=cfg.lr)
    print(f"{args.arch}: sentvae {model.num_parameters():,} parameters, bare {sum(p.numel() for p in bare.parameters()):,}; "
          f"PTB train {len(corpus):,} sentences, {len(epoch)} batches of <= {args.max_tokens} tokens, "
          f"padding {100 * padding_fraction(epoch, corpus.lengths):.2f}%; {args.threads} threads, torch {torch.__version__}")
    t_a = t_b = 0.0
    tokens = 0
    step = 0
    for start in range(0, len(batches), args.block):
        block = batches[start:start + args.block]
        t0 = time.perf_counter()
        for idx in block:
            train_step(model, opt, collate(corpus, idx), kl_weight(step, cfg), cfg)
            step += 1
        t1 = time.perf_counter()
        for idx in block:
            bare_step(bare, bare_opt, collate(corpus, idx).tokens)
        t2 = time.perf_counter()
        if start:                                            # skip the warm-up block
            t_a += t1 - t0
            t_b += t2 - t1
            tokens += sum(int(corpus.lengths[idx].sum()) + len(idx) for idx in block)
    print(f"sentvae train step:   {tokens / t_a:9,.0f} tokens/s ({t_a:.1f} s)")
    print(f"bare networks:        {tokens / t_b:9,.0f} tokens/s ({t_b:.1f} s)")
    target = 0.9 if args.arch == "lstm" else 0.85
    print(f"ratio sentvae / bare: {t_b / t_a:9.3f}  (target >= {target})")
    print(f"peak RSS:             {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:9,.0f} MB")
    if args.arch == "transformer":
        model.eval()
        z = torch.randn(64, 32)
        for name, fn in (("with key/value cache", lambda: greedy(model, z, 40)),
                         ("without cache", lambda: greedy_without_cache(model, z, 40))):
            fn()
            t = time.perf_counter()
            fn()
            print(f"decode 64 x 40 tokens {name}: {time.perf_counter() - t:.3f} s")


if __name__ == "__main__":
    main()
