"""Options are declared once (sentvae/config.py): the `train` command's flags, the Python API's
keywords and the configs saved in checkpoints all follow from the declarations, and each value is
checked against its domain wherever it comes from."""

import math
from dataclasses import fields

import pytest

from sentvae.config import CONFIGS, ModelConfig, RunConfig, TrainConfig
from sentvae.errors import SentvaeError
from sentvae.options import Float, Int, declared, flag


def _train_params():
    from sentvae.cli import build_command
    return {p.name: p for p in build_command().commands["train"].params}


def test_every_config_field_has_a_flag_with_help_and_every_flag_a_field():
    params = _train_params()
    cli_only = {"config", "quiet", "help"}           # about this invocation, not the run
    for cls in CONFIGS:
        for f, opt in declared(cls):
            if not opt.cli:           # set by the program (the tokenizer's size, the bow head, the data's labels)
                assert f.name in ("vocab_size", "bow", "labels") and cls is ModelConfig, f.name
                continue
            assert f.name in params, f"{cls.__name__}.{f.name} has no flag"
            p = params[f.name]
            assert p.help and opt.help in p.help, f.name
            assert flag(f.name) in p.opts or any(o.startswith(flag(f.name)) for o in p.opts + p.secondary_opts), p.opts
    names = {f.name for cls in CONFIGS for f in fields(cls)}
    assert set(params) - cli_only <= names, set(params) - cli_only - names


def test_every_declared_default_is_in_its_own_domain():
    for cls in CONFIGS:
        for f, opt in declared(cls):
            if f.name == "vocab_size" and cls is ModelConfig:
                continue                             # no default: always set from the tokenizer
            assert opt.domain.check(f.name, f.default) == f.default, f.name


@pytest.mark.parametrize("name,value", [
    ("lr", math.inf), ("lr", math.nan), ("lr", 0.0), ("lr", 1e30), ("beta", math.inf), ("free_bits", -1.0),
    ("weight_decay", math.inf), ("max_len", 2 ** 70), ("seed", -1), ("seed", 2 ** 64), ("epochs", True),
    ("word_dropout", 1.5), ("kl_anneal", "sideways"), ("max_tokens", 3.5), ("cycle_ratio", 0.0),
])
def test_a_training_value_out_of_its_domain_is_refused_naming_the_flag(name, value):
    with pytest.raises(SentvaeError) as e:
        TrainConfig(**{name: value})
    assert str(e.value).startswith(flag(name) + ": must be"), str(e.value)


@pytest.mark.parametrize("name,value", [("latent", 0), ("dropout", 1.0), ("dropout", math.nan), ("arch", "rnn"),
                                        ("heads", -2), ("bidirectional", "yes")])
def test_a_model_value_out_of_its_domain_is_refused_naming_the_flag(name, value):
    with pytest.raises(SentvaeError) as e:
        ModelConfig(vocab_size=100, **{name: value})
    assert str(e.value).startswith(flag(name) + ": must be"), str(e.value)


def test_a_checkpoint_config_with_a_bad_value_names_its_file():
    with pytest.raises(SentvaeError, match=r"^run/best\.pt: --latent: must be an integer"):
        ModelConfig.from_dict({"vocab_size": 100, "latent": "32"}, source="run/best.pt")
    with pytest.raises(SentvaeError, match=r"^run/best\.pt: unknown ModelConfig key\(s\): colour"):
        ModelConfig.from_dict({"vocab_size": 100, "colour": 1}, source="run/best.pt")


def test_domains_describe_themselves_in_the_message():
    assert Float(0.0, 1.0, hi_open=True).describe() == "a finite number in [0, 1)"
    assert Int(1).describe() == "an integer in [1, 2147483647]"
    with pytest.raises(SentvaeError, match=r"^--data: must be a file name or a list of them, not 3$"):
        RunConfig(data=3)


def test_the_api_takes_the_same_options_and_refuses_unknown_ones(tmp_path):
    import sentvae
    with pytest.raises(SentvaeError, match="unknown train option"):
        sentvae.train(out=tmp_path / "r", colour="red")
    with pytest.raises(SentvaeError, match=r"^--lr: must be a finite number"):
        sentvae.train(out=tmp_path / "r", lr=float("inf"))
    assert not (tmp_path / "r").exists()
