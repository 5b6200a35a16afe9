import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from sentvae.kl import gaussian_standard_normal, kl_divergence as kl_of
from sentvae.model.vae import Terms
from sentvae.objective import ELBO, kl_weight, word_dropout
from sentvae.posteriors import Gaussian
from sentvae.priors import StandardNormal
from sentvae.tokenizer import BOS, PAD, UNK
from conftest import tiny_train_config


def gaussian_kl(mu, logvar):
    return gaussian_standard_normal(Gaussian(mu, logvar), None)


def elbo_loss(log_px, mu, logvar, weight, cfg, bow=None):
    """The ELBO objective on one sample's log p(x|z) (B,) and a Gaussian posterior."""
    q, p = Gaussian(mu, logvar), StandardNormal(mu.size(1))
    zeros = log_px.new_zeros(len(log_px), 1)
    terms = Terms(log_px.unsqueeze(1), zeros, zeros, kl_of(q, p), log_px.new_zeros(len(log_px)) if bow is None else bow, q)
    return ELBO(cfg).loss(terms, weight)


def test_kl_closed_form_matches_torch_distributions():
    torch.manual_seed(0)
    mu, logvar = torch.randn(16, 8), torch.randn(16, 8)
    expected = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0))
    assert torch.allclose(gaussian_kl(mu, logvar), expected, atol=1e-5)
    assert torch.all(gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 3)) == 0)


@pytest.mark.parametrize("step,expected", [(0, 0.0), (50, 0.5), (100, 1.0), (400, 1.0)])
def test_linear_annealing(step, expected):
    assert kl_weight(step, tiny_train_config(kl_anneal="linear", anneal_steps=100)) == pytest.approx(expected)


def test_logistic_annealing_is_a_centred_sigmoid():
    cfg = tiny_train_config(kl_anneal="logistic", anneal_steps=1000)
    w = [kl_weight(s, cfg) for s in range(0, 1001, 50)]
    assert w == sorted(w)
    assert kl_weight(500, cfg) == pytest.approx(0.5)
    assert kl_weight(0, cfg) < 0.01 and kl_weight(1000, cfg) > 0.99


def test_cyclical_annealing_restarts_each_cycle():
    cfg = tiny_train_config(kl_anneal="cyclical", cycles=4, cycle_ratio=0.5)
    total = 400                                       # 4 cycles of 100 steps, ramp over 50
    for c in range(4):
        assert kl_weight(100 * c, cfg, total) == 0.0
        assert kl_weight(100 * c + 25, cfg, total) == pytest.approx(0.5)
        assert kl_weight(100 * c + 50, cfg, total) == 1.0
        assert kl_weight(100 * c + 99, cfg, total) == 1.0


def test_no_annealing_is_one():
    assert kl_weight(0, tiny_train_config(kl_anneal="none")) == 1.0


def test_word_dropout_rate_and_protected_positions():
    torch.manual_seed(0)
    inp = torch.randint(4, 100, (200, 50))
    inp[:, 0] = BOS
    inp[:, 40:] = PAD
    out = word_dropout(inp, 0.3)
    body = out[:, 1:40]
    rate = (body == UNK).float().mean().item()
    assert abs(rate - 0.3) < 0.02
    assert torch.all(out[:, 0] == BOS) and torch.all(out[:, 40:] == PAD)
    kept = body != UNK
    assert torch.equal(body[kept], inp[:, 1:40][kept])
    assert torch.equal(word_dropout(inp, 0.0), inp)
    assert torch.all(word_dropout(inp, 1.0)[:, 1:40] == UNK)


def test_true_elbo_ignores_annealing_and_free_bits():
    torch.manual_seed(0)
    log_px = -torch.rand(8) * 30
    mu, logvar = torch.randn(8, 4) * 0.1, torch.zeros(8, 4)
    _, a = elbo_loss(log_px, mu, logvar, 0.1, tiny_train_config())
    loss, b = elbo_loss(log_px, mu, logvar, 1.0, tiny_train_config(free_bits=1.0))
    assert torch.allclose(a["elbo"], b["elbo"])
    assert a["elbo"].item() == pytest.approx((-log_px).mean().item() + gaussian_kl(mu, logvar).sum(1).mean().item(), rel=1e-5)
    # free bits: every dimension's KL is below 1 nat here, so the loss holds 4 nats of KL
    assert loss.item() == pytest.approx((-log_px).mean().item() + 4.0, rel=1e-5)


def test_free_bits_stops_gradient_below_the_floor():
    mu = torch.tensor([[0.1, 3.0], [0.1, 3.0]], requires_grad=True)   # dim 0 tiny KL, dim 1 large
    loss, _ = elbo_loss(torch.zeros(2), mu, torch.zeros(2, 2), 1.0, tiny_train_config(free_bits=0.5))
    loss.backward()
    assert torch.all(mu.grad[:, 0] == 0)
    assert torch.all(mu.grad[:, 1] != 0)
    assert math.isfinite(loss.item())


def test_free_bits_per_sentence_drops_each_sentences_dims_under_the_floor():
    # dim 0: sentence 0 far above the floor, sentence 1 under it (their mean above it)
    mu = torch.tensor([[3.0, 0.1], [0.5, 0.1]], requires_grad=True)
    logvar = torch.zeros(2, 2)
    kl_d = gaussian_kl(mu.detach(), logvar)                        # 0.5 mu^2
    cfg = tiny_train_config(free_bits=0.5, free_bits_over="sentence")
    loss, figs = elbo_loss(torch.zeros(2), mu, logvar, 1.0, cfg)
    assert loss.item() == pytest.approx(kl_d[0, 0].item() / 2, rel=1e-6)   # only the one above it counts
    assert figs["kl"].item() == pytest.approx(kl_d.sum(1).mean().item(), rel=1e-6)   # the true KL
    loss.backward()
    assert mu.grad[0, 0] != 0 and torch.all(mu.grad[1] == 0) and mu.grad[0, 1] == 0
    mu.grad = None     # over the batch, dim 0's mean (1.16) is above the floor: both sentences pay
    loss, _ = elbo_loss(torch.zeros(2), mu, logvar, 1.0, tiny_train_config(free_bits=0.5))
    loss.backward()
    assert mu.grad[1, 0] != 0 and torch.all(mu.grad[:, 1] == 0)


def test_bag_of_words_loss_value_and_gradient():
    from sentvae.config import ModelConfig
    from sentvae.model import build_model
    from sentvae.corpus import collate, corpus_from_ids
    import numpy as np
    torch.manual_seed(0)
    m = build_model(ModelConfig(vocab_size=30, emb_dim=16, hidden=16, latent=4, bow=True, dropout=0.0))
    batch = collate(corpus_from_ids([[5, 6, 5], [7, 8]]), np.arange(2))
    x = batch.tokens
    z = torch.randn(2, 4)
    logp = torch.log_softmax(m.bow(z), dim=-1)
    expected = -torch.stack([logp[0, 5] * 2 + logp[0, 6], logp[1, 7] + logp[1, 8]])   # EOS and PAD excluded
    assert torch.allclose(m.bow_nll(z, x[:, 1:]), expected, atol=1e-5)
    terms = m(batch)
    ll, mu, logvar, bow = terms.ll[:, 0], terms.posterior.mu, terms.posterior.logvar, terms.bow
    bow.mean().backward()
    assert m.encoder.lstm.weight_ih_l0.grad.abs().sum() > 0           # it trains the encoder through z
    cfg = tiny_train_config(bow_weight=0.5)
    loss_b, f_b = elbo_loss(ll.detach(), mu.detach(), logvar.detach(), 1.0, cfg, bow.detach())
    loss_0, f_0 = elbo_loss(ll.detach(), mu.detach(), logvar.detach(), 1.0, cfg)
    assert loss_b.item() == pytest.approx(loss_0.item() + 0.5 * bow.mean().item(), rel=1e-5)
    assert f_b["elbo"] == f_0["elbo"]                                  # never in the true ELBO


def test_reset_decoder_reinitialises_only_the_decoder():
    from sentvae.config import ModelConfig
    from sentvae.model import build_model
    torch.manual_seed(0)
    m = build_model(ModelConfig(vocab_size=30, emb_dim=16, hidden=24, latent=4))
    with torch.no_grad():
        for p in m.parameters():
            p.add_(1.0)                                                # "trained" weights
    before = {k: v.clone() for k, v in m.state_dict().items()}
    reset = m.reset_decoder()
    after = m.state_dict()
    assert {id(p) for p in reset} == {id(p) for p in [*m.decoder.parameters(), *m.proj.parameters(), m.out_bias]}
    for k in before:
        changed = not torch.equal(before[k], after[k])
        assert changed == (k.startswith(("decoder.", "proj.")) or k == "out_bias"), k
    assert torch.all(m.out_bias == 0)


def test_pretraining_keeps_kl_off_then_resets_the_decoder_once(tmp_path, tok, corpora, monkeypatch):
    import json
    from sentvae.config import ModelConfig
    from sentvae.model.vae import SentenceVAE
    from sentvae.trainer import train
    from conftest import TINY_MODEL
    calls = []
    real = SentenceVAE.reset_decoder
    monkeypatch.setattr(SentenceVAE, "reset_decoder", lambda self: calls.append(1) or real(self))
    cfg = tiny_train_config(max_steps=9, pretrain_steps=5, log_every=1, eval_every=100, kl_anneal="linear",
                            anneal_steps=4)
    train(ModelConfig(vocab_size=tok.vocab_size, **TINY_MODEL), cfg, tok, *corpora, tmp_path)
    rows = [json.loads(r) for r in open(tmp_path / "metrics.jsonl") if '"train"' in r]
    weights = {r["step"]: r["kl_weight"] for r in rows}      # the weight of update step - 1
    assert [weights[s] for s in range(1, 10)] == [0, 0, 0, 0, 0, 0, 0.25, 0.5, 0.75]
    assert calls == [1]


def test_aggressive_inner_loop_stopping_rule():
    from sentvae.aggressive import InnerLoopRule

    def run(losses):
        rule = InnerLoopRule(block=15, max_steps=100)
        for i, loss in enumerate(losses, 1):
            if rule.update(loss):
                return i
        return None

    falling = [10.0] * 15 + [9.0] * 15 + [8.0] * 15 + [8.5] * 15
    assert run(falling) == 60                  # the 4th block (8.5 x 15) is not below the 3rd
    assert run([10.0 - 0.01 * i for i in range(200)]) == 100     # always falling: capped at 100
    assert run([5.0] * 40) == 30               # a flat block counts as no progress


def test_aggressive_phase_updates_the_encoder_alone_then_ends_when_mi_falls(tmp_path, tok, corpora, monkeypatch):
    import json
    import numpy as np
    import sentvae.trainer as T
    from sentvae.config import ModelConfig
    from sentvae.corpus import collate
    from sentvae.model import build_model
    from sentvae.aggressive import split_parameters
    from conftest import TINY_MODEL
    # encoder-only update: the decoder side does not move
    torch.manual_seed(0)
    m = build_model(ModelConfig(vocab_size=tok.vocab_size, **TINY_MODEL))
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    enc, dec = split_parameters(m)
    before = [p.detach().clone() for p in m.parameters()]
    T.train_step(m, opt, collate(corpora[0], np.arange(8)), 1.0, tiny_train_config(), only=enc)
    moved = {id(p) for p, b in zip(m.parameters(), before) if not torch.equal(p, b)}
    assert moved == {id(p) for p in enc}
    # the phase: MI 1.0 after epoch 1, 0.5 after epoch 2 -> aggressive for two epochs, then not
    mis = iter([1.0, 0.5, 9.9, 9.9])
    monkeypatch.setattr(T, "evaluate", lambda *a, **k: type("R", (), {"mi": next(mis)})())
    cfg = tiny_train_config(max_steps=0, epochs=3, max_tokens=2000, log_every=1, eval_every=10_000, aggressive=True)
    T.train(ModelConfig(vocab_size=tok.vocab_size, **TINY_MODEL), cfg, tok, *corpora, tmp_path)
    rows = [json.loads(r) for r in open(tmp_path / "metrics.jsonl")]
    phase = [r for r in rows if r["split"] == "aggressive"]
    assert [(r["epoch"], r["aggressive"]) for r in phase] == [(0, True), (1, False)]
    train_rows = [r for r in rows if r["split"] == "train"]
    per_epoch = {e: [r["inner_steps"] for r in train_rows if r["epoch"] == e] for e in (0, 1, 2)}
    assert all(s >= 15 for s in per_epoch[0])            # every aggressive step ran an inner loop
    assert all(s == 0 for s in per_epoch[2][1:])         # after the phase: plain steps


def test_aggressive_phase_checked_every_n_steps(tmp_path, tok, corpora, monkeypatch):
    """--aggressive-every N: MI is checked every N steps, not at epoch ends; the phase ends at the
    first check whose MI is below the best, and later steps run no inner loop."""
    import json
    import sentvae.trainer as T
    from sentvae.config import ModelConfig
    from conftest import TINY_MODEL
    mis = iter([1.0, 2.0, 1.5] + [9.9] * 100)
    monkeypatch.setattr(T, "evaluate", lambda *a, **k: type("R", (), {"mi": next(mis)})())
    cfg = tiny_train_config(max_steps=8, epochs=0, max_tokens=2000, log_every=1, eval_every=10_000,
                            aggressive=True, aggressive_every=2)
    T.train(ModelConfig(vocab_size=tok.vocab_size, **TINY_MODEL), cfg, tok, *corpora, tmp_path)
    rows = [json.loads(r) for r in open(tmp_path / "metrics.jsonl")]
    phase = [(r["step"], r["aggressive"]) for r in rows if r["split"] == "aggressive"]
    assert phase == [(2, True), (4, True), (6, False)]
    inner = {r["step"]: r["inner_steps"] for r in rows if r["split"] == "train"}
    assert all(inner[s] >= 15 for s in range(1, 7)) and inner[7] == inner[8] == 0


def test_free_bits_over_the_whole_latent_floors_the_batch_mean_kl():
    """--free-bits-over latent: a floor of free_bits x nz nats on the batch mean of the total KL (any family)."""
    mu = torch.tensor([[0.5, 0.2], [0.1, 0.3]], requires_grad=True)       # total KL per sentence ~0.15, 0.05
    cfg = tiny_train_config(free_bits=0.5, free_bits_over="latent")
    loss, figs = elbo_loss(torch.zeros(2), mu, torch.zeros(2, 2), 1.0, cfg)
    assert loss.item() == pytest.approx(1.0)                               # 0.5 x 2 dims: the floor
    assert figs["kl"].item() == pytest.approx(0.5 * (mu ** 2).sum(1).mean().item())
    loss.backward()
    assert torch.all(mu.grad == 0)
    big = torch.tensor([[3.0, 0.1], [0.1, 0.1]], requires_grad=True)      # mean total KL 2.26 > 1: all of it pays
    loss, _ = elbo_loss(torch.zeros(2), big, torch.zeros(2, 2), 1.0, cfg)
    assert loss.item() == pytest.approx(0.5 * (big ** 2).sum(1).mean().item())
    loss.backward()
    assert torch.all(big.grad != 0)
