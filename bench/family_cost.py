"""Benchmark: what a training step costs for each latent family, on the same PTB batches.

    .venv/bin/python bench/family_cost.py [--batches 24] [--block 4] [--threads 1]

PTB train (../shared/data/ptb, word tokenizer, V = 10,000), emb/hidden/nz 256/256/32, the LSTM
VAE's real training step (`sentvae.step.train_step`) with each posterior x prior x objective:
the Gaussian ELBO (the reference), IWAE with K = 2, 5, 10 samples, an IAF posterior with 1, 2 and
4 flow steps, a mixture prior of 10 components, a vMF posterior, the dilated CNN decoder (1,2,4),
a categorical latent of 10 values under each estimator (exact: 10 decoder passes), and
semi-amortized inference with 5 refinement steps. The batches hold --max-tokens tokens of *data*
for every family (an IWAE batch decodes K times as many), so the figure is data tokens/s and the
ratio is the cost of one training token against the Gaussian's. The families take turns every
--block batches, so all see the same machine load. Prints figures; never part of the tests.
"""

import argparse
import time

from ptb import PTB, ptb_tokenizer  # first: puts the repository on sys.path, Hub offline

import torch  # noqa: E402

from sentvae.config import ModelConfig, TrainConfig  # noqa: E402
from sentvae.corpus import collate, load_corpus, make_batches  # noqa: E402
from sentvae.model import build_model  # noqa: E402
from sentvae.step import build_optimizer, train_step  # noqa: E402

FAMILIES = {
    "gaussian elbo": ({}, {}),
    "iwae K=2": ({}, {"objective": "iwae", "train_samples": 2}),
    "iwae K=5": ({}, {"objective": "iwae", "train_samples": 5}),
    "iwae K=10": ({}, {"objective": "iwae", "train_samples": 10}),
    "iaf 1 step": ({"posterior": "iaf", "flow_steps": 1}, {}),
    "iaf 2 steps": ({"posterior": "iaf", "flow_steps": 2}, {}),
    "iaf 4 steps": ({"posterior": "iaf", "flow_steps": 4}, {}),
    "gmm 10": ({"prior": "gmm", "components": 10}, {}),
    "vmf kappa 35": ({"posterior": "vmf", "kappa": 35.0}, {}),
    "cnn decoder": ({"decoder": "cnn"}, {}),
    "cat 10 exact": ({"latent_type": "categorical", "categories": 10}, {"estimator": "exact"}),
    "cat 10 reinforce": ({"latent_type": "categorical", "categories": 10}, {"estimator": "reinforce"}),
    "cat 10 gumbel": ({"latent_type": "categorical", "categories": 10}, {"estimator": "gumbel"}),
    "svi 5 steps": ({}, {"svi_steps": 5}),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ptb", default=str(PTB))
    ap.add_argument("--max-tokens", type=int, default=1000)
    ap.add_argument("--batches", type=int, default=24, help="timed batches per family")
    ap.add_argument("--block", type=int, default=4, help="batches per turn")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tok = ptb_tokenizer()
    corpus = load_corpus([f"{args.ptb}/ptb.train.txt"], tok, 100)
    batches = make_batches(corpus.lengths, args.max_tokens, seed=0, epoch=0)[:args.batches + args.block]
    runs = {}
    for name, (model_opts, train_opts) in FAMILIES.items():
        torch.manual_seed(0)
        K = train_opts.get("train_samples", 1)
        cfg = TrainConfig(max_tokens=args.max_tokens * K, word_dropout=0.0, **train_opts)
        model = build_model(ModelConfig(vocab_size=tok.vocab_size, bidirectional=False, dropout=0.5,
                                        **model_opts)).train()
        runs[name] = (model, build_optimizer(model.parameters(), cfg), cfg)
    seconds, tokens = dict.fromkeys(runs, 0.0), 0
    for start in range(0, len(batches), args.block):
        block = batches[start:start + args.block]
        for name, (model, opt, cfg) in runs.items():
            t = time.perf_counter()
            for idx in block:
                train_step(model, opt, collate(corpus, idx), 1.0, cfg)
            if start:                                              # the first block warms up
                seconds[name] += time.perf_counter() - t
        if start:
            tokens += sum(int(corpus.lengths[idx].sum()) + len(idx) for idx in block)
    base = tokens / seconds["gaussian elbo"]
    print(f"PTB train, {tokens:,} data tokens per family in batches of <= {args.max_tokens}, "
          f"{args.threads} thread(s), torch {torch.__version__}")
    print(f"{'family':18s} {'tokens/s':>10s} {'cost x':>8s}")
    for name, s in seconds.items():
        print(f"{name:18s} {tokens / s:10,.0f} {base / (tokens / s):8.2f}")


if __name__ == "__main__":
    main()
