"""Bad input of every kind: one line naming the file, line or argument at fault, exit 2,
nothing on stdout (no output written ahead of the refusal), nothing traced back."""

import json

import pytest
import torch

import sentvae
from sentvae.errors import SentvaeError
from conftest import run_cli


def _one_line(code, stdout, err, *needles):
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert stdout == "", stdout
    for n in needles:
        assert n in err, (n, err)


# --- codes read by `decode` and Model.decode: finite float32 values of the model's latent size

BAD_VALUES = {"nan": ("NaN", "nan is not a finite number"),
              "infinity": ("Infinity", "inf is not a finite number"),
              "minus-infinity": ("-Infinity", "-inf is not a finite number"),
              "beyond-float32": ("1e39", "beyond float32's range"),
              "just-beyond-float32": ("3.41e38", "beyond float32's range"),
              "400-digit-integer": ("1" + "0" * 399, "an integer of 400 digits is beyond float32's range"),
              "5000-digit-integer": ("1" + "0" * 4999, "not JSON")}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_decode_refuses_codes_float32_cannot_hold(case, trained, tmp_path, monkeypatch, capsys):
    out, _ = trained
    value, needle = BAD_VALUES[case]
    ok = "[" + ", ".join(["0.5"] * 8) + "]"
    bad = "[" + ", ".join(["0.5"] * 7 + [value]) + "]"
    f = tmp_path / "codes.jsonl"
    f.write_text(f'{{"z": {ok}}}\n{{"z": {bad}}}\n')
    code, stdout, err = run_cli(["decode", "-i", f, "-c", out / "best.pt"], monkeypatch, capsys)
    _one_line(code, stdout, err, f"{f} line 2", needle)


def test_decode_takes_float32s_largest_value(trained, tmp_path, monkeypatch, capsys):
    out, _ = trained
    f = tmp_path / "codes.jsonl"
    f.write_text(json.dumps({"z": [3.4028234663852886e38, -3.4028234663852886e38] + [0] * 6}) + "\n")
    code, stdout, err = run_cli(["decode", "-i", f, "-c", out / "best.pt"], monkeypatch, capsys)
    assert code == 0 and len(stdout.splitlines()) == 1, err


@pytest.mark.parametrize("z,needle", [
    (torch.full((2, 8), float("nan")), "row 0, number 1: nan is not a finite number"),
    ([[0.0] * 8, [0.0] * 7 + [float("inf")]], "row 1, number 8: inf is not a finite number"),
    ([[0.0] * 7 + [1e39]], "row 0, number 8: 1e+39 is beyond float32's range"),
    ([[0] * 7 + [10 ** 400]], "z: not codes"),
    ([[0.0] * 7], "codes must be (N, 8), not (1, 7)"),
    ([["a"] * 8], "z: not codes"),
], ids=["nan-tensor", "inf", "beyond-float32", "400-digit-integer", "shape", "strings"])
def test_model_decode_refuses_codes_float32_cannot_hold(z, needle, trained):
    out, _ = trained
    model = sentvae.load(out / "best.pt", device="cpu")
    with pytest.raises(SentvaeError) as e:
        model.decode(z)
    assert needle in str(e.value), str(e.value)
