"""--optimizer sgd (the published PTB recipes' optimizer) next to the default AdamW: the update it
makes, its options' checks, and what a resumed run may and may not change."""

import pytest
import torch

import sentvae
from sentvae.config import ModelConfig, TrainConfig
from sentvae.corpus import collate
from sentvae.errors import SentvaeError
from sentvae.trainer import Trainer
from conftest import TINY_MODEL, tiny_train_config


def _lm_gradient(model, batch):
    """d(mean NLL)/dw of a deterministic LM (no dropout, no word dropout, no z)."""
    model.zero_grad(set_to_none=True)
    (-model(batch).ll.mean()).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def test_sgd_steps_are_plain_gradient_descent_with_momentum(tok, corpora, tmp_path):
    lr, m = 0.5, 0.5
    t = Trainer(ModelConfig(vocab_size=tok.vocab_size, no_latent=True, **TINY_MODEL),
                tiny_train_config(optimizer="sgd", lr=lr, momentum=m, word_dropout=0.0, grad_clip=0.0),
                tok, *corpora, tmp_path)
    batches = t.epoch_batches(0)
    w0 = {n: p.detach().clone() for n, p in t.raw.named_parameters()}
    g1 = _lm_gradient(t.raw, collate(t.train_data, batches[0]))
    t.step(batches)
    for n, p in t.raw.named_parameters():              # w1 = w0 - lr g1
        assert torch.allclose(p, w0[n] - lr * g1[n], atol=1e-6), n
    w1 = {n: p.detach().clone() for n, p in t.raw.named_parameters()}
    g2 = _lm_gradient(t.raw, collate(t.train_data, batches[1]))
    t.step(batches)
    for n, p in t.raw.named_parameters():              # w2 = w1 - lr (m g1 + g2)
        assert torch.allclose(p, w1[n] - lr * (m * g1[n] + g2[n]), atol=1e-6), n


def test_optimizer_options_name_the_flag():
    with pytest.raises(SentvaeError, match="--optimizer"):
        TrainConfig(optimizer="adam")
    with pytest.raises(SentvaeError, match="--momentum.*sgd only"):
        TrainConfig(momentum=0.9)
    with pytest.raises(SentvaeError, match="--momentum"):
        TrainConfig(optimizer="sgd", momentum=1.0)


def test_resume_keeps_the_optimizer_and_takes_a_new_momentum(corpus_dir, tmp_path):
    run = dict(data=corpus_dir / "train.txt", valid=corpus_dir / "valid.txt", out=tmp_path / "r",
               model_type="word", emb_dim=16, hidden=16, latent=4, max_tokens=300, eval_every=4)
    sentvae.train(**run, max_steps=4, optimizer="sgd", lr=0.5)
    last = (tmp_path / "r" / "last.pt").read_bytes()
    with pytest.raises(SentvaeError, match=r"^--optimizer: .*last\.pt was trained with sgd"):
        sentvae.train(**run, max_steps=8, optimizer="adamw", resume=True)
    with pytest.raises(SentvaeError, match=r"^--hidden: .*last\.pt was trained with 16, not 32"):
        sentvae.train(**{**run, "hidden": 32}, max_steps=8, resume=True)    # nor the model
    assert (tmp_path / "r" / "last.pt").read_bytes() == last     # refused before any work
    sentvae.train(**run, max_steps=8, momentum=0.9, resume=True)  # the saved optimizer, a new momentum
    ckpt = torch.load(tmp_path / "r" / "last.pt", weights_only=True)
    assert ckpt["train_config"]["optimizer"] == "sgd" and ckpt["train_config"]["momentum"] == 0.9
    assert ckpt["train_state"]["optimizer"]["param_groups"][0]["momentum"] == 0.9
    assert all("momentum_buffer" in s for s in ckpt["train_state"]["optimizer"]["state"].values())
