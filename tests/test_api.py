"""The Python API: sentvae.load -> Model, and sentvae.train; the CLI is thin over it."""

import json

import pytest
import torch

import sentvae
from conftest import run_cli

SENTENCES = ["the old man read a book .", "did the dogs chase two cats ?", "a cat sat on the mat ."]


@pytest.fixture(scope="module")
def model(trained):
    out, _ = trained
    return sentvae.load(out / "best.pt", device="cpu")


def test_encode_then_decode_equals_reconstruct(model):
    q = model.encode(SENTENCES)
    mu, logvar = q.params()["mu"], q.params()["logvar"]
    assert mu.shape == logvar.shape == (3, model.latent)
    assert model.decode(q) == model.decode(mu) == model.reconstruct(SENTENCES)
    assert model.decode(mu.tolist()) == model.reconstruct(SENTENCES)        # lists work too
    beam = dict(beam=3, max_len=20)
    assert model.decode(mu, **beam) == model.reconstruct(SENTENCES, **beam)


def test_reconstruct_matches_the_command(model, trained, monkeypatch, capsys):
    out, _ = trained
    code, stdout, err = run_cli(["reconstruct", *SENTENCES, "-c", out / "best.pt"], monkeypatch, capsys)
    assert code == 0 and stdout.splitlines() == model.reconstruct(SENTENCES)


def test_score_equals_the_per_sentence_figures_of_eval(model, trained, tmp_path, monkeypatch, capsys):
    out, _ = trained
    f = tmp_path / "s.txt"
    f.write_text("\n".join(SENTENCES) + "\n")
    code, _, err = run_cli(["eval", "-c", out / "best.pt", "--data", f, "-k", "20", "--seed", "3",
                            "--per-sentence", tmp_path / "per.jsonl", "--json", "-q", "--device", "cpu"],   # as `model`:
                           monkeypatch, capsys)     # a GPU changes the rounding (tests/test_cuda.py)
    assert code == 0, err
    cli = [json.loads(x) for x in (tmp_path / "per.jsonl").read_text().splitlines()]
    api = model.score(SENTENCES, k=20, seed=3)
    assert [r["index"] for r in api] == [0, 1, 2]
    for a, c in zip(api, cli):
        for key in ("words", "elbo", "iw_nll", "ess", "kl"):
            assert a[key] == pytest.approx(c[key], rel=1e-6), key


def test_sample_and_interpolate_are_reproducible_and_match_the_commands(model, trained, monkeypatch, capsys):
    out, _ = trained
    a = model.sample(7, seed=4, top_p=0.9)
    assert a == model.sample(7, seed=4, top_p=0.9) and len(a) == 7
    code, stdout, _ = run_cli(["sample", "-n", "7", "--seed", "4", "--top-p", "0.9", "-c", out / "best.pt", "--device", "cpu"],
                              monkeypatch, capsys)
    assert stdout.splitlines() == a
    path = model.interpolate(SENTENCES[0], SENTENCES[1], steps=5)
    code, stdout, _ = run_cli(["interpolate", SENTENCES[0], SENTENCES[1], "--steps", "5", "-c", out / "best.pt", "--device", "cpu"],
                              monkeypatch, capsys)
    assert stdout.splitlines() == path and len(path) == 5
    assert path[0] == model.reconstruct([SENTENCES[0]])[0]


def test_api_errors_are_sentvae_errors(model, tmp_path):
    with pytest.raises(sentvae.SentvaeError, match="not a sentence"):
        model.encode(["fine .", "  "])
    with pytest.raises(sentvae.SentvaeError, match="a list of sentences"):
        model.encode("one string")
    with pytest.raises(sentvae.SentvaeError, match=r"codes must be \(N, 8\)"):
        model.decode(torch.zeros(2, 3))
    with pytest.raises(sentvae.SentvaeError, match="checkpoint not found"):
        sentvae.load(tmp_path / "none.pt")
    with pytest.raises(sentvae.SentvaeError, match="unknown train option"):
        sentvae.train(out=tmp_path / "r", learning_rate=1e-3)


def test_train_from_python(corpus_dir, tmp_path):
    result = sentvae.train(data=corpus_dir / "train.txt", valid=corpus_dir / "valid.txt", out=tmp_path / "r",
                           model_type="word", emb_dim=16, hidden=16, latent=4, max_tokens=300, max_steps=4,
                           eval_every=4, lr_schedule="plateau")
    assert result.position.step == 4 and result.stopped == "max steps"
    m = sentvae.load(tmp_path / "r" / "best.pt")
    assert m.latent == 4 and len(m.sample(2)) == 2


def test_import_sentvae_is_light():
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-c", "import sys, sentvae; print('torch' in sys.modules, sentvae.__version__)"],
                       capture_output=True, text=True)
    assert r.stdout.split()[0] == "False"


def test_model_and_train_options_share_no_name():
    # train --resume checks the options it cannot change against one dict merged from the saved
    # model and train configs: a name in both would compare against the wrong value
    from sentvae.launch import FROZEN_ON_RESUME, MODEL_OPTIONS, TRAIN_OPTIONS
    assert not set(MODEL_OPTIONS) & set(TRAIN_OPTIONS)
    assert set(FROZEN_ON_RESUME) <= set(TRAIN_OPTIONS)
