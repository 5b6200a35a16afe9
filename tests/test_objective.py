import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from sentvae.objective import elbo_loss, gaussian_kl, kl_weight, word_dropout
from sentvae.tokenizer import BOS, PAD, UNK
from conftest import tiny_train_config


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
