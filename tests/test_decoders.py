"""The encoder and the decoder chosen apart (--encoder, --decoder lstm|transformer|cnn, --dilations,
--kernel-size; --arch the shorthand for both): build_model builds what the config says, old
checkpoints (arch only) still load as what they were, --init-decoder checks the decoder's shape, and
the combinations that cannot be built are one line naming the option. (Each combination through
every command: tests/test_families.py; the CNN decoder itself: tests/test_cnn_decoder.py.)"""

import pytest
import torch

import sentvae
from sentvae.launch import DECODER_SHAPE
from sentvae.checkpoint import load_checkpoint
from sentvae.config import ModelConfig
from sentvae.errors import SentvaeError
from sentvae.model import build_model
from sentvae.model.cnn import CNNDecoder
from sentvae.model.lstm import LSTMDecoder, LSTMEncoder
from sentvae.model.transformer import TransformerDecoder, TransformerEncoder
from conftest import run_cli

SMALL = dict(vocab_size=30, emb_dim=16, hidden=16, latent=4, heads=2, ff=32, dropout=0.0)
ENCODERS = {"lstm": LSTMEncoder, "transformer": TransformerEncoder}
DECODERS = {"lstm": LSTMDecoder, "transformer": TransformerDecoder, "cnn": CNNDecoder}


@pytest.mark.parametrize("encoder", list(ENCODERS))
@pytest.mark.parametrize("decoder", list(DECODERS))
def test_build_model_builds_each_side_the_config_names(encoder, decoder):
    cfg = ModelConfig(**SMALL, encoder=encoder, decoder=decoder)
    model = build_model(cfg)
    assert type(model.encoder) is ENCODERS[encoder] and type(model.decoder) is DECODERS[decoder]
    x = torch.randint(4, 30, (3, 6))
    with torch.no_grad():
        assert model.log_likelihood(torch.randn(3, 4), x[:, :-1], x[:, 1:]).shape == (3,)
        assert model.encode(x[:, 1:], torch.tensor([5, 3, 4])).mean().shape == (3, 4)


def test_arch_is_the_shorthand_for_the_sides_not_given():
    both = ModelConfig(**SMALL, arch="transformer")
    assert (both.encoder, both.decoder) == ("transformer", "transformer")
    mixed = ModelConfig(**SMALL, arch="transformer", decoder="cnn")
    assert (mixed.encoder, mixed.decoder, mixed.dilations, mixed.kernel_size) == ("transformer", "cnn", (1, 2, 4), 3)
    assert ModelConfig(**SMALL, encoder="transformer").decoder == "lstm"
    cfg = ModelConfig(**SMALL, decoder="cnn", dilations="1, 2,8", kernel_size=2)
    assert cfg.dilations == (1, 2, 8) and build_model(cfg).decoder.receptive_field == 1 + 1 * 11
    again = ModelConfig.from_dict(cfg.to_dict())                        # as a checkpoint stores it
    assert again == cfg


def test_an_old_checkpoint_with_only_arch_loads_as_what_it_was(monkeypatch, capsys, v1):
    ckpt = load_checkpoint(v1["vae"])
    assert not {"encoder", "decoder", "dilations", "kernel_size", "kappa"} & set(ckpt["model_config"])
    model = sentvae.load(v1["vae"], device="cpu")
    assert (model.config.encoder, model.config.decoder, model.config.prior) == ("lstm", "lstm", "normal")
    assert isinstance(model.net.decoder, LSTMDecoder) and model.config.dilations is None
    code, out, err = run_cli(["info", v1["vae"]], monkeypatch, capsys)
    assert code == 0 and "encoder=lstm decoder=lstm" in out and "receptive field" not in out, err


@pytest.mark.parametrize("opts,message", [
    (dict(dilations="1,2"), r"^--dilations: applies to --decoder cnn, not lstm"),
    (dict(kernel_size=3, arch="transformer"), r"^--kernel-size: applies to --decoder cnn, not transformer"),
    (dict(decoder="cnn", dec_layers=2), r"^--dec-layers: the CNN decoder's depth is one block per --dilations"),
    (dict(decoder="cnn", dilations="1,0"), r"^--dilations: must be integers in \[1, 4096\], separated by commas"),
    (dict(decoder="cnn", dilations="1,,2"), r"^--dilations: must be integers"),
    (dict(decoder="cnn", dilations="1.5"), r"^--dilations: must be integers"),
    (dict(decoder="cnn", dilations=[]), r"^--dilations: must be integers"),
    (dict(decoder="cnn", dilations=[1, True]), r"^--dilations: must be integers"),
    (dict(decoder="cnn", kernel_size=0), r"^--kernel-size: must be an integer in \[1, 64\]"),
    (dict(decoder="gru"), r"^--decoder: must be one of lstm, transformer, cnn"),
    (dict(encoder="cnn"), r"^--encoder: must be one of lstm, transformer"),
    (dict(arch="cnn"), r"^--arch: must be one of lstm, transformer"),
    # the transformer's width is --d-model (emb_dim): its heads must divide it, on either side
    (dict(decoder="transformer", emb_dim=18, heads=4), r"^--heads: must divide --d-model 18, not 4"),
    (dict(encoder="transformer", emb_dim=18, hidden=18, heads=4), r"^--heads: must divide --d-model 18, not 4"),
    (dict(arch="transformer", hidden=24), r"^--d-model: the transformer's width is --d-model; --hidden 24"),
])
def test_combinations_that_cannot_be_built_are_refused_naming_the_option(opts, message):
    with pytest.raises(SentvaeError, match=message):
        ModelConfig(**{**SMALL, **opts})


def test_a_side_that_reads_hidden_may_differ_from_the_transformer_s_width():
    # an LSTM encoder's hidden beside a transformer decoder of width emb_dim: both fine
    model = build_model(ModelConfig(**{**SMALL, "hidden": 24}, encoder="lstm", decoder="transformer"))
    assert model.encoder.out_dim == 2 * 24 and model.decoder.out_dim == 16


def test_the_command_line_refuses_a_bad_combination_with_one_line(tmp_path, corpus_dir, monkeypatch, capsys):
    code, out, err = run_cli(["train", "-d", corpus_dir / "train.txt", "-o", tmp_path / "r", "--max-steps", "1",
                              "--dilations", "1,2,4"], monkeypatch, capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "--dilations: applies to --decoder cnn" in err and not (tmp_path / "r" / "last.pt").exists()


def test_a_recipe_gives_dilations_as_the_flag_does(tmp_path):
    from sentvae.cli import build_command
    from sentvae.recipe import expand
    recipe = tmp_path / "cnn.toml"
    recipe.write_text('decoder = "cnn"\ndilations = "1,2,4,8"\nkernel-size = 2\n')
    train = build_command().commands["train"]
    params = train.make_context("train", expand(["--config", str(recipe)], train.params)).params
    cfg = ModelConfig(vocab_size=30, **{k: params[k] for k in ("decoder", "dilations", "kernel_size")})
    assert cfg.dilations == (1, 2, 4, 8) and cfg.kernel_size == 2


def test_the_decoder_s_shape_is_part_of_what_init_decoder_takes(corpus_dir, tmp_path):
    assert {"decoder", "dilations", "kernel_size"} <= set(DECODER_SHAPE) and "encoder" not in DECODER_SHAPE
    data = dict(data=corpus_dir / "train.txt", valid=corpus_dir / "valid.txt", max_tokens=300, device="cpu")
    sentvae.train(**data, out=tmp_path / "lm", model_type="word", vocab_size=500, emb_dim=16, hidden=16, latent=4,
                  no_latent=True, decoder="cnn", dilations="1,2", max_steps=2, eval_every=2)
    lm = tmp_path / "lm" / "best.pt"
    run = dict(**data, init_decoder=lm, max_steps=1, eval_every=1)
    for opts, message in ((dict(decoder="lstm"), r"^--decoder: --init-decoder .* has cnn, not lstm"),
                          (dict(dilations="1,2,4"), r"^--dilations: --init-decoder .* has \(1, 2\), not 1,2,4;"),
                          (dict(kernel_size=2), r"^--kernel-size: --init-decoder .* has 3, not 2")):
        with pytest.raises(SentvaeError, match=message):
            sentvae.train(**run, out=tmp_path / "bad", **opts)
        assert not (tmp_path / "bad").exists()
    # its own encoder (its heads and ff the LM's: those options shape a transformer decoder, so they are part
    # of what --init-decoder takes), and the decoder's shape given as the LM has it (a string, as a flag gives it)
    r = sentvae.train(**run, out=tmp_path / "vae", encoder="transformer", dilations="1,2",
                      optimizer="sgd", lr=1e-9)
    cfg = r.model.cfg
    assert (cfg.encoder, cfg.decoder, cfg.dilations, cfg.kernel_size) == ("transformer", "cnn", (1, 2), 3)
    vae = load_checkpoint(tmp_path / "vae" / "last.pt")["model"]
    lm_weights = load_checkpoint(lm)["model"]
    assert torch.allclose(vae["decoder.blocks.1.conv.weight"], lm_weights["decoder.blocks.1.conv.weight"], atol=1e-6)
    # and resumed with the same command line (dilations as a string again): nothing differs
    sentvae.train(**{**run, "max_steps": 2}, out=tmp_path / "vae", encoder="transformer",
                  dilations="1,2", optimizer="sgd", lr=1e-9, resume=True)
