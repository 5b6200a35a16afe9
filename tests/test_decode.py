import json
import subprocess
import sys

import pytest
import torch

from sentvae.checkpoint import load_model
from sentvae.decode import DecodeConfig, beam_search, decode, filter_logits, greedy, sample, sequence_logprob
from sentvae.errors import SentvaeError
from sentvae.latent import codes
from conftest import BUNDLED, ROOT, run_cli


@pytest.fixture(scope="module")
def mt(trained):
    out, _ = trained
    model, tok, _ = load_model(out / "best.pt")
    return model, tok, out / "best.pt"


def _z(n=12, nz=8, seed=0):
    return torch.randn(n, nz, generator=torch.Generator().manual_seed(seed))


def test_greedy_equals_beam_1_and_top_k_1(mt):
    model, _, _ = mt
    z = _z()
    g = greedy(model, z, 30)
    assert beam_search(model, z, 1, 30)[0] == g
    assert sample(model, z, 30, top_k=1, generator=torch.Generator().manual_seed(5)) == g
    assert decode(model, z, DecodeConfig(max_len=30, beam=1)) == g


def test_beam_finds_at_least_the_greedy_score(mt):
    model, _, _ = mt
    z = _z(20)
    g = greedy(model, z, 30)
    b, scores = beam_search(model, z, 5, 30, length_penalty=0.0)     # rank by total log p
    lp_g = sequence_logprob(model, z, g)
    lp_b = sequence_logprob(model, z, b)
    assert torch.allclose(lp_b, torch.tensor(scores), atol=1e-3)      # the reported score is real
    assert torch.all(lp_b >= lp_g - 1e-4)


def test_low_temperature_approaches_greedy(mt):
    model, _, _ = mt
    z = _z()
    g = greedy(model, z, 30)
    cold = sample(model, z, 30, temperature=1e-4, generator=torch.Generator().manual_seed(0))
    hot = sample(model, z, 30, temperature=1.5, generator=torch.Generator().manual_seed(0))
    assert sum(a == b for a, b in zip(cold, g)) == len(g)
    assert hot != g


def test_same_seed_same_samples(mt):
    model, _, _ = mt
    z = _z()
    cfg = DecodeConfig(max_len=30, sample=True, top_p=0.9, seed=3)
    assert decode(model, z, cfg) == decode(model, z, cfg)
    assert decode(model, z, cfg) != decode(model, z, DecodeConfig(max_len=30, sample=True, top_p=0.9, seed=4))


def test_filters_keep_the_right_pieces():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isinf(filter_logits(logits, top_k=2)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_logits(logits, top_p=0.7)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_logits(logits, top_p=0.8)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_logits(logits, top_p=0.81)).tolist() == [[False, False, False, True]]
    assert not torch.isinf(filter_logits(logits, top_p=0.01))[0, 0]   # the top piece always stays


def test_conflicting_options_are_refused():
    with pytest.raises(SentvaeError, match="--beam cannot be combined"):
        DecodeConfig(beam=3, sample=True)
    with pytest.raises(SentvaeError, match="--top-p"):
        DecodeConfig(top_p=0.0)


def test_interpolation_endpoints_are_the_reconstructions(mt, monkeypatch, capsys):
    model, tok, ck = mt
    a, b = "the old man read a book .", "did the dog run to the park ?"
    code, out, err = run_cli(["interpolate", a, b, "--steps", "5", "-c", ck], monkeypatch, capsys)
    assert code == 0, err
    path = out.splitlines()
    code, out, err = run_cli(["reconstruct", a, b, "-c", ck], monkeypatch, capsys)
    assert out.splitlines() == [path[0], path[-1]]
    z = codes(model, tok, [a, b])
    assert tok.decode(greedy(model, z, 60)) == [path[0], path[-1]]


def test_encode_decode_round_trip_equals_reconstruct(mt, tmp_path, monkeypatch, capsys):
    _, _, ck = mt
    lines = (BUNDLED / "test.txt").read_text().splitlines()[:30]
    lines.insert(4, "")                       # a blank line stays in place
    src = tmp_path / "in.txt"
    src.write_text("\n".join(lines) + "\n")
    code, enc, err = run_cli(["encode", "-i", src, "-c", ck], monkeypatch, capsys)
    assert code == 0, err
    rows = [json.loads(x) for x in enc.splitlines()]
    assert len(rows) == 31 and rows[4]["mu"] is None and len(rows[0]["mu"]) == 8
    code, dec, err = run_cli(["decode", "-c", ck], monkeypatch, capsys, stdin=enc)
    assert code == 0, err
    code, rec, err = run_cli(["reconstruct", "-i", src, "-c", ck], monkeypatch, capsys)
    assert code == 0, err
    assert dec == rec
    assert len(rec.splitlines()) == 31 and rec.splitlines()[4] == ""


def test_reconstruct_keeps_order_and_count_from_stdin(mt, monkeypatch, capsys):
    _, _, ck = mt
    lines = (BUNDLED / "test.txt").read_text().splitlines()[:50]
    code, out, err = run_cli(["reconstruct", "-c", ck, "--batch-size", "7", "--json"], monkeypatch, capsys,
                             stdin="\n".join(lines) + "\n")
    assert code == 0, err
    rows = [json.loads(x) for x in out.splitlines()]
    assert [r["text"] for r in rows] == lines


def test_bleu_matches_the_sacrebleu_cli(mt, tmp_path, monkeypatch, capsys):
    _, _, ck = mt
    refs = (BUNDLED / "test.txt").read_text().splitlines()[:60]
    (tmp_path / "ref.txt").write_text("\n".join(refs) + "\n")
    code, out, err = run_cli(["reconstruct", "-i", tmp_path / "ref.txt", "-c", ck, "--bleu", "--json"],
                             monkeypatch, capsys)
    assert code == 0, err
    rows = [json.loads(x) for x in out.splitlines()]
    ours = rows[-1]["bleu"]
    (tmp_path / "hyp.txt").write_text("\n".join(r["reconstruction"] for r in rows[:-1]) + "\n")
    r = subprocess.run([sys.executable, "-m", "sacrebleu", str(tmp_path / "ref.txt"), "-i", str(tmp_path / "hyp.txt"),
                        "-b"], capture_output=True, text=True, check=True)
    assert ours == pytest.approx(float(r.stdout.strip()), abs=0.01)
    assert f"BLEU = {ours:.2f}" in err


@pytest.mark.parametrize("payload,needle", [
    ('{"z": [1, 2]}\n', "line 1: \"z\" has 2 numbers, this model's latent has 8"),
    ('{"mu": [0,0,0,0,0,0,0,0]}\n{"text": "x"}\n', "line 2: expected a JSON object with \"z\" or \"mu\""),
    ('not json\n', "line 1: not JSON"),
    ('', "decode: the input is empty"),
])
def test_decode_bad_input(mt, payload, needle, monkeypatch, capsys):
    _, _, ck = mt
    code, out, err = run_cli(["decode", "-c", ck], monkeypatch, capsys, stdin=payload)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1


def test_generation_bad_usage(mt, monkeypatch, capsys):
    _, _, ck = mt
    code, out, err = run_cli(["sample", "-c", ck, "--beam", "3", "--top-p", "0.9"], monkeypatch, capsys)
    assert code == 2 and "--beam cannot be combined" in err and out == ""
    code, out, err = run_cli(["reconstruct", "-c", ck], monkeypatch, capsys, stdin="")
    assert code == 2 and "empty" in err
    code, out, err = run_cli(["reconstruct", "x", "-c", "nope.pt"], monkeypatch, capsys)
    assert code == 2 and "nope.pt" in err


def test_every_subcommand_help_skips_torch():
    code = ("import sys, runpy\nfor cmd in ['sample', 'interpolate', 'reconstruct', 'encode', 'decode', 'eval', 'info', 'tokenize']:\n"
            "    sys.argv = ['sentvae', cmd, '--help']\n"
            "    try:\n        runpy.run_module('sentvae', run_name='__main__')\n    except SystemExit:\n        pass\n"
            "sys.stderr.write('HEAVY=' + ','.join(m for m in ('torch', 'datasets', 'sentencepiece') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.stdout.count("Usage") == 8 and r.stderr.strip().endswith("HEAVY="), r.stderr[-300:]
