"""Benchmark: each categorical-latent estimator's gradient against the exact one, on a fixed PTB batch.

    nice .venv/bin/python bench/gradvar.py [--train-steps 100] [--draws 100] [--threads 1]

The Deep Latent NLP tutorial's trade-off (Kim, Wiseman and Rush 2018), measured: enumeration is
exact but costs K decoder passes; the score function (REINFORCE) is unbiased but noisy, less so with
a learned baseline; the Gumbel-softmax relaxation is low-variance but biased, the bias growing with
the temperature. Model: an LSTM VAE with a categorical latent alone (--latent-type categorical),
emb/hidden 128, K = --categories (10), a category embedding of 32, unidirectional encoder, no
dropout, PTB's word tokenizer (V = 10,000, bench/ptb.py). It is first trained --train-steps updates
with the exact estimator on PTB train (AdamW 2e-3, KL weight 1; 0 = at initialisation), so that
q(c|x) and the baseline are not at their starting points. Then, on a fixed batch (the first
--batch sentences of ptb.valid.txt), with KL weight 1 and no word dropout:

    g*     the exact gradient of the batch's ELBO loss with respect to the encoder's parameters
           (the LSTM encoder and the logits layer: not the shared embedding, not the baseline)
    g_i    one estimator draw (one sample of c per sentence), i = 1..--draws
    bias   ||mean_i g_i - g*|| / ||g*||
    floor  sqrt(variance / draws) / ||g*||: the bias an unbiased estimator shows from noise alone
    var    mean_i ||g_i - mean g||^2 / ||g*||^2   (the single-draw variance, relative)
    mse    mean_i ||g_i - g*||^2 / ||g*||^2       (= bias^2 + var, up to the 1/draws term)

Prints one table; never part of the tests.
"""

import argparse
import math
import time

from ptb import PTB, ptb_tokenizer  # first: puts the repository on sys.path, Hub offline

import numpy as np  # noqa: E402
import torch  # noqa: E402

from sentvae.config import ModelConfig, TrainConfig  # noqa: E402
from sentvae.corpus import collate, corpus_from_ids, load_corpus, make_batches  # noqa: E402
from sentvae.evaluate import evaluate  # noqa: E402
from sentvae.model import build_model  # noqa: E402
from sentvae.noise import StreamNoise  # noqa: E402
from sentvae.objective import build_objective  # noqa: E402
from sentvae.step import build_optimizer, train_step  # noqa: E402


def estimators(args) -> dict:
    """name -> (TrainConfig options, use the baseline)."""
    rows = {"exact": (dict(estimator="exact"), True),
            "reinforce + baseline": (dict(estimator="reinforce"), True),
            "reinforce, no baseline": (dict(estimator="reinforce"), False)}
    for tau in args.taus:
        rows[f"gumbel tau={tau:g}"] = (dict(estimator="gumbel", tau=tau, tau_min=tau), True)
    for tau in args.st_taus:
        rows[f"gumbel-ST tau={tau:g}"] = (dict(estimator="gumbel", tau=tau, tau_min=tau, straight_through=True), True)
    return rows


def encoder_grad(model, objective, batch, noise) -> torch.Tensor:
    model.zero_grad(set_to_none=True)
    terms = model(batch, samples=1, noise=noise, draw=objective.draw)
    objective.loss(terms, 1.0)[0].backward()
    params = list(model.encoder.parameters()) + list(model.to_posterior.to_logits.parameters())
    return torch.cat([p.grad.flatten() for p in params]).double()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ptb", default=str(PTB))
    ap.add_argument("--categories", type=int, default=10)
    ap.add_argument("--width", type=int, default=128, help="embedding and LSTM hidden size")
    ap.add_argument("--train-steps", type=int, default=100)
    ap.add_argument("--train-tokens", type=int, default=2000, help="decoder tokens per training batch (K copies)")
    ap.add_argument("--batch", type=int, default=16, help="sentences in the fixed batch")
    ap.add_argument("--draws", type=int, default=100)
    ap.add_argument("--taus", type=float, nargs="*", default=[0.1, 0.5, 1.0, 2.0])
    ap.add_argument("--st-taus", type=float, nargs="*", default=[0.5, 1.0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    K = args.categories
    tok = ptb_tokenizer()
    torch.manual_seed(args.seed)
    mcfg = ModelConfig(vocab_size=tok.vocab_size, emb_dim=args.width, hidden=args.width, latent=32, dropout=0.0,
                       bidirectional=False, latent_type="categorical", categories=K)
    model = build_model(mcfg)
    started = time.perf_counter()
    if args.train_steps:
        train = load_corpus([f"{args.ptb}/ptb.train.txt"], tok, 100)
        cfg = TrainConfig(max_tokens=args.train_tokens, word_dropout=0.0, kl_anneal="none", estimator="exact")
        opt = build_optimizer(model.parameters(), cfg)
        batches = make_batches(train.lengths, args.train_tokens // K, seed=args.seed)
        model.train()
        for step in range(args.train_steps):
            train_step(model, opt, collate(train, batches[step % len(batches)]), 1.0, cfg, step=step)
    trained_s = time.perf_counter() - started
    model.eval()
    valid = load_corpus([f"{args.ptb}/ptb.valid.txt"], tok, 100)
    idx = np.arange(args.batch)
    batch = collate(valid, idx)
    state = evaluate(model, corpus_from_ids([valid.sentence(i) for i in idx]))       # exact: K values
    exact = encoder_grad(model, build_objective(TrainConfig(estimator="exact", max_tokens=100_000), mcfg), batch, None)
    norm2 = float(exact.pow(2).sum())
    print(f"PTB: the first {args.batch} sentences of ptb.valid.txt ({int(valid.lengths[idx].sum())} tokens + EOS); "
          f"LSTM {args.width}/{args.width}, K = {K}, V = {tok.vocab_size}; trained {args.train_steps} steps with the "
          f"exact estimator ({trained_s:.0f} s); on the batch: -ELBO {state.elbo:.2f}, KL {state.kl:.3f}, "
          f"I(x; c) {state.mi:.3f} nats; {args.draws} draws per estimator, {args.threads} thread(s), "
          f"torch {torch.__version__}")
    print(f"||g*|| = {math.sqrt(norm2):.4g} over {exact.numel():,} encoder parameters")
    print(f"{'estimator':24s} {'copies':>6s} {'bias':>8s} {'floor':>8s} {'var':>10s} {'mse':>10s} {'ms/draw':>8s}")
    gen = torch.Generator().manual_seed(args.seed + 1)
    for name, (opts, use_baseline) in estimators(args).items():
        cfg = TrainConfig(max_tokens=100_000, **opts)
        objective = build_objective(cfg, mcfg)
        objective.use_baseline = use_baseline
        draws = 1 if opts["estimator"] == "exact" else args.draws
        t = time.perf_counter()
        g = torch.stack([encoder_grad(model, objective, batch, StreamNoise(args.batch, 1, generator=gen))
                         for _ in range(draws)])
        ms = 1000 * (time.perf_counter() - t) / draws
        mean = g.mean(0)
        var = float((g - mean).pow(2).sum(1).mean()) / norm2
        mse = float((g - exact).pow(2).sum(1).mean()) / norm2
        bias = float((mean - exact).norm()) / math.sqrt(norm2)
        floor = math.sqrt(var / draws)
        print(f"{name:24s} {objective.copies:6d} {bias:8.4f} {floor:8.4f} {var:10.4g} {mse:10.4g} {ms:8.0f}")


if __name__ == "__main__":
    main()
