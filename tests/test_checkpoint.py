import os
import pickle

import pytest
import torch

from sentvae.checkpoint import VERSION, load_checkpoint, load_model, save_checkpoint
from sentvae.errors import SentvaeError
from conftest import BUNDLED, run_cli


def _score(model, tok):
    from sentvae.data import collate, corpus_from_texts
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
