"""Checkpoints written before the latent-objects redesign (format version 1, sentvae 0.2.0) keep
loading, and give the figures, codes and sentences that the code of that time computed from them
(tests/fixtures/README.md says how: no checkpoint is tracked, tests/fixtures/v1_format.py writes
them in that format)."""

import json
from pathlib import Path

import pytest
import torch

from sentvae.api import load

FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXPECTED = json.loads((FIXTURES / "v1-expected.json").read_text())

@pytest.mark.parametrize("name", ["vae", "lm"])
def test_a_version_1_checkpoint_evaluates_as_it_did(name, v1):
    model = load(v1[name], device="cpu")
    want = EXPECTED[name]
    texts = EXPECTED["test_sentences"]
    r = model.evaluate(texts, k=20, seed=3, per_sentence=True)
    for key in ("elbo", "rec", "kl", "iw_nll", "iw_nll_se", "ess", "ppl", "mi"):
        assert getattr(r, key) == pytest.approx(want["eval"][key], rel=1e-5, abs=1e-5), key
    assert r.au == want["eval"]["au"] and r.iw_samples == want["eval"]["iw_samples"]
    assert list(r.per_sentence["iw_nll"]) == pytest.approx(want["per_sentence_iw_nll"], rel=1e-5)


@pytest.mark.parametrize("name", ["vae", "lm"])
def test_a_version_1_checkpoint_encodes_and_decodes_as_it_did(name, v1):
    model = load(v1[name], device="cpu")
    want = EXPECTED[name]
    mu = model.codes(EXPECTED["test_sentences"][:3])
    assert torch.allclose(mu, torch.tensor(want["mu"]), atol=1e-6)
    assert model.decode(mu, max_len=20) == want["greedy"]
