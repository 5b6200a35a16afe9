"""--init-from: a run that starts from every weight of a trained model (a fine-tune: its
tokenizer and shape, a fresh optimizer and schedule), e.g. SGD's decays after AdamW."""

import shutil

import pytest
import torch

import sentvae
from sentvae.checkpoint import load_checkpoint
from sentvae.config import TrainConfig
from sentvae.errors import SentvaeError
from conftest import run_cli

SHAPE = dict(model_type="word", vocab_size=500, emb_dim=16, hidden=16, latent=4, bidirectional=False,
             max_tokens=300)


@pytest.fixture(scope="module")
def parents(corpus_dir, tmp_path_factory):
    """A tiny VAE and a tiny LM, each trained a few AdamW steps: {name: best.pt}."""
    runs = {}
    for name, extra in (("vae", {}), ("lm", {"no_latent": True})):
        out = tmp_path_factory.mktemp(name)
        sentvae.train(data=corpus_dir / "train.txt", valid=corpus_dir / "valid.txt", out=out,
                      max_steps=6, eval_every=3, dropout=0.1, **SHAPE, **extra)
        runs[name] = out / "best.pt"
    return runs


@pytest.mark.parametrize("name", ["vae", "lm"])
def test_a_fine_tune_starts_from_every_weight_shape_and_tokenizer_of_its_checkpoint(name, parents, corpus_dir,
                                                                                     tmp_path):
    parent = load_checkpoint(parents[name])
    sentvae.train(data=corpus_dir / "train.txt", valid=corpus_dir / "valid.txt", out=tmp_path / "ft",
                  init_from=parents[name], optimizer="sgd", lr=1e-9, max_tokens=300, max_steps=1,
                  eval_every=1, dropout=0.4)            # a step too small to move any weight
    child = load_checkpoint(tmp_path / "ft" / "last.pt")
    assert child["tokenizer"] == parent["tokenizer"]
    assert child["model_config"] == {**parent["model_config"], "dropout": 0.4}   # dropout may change
    assert child["train_config"]["init_from"] == str(parents[name])
    assert child["train_config"]["optimizer"] == "sgd"
    assert child["model"].keys() == parent["model"].keys()
    for k, v in parent["model"].items():
        assert torch.allclose(child["model"][k], v, atol=1e-6), k


def test_what_cannot_fit_is_one_line_naming_the_option(parents, corpus_dir, tmp_path, monkeypatch, capsys):
    run = dict(data=corpus_dir / "train.txt", valid=corpus_dir / "valid.txt", init_from=parents["vae"],
               max_tokens=300, max_steps=1)
    with pytest.raises(SentvaeError, match=r"^--hidden: --init-from .* has 16, not 32"):
        sentvae.train(**run, out=tmp_path / "a", hidden=32)
    with pytest.raises(SentvaeError, match=r"^--no-latent: --init-from .* has False, not True"):
        sentvae.train(**run, out=tmp_path / "a", no_latent=True)
    with pytest.raises(SentvaeError, match=r"^--bow-weight: --init-from .* has no bag-of-words head"):
        sentvae.train(**run, out=tmp_path / "a", bow_weight=1.0)
    with pytest.raises(SentvaeError, match=r"^--tokenizer: --init-from"):
        sentvae.train(**run, out=tmp_path / "b", tokenizer=tmp_path / "t.model")
    with pytest.raises(SentvaeError, match=r"^--init-from: cannot be combined with --pretrain-steps"):
        sentvae.train(**run, out=tmp_path / "c", pretrain_steps=5)
    with pytest.raises(SentvaeError, match=r"^--init-from: cannot be combined with --init-decoder"):
        TrainConfig(init_from="a.pt", init_decoder="b.pt")
    shutil.copytree(parents["vae"].parent, tmp_path / "p")
    with pytest.raises(SentvaeError, match=r"^--init-from: .*best\.pt belongs to the run in .* --overwrite would remove"):
        sentvae.train(**{**run, "init_from": tmp_path / "p" / "best.pt"}, out=tmp_path / "p", overwrite=True)
    assert (tmp_path / "p" / "best.pt").read_bytes() == parents["vae"].read_bytes()
    code, out, err = run_cli(["train", "--init-from", tmp_path / "nope.pt", "--out", tmp_path / "d",
                              "--max-steps", "1"], monkeypatch, capsys)
    assert code == 2 and out == "" and "nope.pt: checkpoint not found" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "d" / "last.pt").exists()


def test_resume_keeps_the_start_it_was_given(parents, corpus_dir, tmp_path):
    run = dict(data=corpus_dir / "train.txt", valid=corpus_dir / "valid.txt", out=tmp_path / "ft",
               max_tokens=300, eval_every=2, optimizer="sgd", lr=0.5)
    sentvae.train(**run, init_from=parents["vae"], max_steps=2)
    with pytest.raises(SentvaeError, match=r"^--init-from: .*last\.pt was trained with"):
        sentvae.train(**run, init_from=parents["lm"], max_steps=4, resume=True)
    r = sentvae.train(**run, init_from=parents["vae"], max_steps=4, resume=True)   # the same command line
    assert r.position.step == 4


def test_train_only_encoder_moves_q_and_keeps_the_decoder(parents, corpus_dir, tmp_path, monkeypatch, capsys):
    """--train-only encoder: the encoder and posterior head learn; the embedding, decoder and output
    layer (so p(x)) stay exactly the checkpoint's, through a resume too."""
    from sentvae.aggressive import split_parameters
    from sentvae.config import ModelConfig
    from sentvae.model import build_model

    parent = load_checkpoint(parents["vae"])
    model = build_model(ModelConfig(**parent["model_config"]))
    enc_ids = {id(p) for p in split_parameters(model)[0]}
    encoder = {n for n, p in model.named_parameters() if id(p) in enc_ids}
    assert encoder and set(parent["model"]) - encoder     # both sides hold weights
    run = dict(data=corpus_dir / "train.txt", valid=corpus_dir / "valid.txt", out=tmp_path / "ft",
               init_from=parents["vae"], train_only="encoder", lr=1e-2, max_tokens=300, eval_every=2)
    sentvae.train(**run, max_steps=2)
    sentvae.train(**run, max_steps=4, resume=True)
    child = load_checkpoint(tmp_path / "ft" / "last.pt")
    assert child["train_config"]["train_only"] == "encoder"
    for k, v in parent["model"].items():
        moved = not torch.equal(child["model"][k], v)
        assert moved == (k in encoder), k
    with pytest.raises(SentvaeError, match=r"^--train-only: encoder: a --no-latent model \(an LM\) has no encoder"):
        sentvae.train(**{**run, "init_from": parents["lm"], "out": tmp_path / "lm"}, max_steps=1)
    assert not (tmp_path / "lm" / "last.pt").exists()
    code, out, err = run_cli(["train", "--train-only", "encoder", "--out", tmp_path / "d", "--max-steps", "1"],
                             monkeypatch, capsys)
    assert code == 2 and out == "" and err.strip().splitlines() == [
        "error: --train-only: encoder: needs --init-from a trained model (the decoder it keeps as it is)"]
