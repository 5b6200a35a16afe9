"""Options are declared once (sentvae/config.py, sentvae/command_config.py): every command's flags,
the Python API's keywords and the configs saved in checkpoints all follow from the declarations,
and each value is checked against its domain wherever it comes from, with the same line."""

import math
from dataclasses import fields

import pytest

from sentvae.command_config import COMMAND_CONFIGS, DecodeConfig, EvalConfig, GenerationConfig
from sentvae.config import CONFIGS, ModelConfig, RunConfig, TrainConfig
from sentvae.errors import SentvaeError
from sentvae.options import Float, Int, declared, flag, flag_of

from conftest import run_cli
from declared_flags import DECLARATIONS, commands, declarations_of, takes_a_value_with_a_domain


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


def test_every_option_of_every_command_taking_a_number_or_a_choice_is_one_declaration():
    # the other commands' flags as the train ones: built from their declarations (one each), so
    # their domains are checked; and no declaration without a flag (tests/declared_flags.py)
    used = set()
    for name, cmd in commands().items():
        for param in cmd.params:
            found = declarations_of(param)
            if takes_a_value_with_a_domain(param):
                assert len(found) == 1, f"sentvae {name} {param.opts[0]}: {len(found)} declarations"
            used |= {(cls, f.name) for cls, f, _ in found}
    assert {(cls, f.name) for cls, f, _ in DECLARATIONS} == used, \
        {(cls.__name__, f.name) for cls, f, _ in DECLARATIONS} - {(cls.__name__, n) for cls, n in used}


def test_every_declared_default_is_in_its_own_domain():
    for cls in (*CONFIGS, *COMMAND_CONFIGS):
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


@pytest.mark.parametrize("cls,name,value", [
    (DecodeConfig, "temperature", math.nan), (DecodeConfig, "temperature", 1e-300), (DecodeConfig, "top_p", 0.0),
    (DecodeConfig, "max_len", 2 ** 70), (DecodeConfig, "length_penalty", math.inf), (DecodeConfig, "beam", 0),
    (DecodeConfig, "top_k", -1), (GenerationConfig, "n", 0), (GenerationConfig, "seed", -1),
    (GenerationConfig, "batch_size", 0), (GenerationConfig, "steps", 1), (GenerationConfig, "method", "arc"),
    (GenerationConfig, "component", 1.0), (EvalConfig, "iw_samples", 2 ** 70), (EvalConfig, "max_tokens", "10"),
])
def test_a_command_value_out_of_its_domain_is_refused_naming_the_flag(cls, name, value):
    opt = next(opt for f, opt in declared(cls) if f.name == name)
    with pytest.raises(SentvaeError) as e:
        cls(**{name: value})
    assert str(e.value).startswith(flag_of(name, opt) + ": must be"), str(e.value)


# the Python API's twin of each command refuses what the command refuses, with the same line
API_AND_CLI = [
    (lambda m: m.sample(n=0), ["sample", "-n", "0"]),
    (lambda m: m.sample(2, batch_size=-1), ["sample", "-n", "2", "--batch-size", "-1"]),
    (lambda m: m.sample(seed=2 ** 64), ["sample", "--seed", str(2 ** 64)]),
    (lambda m: m.sample(component=-1), ["sample", "--component", "-1"]),
    (lambda m: m.sample(2, temperature=math.nan), ["sample", "-n", "2", "--temperature", "nan"]),
    (lambda m: m.sample(2, length_penalty=-math.inf), ["sample", "-n", "2", "--length-penalty", "-inf"]),
    (lambda m: m.decode([[0.0] * 8], top_p=1e-50 * 0), ["decode", "--top-p", "0"]),
    (lambda m: m.decode([[0.0] * 8], max_len=2 ** 70), ["decode", "--max-len", str(2 ** 70)]),
    (lambda m: m.interpolate("a b", "c d", steps=1), ["interpolate", "a b", "c d", "--steps", "1"]),
    (lambda m: m.interpolate("a b", "c d", method="arc"), None),
    (lambda m: m.reconstruct(["a b"], posterior="mode"), None),
    (lambda m: m.reconstruct(["a b"], seed=-1), ["reconstruct", "a b", "--seed", "-1"]),
    (lambda m: m.evaluate(["a b"], k=2 ** 70), ["eval", "-k", str(2 ** 70)]),
    (lambda m: m.evaluate(["a b"], max_tokens=0), ["eval", "--max-tokens", "0"]),
    (lambda m: m.score(["a b"], max_len=0), ["eval", "--max-len", "0"]),
    (lambda m: m.encode(["a b"], max_len=-5), None),
]


@pytest.mark.parametrize("call,args", API_AND_CLI, ids=[str(i) for i in range(len(API_AND_CLI))])
def test_the_api_refuses_what_the_command_refuses_with_the_same_line(call, args, trained, monkeypatch, capsys):
    import sentvae
    out, _ = trained
    model = sentvae.load(out / "best.pt", device="cpu")
    with pytest.raises(SentvaeError) as e:
        call(model)
    message = str(e.value)
    assert ": must be " in message and "\n" not in message, message
    if args is not None:
        code, stdout, err = run_cli([*args, "-c", out / "best.pt"], monkeypatch, capsys, stdin="")
        assert (code, stdout, err.strip()) == (2, "", "error: " + message)
