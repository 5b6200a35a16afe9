"""One suite for every architecture: the interface train, eval and decode rely on."""

import numpy as np
import pytest
import torch

from sentvae.checkpoint import load_model, save_checkpoint
from sentvae.config import ModelConfig
from sentvae.corpus import collate, corpus_from_ids
from sentvae.decode import DecodeConfig, beam_search, decode, greedy
from sentvae.errors import SentvaeError
from sentvae.model import build_model
from sentvae.tokenizer import BOS, EOS, PAD

ARCHS = {
    "lstm": dict(arch="lstm", emb_dim=24, hidden=32, latent=6, dropout=0.0),
    "transformer": dict(arch="transformer", emb_dim=32, hidden=32, latent=6, dropout=0.0, heads=4, ff=48,
                        enc_layers=2, dec_layers=2),
}
V = 40


@pytest.fixture(params=sorted(ARCHS))
def model(request):
    torch.manual_seed(0)
    return build_model(ModelConfig(vocab_size=V, **ARCHS[request.param])).eval()


def _batch(seqs):
    return collate(corpus_from_ids(seqs), np.arange(len(seqs)))


SEQS = [[5, 6, 7, 8, 9, 10, 11], [12, 13, 14], [15, 16, 17, 18, 19]]


def test_shapes_loss_and_gradients(model):
    batch = _batch(SEQS)
    model.train()
    terms = model(batch, samples=2)
    assert torch.all(terms.bow == 0)                      # no bow head by default
    q = terms.posterior
    assert terms.ll.shape == terms.log_q.shape == terms.log_p.shape == (3, 2)
    assert q.mu.shape == (3, 6) and q.logvar.shape == (3, 6) and terms.kl.total.shape == (3,)
    assert torch.all(terms.ll < 0)
    (-terms.ll.mean() + q.mu.pow(2).mean()).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_incremental_decoding_matches_the_full_forward(model):
    x = _batch(SEQS).tokens
    z = torch.randn(3, 6)
    with torch.no_grad():
        full = model.logits(model.decoder(model.emb(x[:, :-1]), z)).log_softmax(-1)   # (B, T, V)
        state, steps = model.init_state(z), []
        for t in range(x.size(1) - 1):
            logits, state = model.step(x[:, t], state)
            steps.append(logits.log_softmax(-1))
    assert torch.allclose(full, torch.stack(steps, dim=1), atol=1e-4)


def test_decoder_is_causal(model):
    x = _batch([SEQS[0]]).tokens
    y = x.clone()
    y[0, 4] = 30                                          # change the input at position 4
    z = torch.randn(1, 6)
    with torch.no_grad():
        a = model.logits(model.decoder(model.emb(x[:, :-1]), z)).log_softmax(-1)
        b = model.logits(model.decoder(model.emb(y[:, :-1]), z)).log_softmax(-1)
    assert torch.allclose(a[:, :4], b[:, :4], atol=1e-5)   # predictions before it are untouched
    assert not torch.allclose(a[:, 4:], b[:, 4:], atol=1e-5)


def test_padding_does_not_leak(model):
    """A sentence scores the same alone and beside longer ones, and its code is the same."""
    z = torch.randn(1, 6)
    with torch.no_grad():
        (x1, l1), (xb, lb) = ((b.tokens, b.lengths) for b in (_batch([SEQS[1]]), _batch(SEQS)))
        mu1 = model.encode(x1[:, 1:], l1).mean()
        mub = model.encode(xb[:, 1:], lb).mean()
        s1 = model.log_likelihood(z, x1[:, :-1], x1[:, 1:])
        sb = model.log_likelihood(z.expand(3, -1), xb[:, :-1], xb[:, 1:])
    assert torch.allclose(mu1[0], mub[1], atol=1e-5)
    assert torch.allclose(s1[0], sb[1], atol=1e-4)


def test_checkpoint_round_trip(model, tmp_path, tok):
    cfg = ModelConfig(**{**model.cfg.to_dict(), "vocab_size": tok.vocab_size})
    torch.manual_seed(1)
    m = build_model(cfg).eval()
    save_checkpoint(tmp_path / "m.pt", {"model_config": cfg.to_dict(), "tokenizer": tok.proto,
                                        "model": m.state_dict()})
    m2, tok2, _ = load_model(tmp_path / "m.pt")
    b = _batch([[5, 6, 7]])
    z = torch.randn(2, cfg.latent)
    with torch.no_grad():
        assert torch.equal(m.encode(b.tokens[:, 1:], b.lengths).mean(), m2.encode(b.tokens[:, 1:], b.lengths).mean())
    assert greedy(m, z, 12) == greedy(m2, z, 12)


def test_every_decoder_works_and_ends(model):
    z = torch.randn(5, 6)
    for cfg in (DecodeConfig(max_len=15), DecodeConfig(max_len=15, sample=True, top_p=0.9),
                DecodeConfig(max_len=15, beam=3)):
        out = decode(model, z, cfg)
        assert len(out) == 5
        assert all(len(s) <= 15 and not {PAD, BOS, EOS} & set(s) for s in out)
    assert beam_search(model, z, 1, 15)[0] == greedy(model, z, 15)


def test_transformer_config_errors():
    with pytest.raises(SentvaeError, match="--heads"):
        ModelConfig(vocab_size=50, arch="transformer", emb_dim=30, hidden=30, heads=4)
    with pytest.raises(SentvaeError, match="--d-model"):
        ModelConfig(vocab_size=50, arch="transformer", emb_dim=32, hidden=64)
    with pytest.raises(SentvaeError, match="--arch"):
        ModelConfig(vocab_size=50, arch="gru")


def test_lm_baseline_ignores_z_and_its_iw_nll_is_exact(tok):
    from sentvae.corpus import corpus_from_texts
    from sentvae.evaluate import evaluate
    for arch, opts in ARCHS.items():
        torch.manual_seed(0)
        m = build_model(ModelConfig(vocab_size=tok.vocab_size, no_latent=True, **opts)).eval()
        # a point latent at 0: no encoder weights, no posterior weights
        assert not list(m.encoder.parameters()) and not list(m.to_posterior.parameters())
        x = _batch(SEQS).tokens
        with torch.no_grad():
            a = m.log_likelihood(torch.randn(3, 6), x[:, :-1], x[:, 1:])
            b = m.log_likelihood(torch.zeros(3, 6), x[:, :-1], x[:, 1:])
        assert torch.equal(a, b)                                   # z makes no difference
        from conftest import BUNDLED
        c = corpus_from_texts((BUNDLED / "test.txt").read_text().splitlines()[:200], tok, 40)
        r1, r9 = evaluate(m, c, iw_samples=1), evaluate(m, c, iw_samples=9, seed=3)
        # no encoder: every posterior is the prior, so MI is exactly 0, not an estimate's noise
        assert r1.kl == 0 and r1.au == 0 and r1.mi == 0.0 and r9.mi == 0.0
        assert r1.iw_nll == pytest.approx(r9.iw_nll, abs=1e-5) == pytest.approx(r1.elbo, abs=1e-5)
        assert r9.iw_samples == 1                                  # exact at K = 1: no K x cost
