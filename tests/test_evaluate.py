import json
import math

import numpy as np
import pytest
import torch

from sentvae.checkpoint import load_model
from sentvae.corpus import collate, subset
from sentvae.evaluate import active_units, evaluate, sample_noise
from conftest import run_cli


@pytest.fixture(scope="module")
def model_and_data(trained, corpora):
    out, _ = trained
    model, tok, _ = load_model(out / "best.pt")
    valid = subset(corpora[1], np.arange(40))
    return model, tok, valid


def test_iw_nll_is_below_the_negative_elbo(model_and_data):
    model, _, valid = model_and_data
    r = evaluate(model, valid, iw_samples=50)
    assert r.iw_nll <= r.elbo + 3 * r.iw_nll_se
    assert r.elbo == pytest.approx(r.rec + r.kl)
    assert 1.0 <= r.ess <= 50.0


def test_iw_nll_does_not_increase_with_k(model_and_data):
    model, _, valid = model_and_data
    # monotone in expectation (Burda et al. 2016): average over seeds, allow for MC error
    runs = {k: [evaluate(model, valid, iw_samples=k, seed=s, with_mi=False) for s in range(3)] for k in (1, 10, 100)}
    nll = {k: np.mean([r.iw_nll for r in rs]) for k, rs in runs.items()}
    se = {k: np.mean([r.iw_nll_se for r in rs]) / math.sqrt(3) for k, rs in runs.items()}
    assert nll[1] >= nll[10] - 3 * se[10]
    assert nll[10] >= nll[100] - 3 * se[10]
    assert nll[1] > nll[100]


def test_k1_equals_a_single_sample_elbo_in_expectation(model_and_data):
    model, _, valid = model_and_data
    diffs = []
    for seed in range(12):
        r = evaluate(model, valid, iw_samples=1, seed=seed, with_mi=False)
        diffs.append(r.iw_nll - r.elbo)     # analytic KL vs its one-sample estimate: zero mean
    d = np.array(diffs)
    assert abs(d.mean()) < 4 * d.std(ddof=1) / math.sqrt(len(d)) + 1e-3


def test_figures_do_not_depend_on_batching(model_and_data):
    model, _, valid = model_and_data
    a = evaluate(model, valid, iw_samples=13, max_tokens=200, seed=5)
    b = evaluate(model, valid, iw_samples=13, max_tokens=5000, seed=5)
    for key in ("iw_nll", "elbo", "rec", "kl", "mi", "ess"):
        assert getattr(a, key) == pytest.approx(getattr(b, key), rel=1e-4, abs=1e-4), key
    assert a.au == b.au


def test_every_sample_is_used_when_k_is_not_a_multiple_of_the_chunk(model_and_data):
    model, _, valid = model_and_data
    one = subset(valid, np.array([3]))
    b = collate(one, np.array([0]))
    x, lengths = b.tokens, b.lengths
    T = x.size(1) - 1
    K = 7
    r = evaluate(model, one, iw_samples=K, max_tokens=3 * T, seed=1, with_mi=False)   # chunks of 3, 3, 1
    with torch.no_grad():
        q = model.encode(x[:, 1:], lengths)
        mu, logvar = q.mu, q.logvar
        eps = sample_noise(1, np.array([0]), 0, K, mu.size(1))[0]            # (K, nz)
        z = mu + torch.exp(0.5 * logvar) * eps
        ll = model.log_likelihood(z, x[:, :-1].expand(K, -1), x[:, 1:].expand(K, -1))
        log_pz = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1)
        log_qz = torch.distributions.Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(1)
        expected = -(torch.logsumexp(ll + log_pz - log_qz, 0) - math.log(K))
    assert r.iw_nll == pytest.approx(float(expected), abs=1e-3)


def test_noise_is_the_same_however_it_is_chunked():
    idx = np.array([4, 9])
    whole = sample_noise(0, idx, 0, 40, 3)
    parts = torch.cat([sample_noise(0, idx, 0, 7, 3), sample_noise(0, idx, 7, 20, 3),
                       sample_noise(0, idx, 27, 13, 3)], dim=1)
    assert torch.equal(whole, parts)
    assert not torch.equal(sample_noise(0, idx, 0, 5, 3), sample_noise(1, idx, 0, 5, 3))


def test_mi_is_within_bounds_and_au_matches_covariance(model_and_data):
    model, _, valid = model_and_data
    r = evaluate(model, valid, iw_samples=2)
    assert 0.0 <= r.mi <= math.log(len(valid)) + 1e-6
    b = collate(valid, np.arange(len(valid)))
    with torch.no_grad():
        mu = model.encode(b.tokens[:, 1:], b.lengths).mean()
    cov = np.cov(mu.numpy().T)
    assert r.au == int((np.diag(cov) > 0.01).sum())
    assert active_units(torch.zeros(10, 4)) == 0


def test_perplexity_is_per_whitespace_word_plus_eos(model_and_data, corpora):
    model, tok, valid = model_and_data
    r = evaluate(model, valid, iw_samples=3)
    assert r.words == int(valid.words.sum()) + len(valid)
    assert r.ppl == pytest.approx(math.exp(r.iw_nll * r.sentences / r.words))
    assert r.ppl_elbo == pytest.approx(math.exp(r.elbo * r.sentences / r.words))


def test_eval_cli_prints_json_with_settings(trained, corpus_dir, monkeypatch, capsys):
    out, _ = trained
    code, stdout, err = run_cli(["eval", "-c", out / "best.pt", "--data", corpus_dir / "valid.txt",
                                 "--iw-samples", "7", "--seed", "2", "--json"], monkeypatch, capsys)
    assert code == 0, err
    r = json.loads(stdout)
    assert r["iw_samples"] == 7 and r["seed"] == 2 and r["checkpoint"] == str(out / "best.pt")
    assert r["sentences"] == 80 and r["iw_nll"] <= r["elbo"] + 3 * r["iw_nll_se"]
    assert "IW-NLL" in err                      # the readable table goes to stderr


@pytest.mark.parametrize("args,needle", [
    (["--iw-samples", "0"], "--iw-samples"),
    (["-c", "nothing.pt"], "nothing.pt: checkpoint not found"),
    (["--data", "empty.txt"], "no usable sentence"),
    (["--data", "greek.txt"], "unknown to this tokenizer"),
])
def test_eval_bad_input(args, needle, trained, tmp_path, monkeypatch, capsys):
    out, _ = trained
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.txt").write_text("\n\n")
    (tmp_path / "greek.txt").write_text("Καλημέρα κόσμε, τι κάνεις σήμερα;\nΤο σκυλί τρέχει στο πάρκο.\n")
    base = [] if "-c" in args else ["-c", out / "best.pt"]
    code, stdout, err = run_cli(["eval", *base, *args], monkeypatch, capsys)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1 and stdout == ""


def test_per_sentence_lines_average_to_the_summary(trained, corpus_dir, tmp_path, monkeypatch, capsys):
    out, _ = trained
    lines = corpus_dir / "valid.txt"
    per = tmp_path / "per.jsonl"
    code, stdout, err = run_cli(["eval", "-c", out / "best.pt", "--data", lines, "-k", "9",
                                 "--per-sentence", per, "--json"], monkeypatch, capsys)
    assert code == 0, err
    summary = json.loads(stdout)
    rows = [json.loads(x) for x in per.read_text().splitlines()]
    assert [r["index"] for r in rows] == list(range(summary["sentences"]))
    n = len(rows)
    for key in ("iw_nll", "elbo", "ess", "kl"):
        assert sum(r[key] for r in rows) / n == pytest.approx(summary[key], rel=1e-9), key
    assert sum(r["words"] for r in rows) == summary["words"]
    # each line is its own sentence: the words of line i of the input file
    text = [t for t in lines.read_text().splitlines() if t.strip()]
    assert [r["words"] for r in rows] == [len(t.split()) + 1 for t in text]
    assert all(1.0 <= r["ess"] <= 9.0 and r["iw_nll"] <= r["elbo"] + 5 for r in rows)


def test_degenerate_importance_weights_are_warned_about(trained, corpus_dir, monkeypatch, capsys):
    import sentvae.cli as cli
    out, _ = trained
    args = ["eval", "-c", out / "best.pt", "--data", corpus_dir / "valid.txt", "-k", "4", "--json"]
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert code == 0 and "degenerate importance weights" not in err
    monkeypatch.setattr(cli, "ESS_WARN_FRACTION", 1.01)     # any ESS is now "a small fraction" of K
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert code == 0 and "degenerate importance weights: mean ESS" in err
