"""--init-decoder: a VAE whose embedding, decoder and output layer start from a trained model's
(a converged --no-latent LM's, in the PTB recipe), with z's weights zeroed."""

from pathlib import Path

import pytest
import torch

import sentvae
from sentvae.checkpoint import load_checkpoint
from sentvae.config import ModelConfig, TrainConfig
from sentvae.errors import SentvaeError
from sentvae.model import build_model
from conftest import run_cli

ARCHS = {"lstm": dict(emb_dim=16, hidden=16, latent=4, dropout=0.0, bidirectional=False),
         "transformer": dict(arch="transformer", emb_dim=16, hidden=16, latent=4, dropout=0.0,
                             heads=2, ff=32),
         "cnn": dict(decoder="cnn", dilations=(1, 2), emb_dim=16, hidden=16, latent=4, dropout=0.0,
                     bidirectional=False)}


@pytest.mark.parametrize("arch", list(ARCHS))
def test_a_vae_started_from_an_lm_predicts_exactly_as_the_lm_whatever_z(arch):
    torch.manual_seed(0)
    lm = build_model(ModelConfig(vocab_size=30, no_latent=True, **ARCHS[arch])).eval()
    with torch.no_grad():                              # as if trained: no weight at its init value
        for p in lm.parameters():
            p.add_(0.1 * torch.randn_like(p))
    vae = build_model(ModelConfig(vocab_size=30, **ARCHS[arch])).eval()
    vae.start_decoder_from(lm.state_dict())
    x = torch.randint(4, 30, (3, 7))
    with torch.no_grad():
        want = lm.log_likelihood(torch.zeros(3, 4), x[:, :-1], x[:, 1:])
        for z in (torch.randn(3, 4), 5 * torch.randn(3, 4)):
            assert torch.allclose(vae.log_likelihood(z, x[:, :-1], x[:, 1:]), want, atol=1e-5)
    assert vae.encoder is not None                     # the encoder stays fresh and is trained
    narrow = build_model(ModelConfig(vocab_size=30, **{**ARCHS[arch], "emb_dim": 8, "hidden": 8}))
    with pytest.raises(SentvaeError, match="^--init-decoder: the weights do not fit this model"):
        narrow.start_decoder_from(lm.state_dict())
    lm_state = lm.state_dict()
    assert all(torch.equal(v, lm_state[k]) for k, v in vae.state_dict().items()
               if k.startswith("emb.") or k == "out_bias")


@pytest.fixture(scope="module")
def lm_run(corpus_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("lm")
    sentvae.train(data=corpus_dir / "train.txt", valid=corpus_dir / "valid.txt", out=out,
                  model_type="word", vocab_size=500, emb_dim=16, hidden=16, latent=4,
                  no_latent=True, bidirectional=False, max_tokens=300, max_steps=6, eval_every=3)
    return out / "best.pt"


def test_train_takes_the_lm_s_tokenizer_shape_and_weights(lm_run, corpus_dir, tmp_path):
    lm = load_checkpoint(lm_run)
    r = sentvae.train(data=corpus_dir / "train.txt", valid=corpus_dir / "valid.txt", out=tmp_path / "v",
                      init_decoder=lm_run, optimizer="sgd", lr=1e-9, max_tokens=300, max_steps=1,
                      eval_every=1, latent=4)           # --hidden 16 and the vocabulary: the LM's
    vae = load_checkpoint(tmp_path / "v" / "last.pt")
    assert vae["tokenizer"] == lm["tokenizer"]
    assert vae["model_config"]["hidden"] == 16 and not vae["model_config"]["no_latent"]
    assert vae["train_config"]["init_decoder"] == str(lm_run)
    assert torch.allclose(vae["model"]["emb.weight"], lm["model"]["emb.weight"], atol=1e-6)
    assert not torch.any(vae["model"]["decoder.z_to_state.weight"].abs() > 1e-6)
    assert r.model.encoder is not None


def test_what_cannot_fit_is_one_line_naming_the_option(lm_run, corpus_dir, tmp_path, monkeypatch, capsys):
    run = dict(data=corpus_dir / "train.txt", valid=corpus_dir / "valid.txt", init_decoder=lm_run,
               max_tokens=300, max_steps=1)
    with pytest.raises(SentvaeError, match=r"^--hidden: --init-decoder .* has 16, not 32"):
        sentvae.train(**run, out=tmp_path / "a", hidden=32)
    with pytest.raises(SentvaeError, match=r"^--tokenizer: --init-decoder"):
        sentvae.train(**run, out=tmp_path / "b", tokenizer=tmp_path / "t.model")
    with pytest.raises(SentvaeError, match=r"^--init-decoder: cannot be combined with --pretrain-steps"):
        sentvae.train(**run, out=tmp_path / "c", pretrain_steps=5)
    import shutil
    shutil.copytree(lm_run.parent, tmp_path / "lm")
    with pytest.raises(SentvaeError, match=r"^--init-decoder: .*best\.pt belongs to the run in .* --overwrite would remove"):
        sentvae.train(**{**run, "init_decoder": tmp_path / "lm" / "best.pt"}, out=tmp_path / "lm", overwrite=True)
    assert (tmp_path / "lm" / "best.pt").read_bytes() == lm_run.read_bytes()
    code, out, err = run_cli(["train", "--init-decoder", tmp_path / "nope.pt", "--out", tmp_path / "d",
                              "--max-steps", "1"], monkeypatch, capsys)
    assert code == 2 and out == "" and "nope.pt: checkpoint not found" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "d" / "last.pt").exists()


def test_resume_keeps_the_start_it_was_given(lm_run, corpus_dir, tmp_path, monkeypatch):
    run = dict(data=corpus_dir / "train.txt", valid=corpus_dir / "valid.txt", out=tmp_path / "v",
               max_tokens=300, eval_every=2)
    sentvae.train(**run, init_decoder=lm_run, max_steps=2)
    with pytest.raises(SentvaeError, match=r"^--init-decoder: .*last\.pt was trained with"):
        sentvae.train(**run, init_decoder=tmp_path / "other.pt", max_steps=4, resume=True)
    sentvae.train(**run, init_decoder=lm_run, max_steps=4, resume=True)    # the same command line
    # the same file named another way (relative to the working directory) is the same start
    monkeypatch.chdir(lm_run.parent)
    sentvae.train(**run, init_decoder=Path(lm_run.name), max_steps=6, resume=True)
    assert load_checkpoint(tmp_path / "v" / "last.pt")["train_config"]["init_decoder"] == str(lm_run)


def test_config_refuses_init_decoder_with_pretraining():
    with pytest.raises(SentvaeError, match="--init-decoder"):
        TrainConfig(init_decoder="lm.pt", pretrain_steps=10)
