import os

import pytest
import torch

from sentvae.checkpoint import VERSION, load_checkpoint, load_model, save_checkpoint
from sentvae.errors import SentvaeError
from conftest import BUNDLED, run_cli


def _score(model, tok):
    from sentvae.corpus import collate, corpus_from_texts
    import numpy as np
    c = corpus_from_texts(["the dog ran to the park .", "did the old man read a book ?"], tok, 40)
    b = collate(c, np.arange(2))
    x, lengths = b.tokens, b.lengths
    with torch.no_grad():
        mu = model.encode(x[:, 1:], lengths).mean()
        return mu, model.log_likelihood(mu, x[:, :-1], x[:, 1:])


def test_save_load_gives_identical_outputs(trained, tmp_path):
    out, _ = trained
    model, tok, ckpt = load_model(out / "best.pt")
    save_checkpoint(tmp_path / "copy.pt", {k: v for k, v in ckpt.items() if k not in ("format", "version")})
    model2, tok2, _ = load_model(tmp_path / "copy.pt")
    (mu1, ll1), (mu2, ll2) = _score(model, tok), _score(model2, tok2)
    assert torch.equal(mu1, mu2) and torch.equal(ll1, ll2)
    assert tok2.proto == tok.proto


def test_truncated_checkpoint_is_refused_with_exit_2(trained, tmp_path, monkeypatch, capsys):
    out, _ = trained
    data = (out / "last.pt").read_bytes()
    bad = tmp_path / "trunc.pt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(SentvaeError, match="truncated"):
        load_checkpoint(bad)
    code, stdout, err = run_cli(["sample", "-c", bad], monkeypatch, capsys)
    assert code == 2 and stdout == ""
    assert str(bad) in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("content,match", [(b"", "empty file"), (os.urandom(4096), "not a sentvae checkpoint"),
                                           # a text file given for a checkpoint: torch's unpickler
                                           # fails with a KeyError on it
                                           ((BUNDLED / "train.txt").read_bytes()[:4096], "not a sentvae checkpoint")])
def test_foreign_files_are_refused(tmp_path, content, match):
    f = tmp_path / "x.pt"
    f.write_bytes(content)
    with pytest.raises(SentvaeError, match=match):
        load_checkpoint(f)


def test_other_torch_files_and_newer_versions_are_refused(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "a.pt")
    with pytest.raises(SentvaeError, match="not a sentvae checkpoint"):
        load_checkpoint(tmp_path / "a.pt")
    torch.save({"format": "sentvae", "version": VERSION + 1}, tmp_path / "b.pt")
    with pytest.raises(SentvaeError, match="newer"):
        load_checkpoint(tmp_path / "b.pt")


class _Evil:
    def __reduce__(self):
        return (os.mkdir, (os.environ["SENTVAE_EVIL_DIR"],))


def test_pickle_payload_is_refused_without_running(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("SENTVAE_EVIL_DIR", str(marker))
    torch.save({"format": "sentvae", "version": 1, "x": _Evil()}, tmp_path / "evil.pt")
    assert not marker.exists()
    with pytest.raises(SentvaeError, match="refused"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()
    # proof that the payload is live: plain pickle rules do run it
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert marker.exists()


def test_failed_write_keeps_the_previous_file(trained, tmp_path, monkeypatch):
    out, _ = trained
    target = tmp_path / "last.pt"
    target.write_bytes((out / "last.pt").read_bytes())
    before = target.read_bytes()

    def broken_save(obj, f, *a, **k):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(SentvaeError) as e:
        save_checkpoint(target, {"model": {}})
    assert e.value.exit_code == 1
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]    # no temp file left behind


def test_mismatched_tokenizer_is_refused(trained, tmp_path, tok):
    out, _ = trained
    ckpt = load_checkpoint(out / "best.pt")
    from sentvae.data import read_texts
    from sentvae.tokenizer import train_tokenizer
    from conftest import BUNDLED
    other = train_tokenizer(read_texts([str(BUNDLED / "valid.txt")]), "char", 100)
    ckpt["tokenizer"] = other.proto
    save_checkpoint(tmp_path / "m.pt", {k: v for k, v in ckpt.items() if k not in ("format", "version")})
    with pytest.raises(SentvaeError, match="tokenizer has"):
        load_model(tmp_path / "m.pt")


# --- structure: every part of a checkpoint is checked on load, for every command that reads one

def _cut(d: dict, key):
    return {k: v for k, v in d.items() if k != key}


MALFORMED = {
    # part named in the message -> how the checkpoint is spoilt
    "model_config-list": ("model_config", lambda c: {**c, "model_config": list(c["model_config"].items())}),
    "model_config-str-number": ("model_config['latent']", lambda c: {**c, "model_config": {**c["model_config"], "latent": "8"}}),
    "model_config-bool-number": ("model_config['hidden']", lambda c: {**c, "model_config": {**c["model_config"], "hidden": True}}),
    "model_config-unknown": ("model_config", lambda c: {**c, "model_config": {**c["model_config"], "colour": "red"}}),
    "model_config-missing": ("model_config", lambda c: {**c, "model_config": _cut(c["model_config"], "vocab_size")}),
    "model_config-value": ("model_config", lambda c: {**c, "model_config": {**c["model_config"], "latent": 0}}),
    "train_config-str-number": ("train_config['lr']", lambda c: {**c, "train_config": {**c["train_config"], "lr": "fast"}}),
    "train_config-unknown": ("train_config", lambda c: {**c, "train_config": {**c["train_config"], "learning_rate": 1}}),
    "train_config-missing": ("train_config", lambda c: _cut(c, "train_config")),
    "tokenizer-str": ("tokenizer", lambda c: {**c, "tokenizer": "sentencepiece"}),
    "model-list": ("model", lambda c: {**c, "model": list(c["model"].values())}),
    "model-not-tensor": ("model", lambda c: {**c, "model": {**c["model"], "emb.weight": [1.0, 2.0]}}),
    "info-list": ("info", lambda c: {**c, "info": [1, 2]}),
    "info-step": ("info['step']", lambda c: {**c, "info": {**c["info"], "step": "ten"}}),
    "valid-missing": ("info['valid']['kl']", lambda c: {**c, "info": {**c["info"], "valid": _cut(c["info"]["valid"], "kl")}}),
    "valid-str": ("info['valid']['elbo']", lambda c: {**c, "info": {**c["info"], "valid": {**c["info"]["valid"], "elbo": "low"}}}),
    "valid-not-dict": ("info['valid']", lambda c: {**c, "info": {**c["info"], "valid": 3.0}}),
    "train_state-list": ("train_state", lambda c: {**c, "train_state": []}),
    "position-unknown": ("train_state['position']", lambda c: {**c, "train_state": {
        **c["train_state"], "position": {**c["train_state"]["position"], "page": 3}}}),
    "position-str": ("train_state['position']['step']", lambda c: {**c, "train_state": {
        **c["train_state"], "position": {**c["train_state"]["position"], "step": "3"}}}),
    "rng": ("train_state['rng']", lambda c: {**c, "train_state": {**c["train_state"], "rng": [1, 2, 3]}}),
    "optimizer": ("train_state['optimizer']", lambda c: {**c, "train_state": {**c["train_state"], "optimizer": "adamw"}}),
    "sentences": ("train_state['sentences']", lambda c: {**c, "train_state": {**c["train_state"], "sentences": 1.5}}),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_parts_are_one_line_naming_file_and_part(case, trained, tmp_path, monkeypatch, capsys):
    import sentvae
    out, _ = trained
    part, spoil = MALFORMED[case]
    good = load_checkpoint(out / "last.pt")
    f = tmp_path / "bad.pt"
    torch.save(spoil(good), f)
    with pytest.raises(SentvaeError) as e:
        sentvae.load(f)
    assert str(f) in str(e.value) and part in str(e.value), str(e.value)
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(f.read_bytes())
    data = ["--data", BUNDLED / "valid.txt"]
    for args in (["info", f], ["info", f, "--json"], ["sample", "-c", f], ["eval", "-c", f, "-k", "2"],
                 ["encode", "a dog .", "-c", f],
                 ["train", "--resume", "--out", run, *data],
                 ["train", "--init-from", f, "--out", tmp_path / "x", *data],
                 ["train", "--init-decoder", f, "--out", tmp_path / "y", *data]):
        code, stdout, err = run_cli(args, monkeypatch, capsys)
        named = str(run / "last.pt") if "--resume" in args else str(f)
        assert code == 2 and named in err and part in err, (case, args, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and stdout == "", (case, args, err)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_checkpoints_as_written_pass_the_structure_checks(trained, tmp_path):
    """best.pt, last.pt, one saved by Ctrl-C before any validation (info["valid"] empty), and
    one of an older sentvae that lacks fields added since (their defaults apply)."""
    out, _ = trained
    for name in ("best.pt", "last.pt"):
        load_model(out / name)
    good = load_checkpoint(out / "last.pt")
    early = {**good, "info": {**good["info"], "valid": {}, "best_valid_elbo": float("inf")},
             "train_state": {**good["train_state"], "position": {**good["train_state"]["position"],
                                                                  "best": float("inf"), "best_mi": -float("inf")}}}
    older = {**good, "model_config": _cut(_cut(good["model_config"], "bow"), "enc_dropout"),
             "train_config": _cut(good["train_config"], "train_only"),
             "train_state": {**good["train_state"], "position": _cut(good["train_state"]["position"], "stop")}}
    for i, c in enumerate((early, older)):
        torch.save(c, tmp_path / f"{i}.pt")
        load_model(tmp_path / f"{i}.pt")


def test_the_structure_checks_follow_the_config_dataclasses(trained, tmp_path, monkeypatch):
    """A field added to ModelConfig is checked without a hand-written list: here one declared
    as an int, given a string in the file."""
    import dataclasses
    import sentvae.checkpoint as C
    from sentvae.config import ModelConfig

    @dataclasses.dataclass
    class Wider(ModelConfig):
        extra_layers: int = 0

    monkeypatch.setattr(C, "ModelConfig", Wider)
    out, _ = trained
    good = load_checkpoint(out / "best.pt")
    torch.save({**good, "model_config": {**good["model_config"], "extra_layers": 2}}, tmp_path / "ok.pt")
    load_checkpoint(tmp_path / "ok.pt")
    torch.save({**good, "model_config": {**good["model_config"], "extra_layers": "two"}}, tmp_path / "bad.pt")
    with pytest.raises(SentvaeError, match=r"model_config\['extra_layers'\] is str 'two', not int"):
        load_checkpoint(tmp_path / "bad.pt")


def test_resume_from_weights_that_do_not_fit_is_one_line(trained, corpus_dir, tmp_path, monkeypatch, capsys):
    out, _ = trained
    good = load_checkpoint(out / "last.pt")
    run = tmp_path / "run"
    run.mkdir()
    bad_weights = {**good, "model": {k: v[..., :1] if v.dim() else v for k, v in good["model"].items()}}
    bad_optimizer = {**good, "train_state": {**good["train_state"], "optimizer": {
        "state": {}, "param_groups": good["train_state"]["optimizer"]["param_groups"] * 2}}}
    for c, needle in ((bad_weights, "weights do not match"), (bad_optimizer, "train_state['optimizer']")):
        torch.save(c, run / "last.pt")
        code, stdout, err = run_cli(["train", "--resume", "--out", run, "--data", corpus_dir / "train.txt",
                                     "--valid", corpus_dir / "valid.txt", "-q"], monkeypatch, capsys)
        assert code == 2 and needle in err and str(run / "last.pt") in err and len(err.strip().splitlines()) == 1, err
