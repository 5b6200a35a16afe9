"""A categorical latent through every command (train, eval, sample --category, interpolate,
reconstruct, encode | decode, clusters, info, plot --latent), alone and beside a Gaussian z, and
the combinations it cannot honour refused with one line before anything is written."""

import json

import pytest

import sentvae
from sentvae.errors import SentvaeError
from sentvae.estimators import temperature
from conftest import TINY_MODEL, run_cli

SENTENCES = ["the old man read a book in the park .", "did the dogs chase two cats ?", "she will not sing ."]
K = 3
COMMON = dict(model_type="word", vocab_size=1000, max_steps=12, epochs=0, eval_every=6, log_every=3, anneal_steps=6,
              max_tokens=800, max_len=40, device="cpu", categories=K, **TINY_MODEL)
RUNS = {"categorical": dict(latent_type="categorical"),          # exact, the default estimator
        "categorical+gaussian": dict(latent_type="categorical+gaussian", estimator="gumbel", tau=2.0, tau_min=0.5,
                                     tau_rate=0.1)}


@pytest.fixture(scope="module", params=list(RUNS))
def run(request, tmp_path_factory, corpus_dir):
    out = tmp_path_factory.mktemp(request.param.replace("+", "-"))
    sentvae.train(data=corpus_dir / "train.txt", valid=corpus_dir / "valid.txt", out=out, **COMMON, **RUNS[request.param])
    return request.param, out


def _ok(args, monkeypatch, capsys, stdin=None):
    code, out, err = run_cli(args, monkeypatch, capsys, stdin)
    assert code == 0, err
    return out, err


def _refused(args, monkeypatch, capsys, message):
    code, out, err = run_cli(args, monkeypatch, capsys)
    assert code == 2 and out == "" and message in err and len(err.strip().splitlines()) == 1, (code, err)


def test_training_logs_the_true_elbo_beside_the_surrogate(run):
    name, out = run
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["split"] == "train"]
    assert train and all(r["elbo"] == pytest.approx(r["rec"] + r["kl"]) and "loss" in r and "baseline_rmse" in r
                         for r in train)
    valid = [r for r in rows if r["split"] == "valid"]
    assert valid and all(r["latent"] == (K if name == "categorical" else K + TINY_MODEL["latent"]) for r in valid)
    if name == "categorical+gaussian":      # the mean temperature of the steps each line covers
        cfg = _train_config(out)
        for r, before in zip(train, [0] + [t["step"] for t in train]):
            expect = sum(temperature(s, cfg) for s in range(before, r["step"])) / (r["step"] - before)
            assert r["tau"] == pytest.approx(expect, rel=1e-5), (r["step"], r["tau"], expect)
        assert train[-1]["tau"] < train[0]["tau"]


def _train_config(out):
    from sentvae.checkpoint import load_checkpoint
    from sentvae.config import TrainConfig
    return TrainConfig.from_dict(load_checkpoint(out / "last.pt")["train_config"])


def test_eval_is_exact_for_a_categorical_alone(run, corpus_dir, monkeypatch, capsys):
    name, out = run
    stdout, err = _ok(["eval", "-c", out / "best.pt", "--data", corpus_dir / "valid.txt", "-k", "7", "--device", "cpu",
                       "--json"], monkeypatch, capsys)
    report = json.loads(stdout)
    assert report["kl_exact"]
    if name == "categorical":
        assert report["nll_exact"] and report["iw_samples"] == K and report["iw_nll_se"] == 0.0
        assert f"exact: summed over the latent's {K} values" in err
        assert report["iw_nll"] <= report["elbo"] + 1e-6
    else:
        assert not report["nll_exact"] and report["iw_samples"] == 7 and "mean ESS" in err
    assert report["latent"] == sentvae.load(out / "best.pt", device="cpu").latent


def test_generation_commands(run, monkeypatch, capsys):
    name, out = run
    ckpt = out / "best.pt"
    stdout, _ = _ok(["sample", "-c", ckpt, "-n", "3", "--device", "cpu"], monkeypatch, capsys)
    assert len(stdout.splitlines()) == 3
    stdout, _ = _ok(["sample", "-c", ckpt, "-n", "2", "--category", str(K - 1), "--device", "cpu"], monkeypatch, capsys)
    assert len(stdout.splitlines()) == 2
    _refused(["sample", "-c", ckpt, "--category", str(K), "--device", "cpu"], monkeypatch, capsys,
             f"--category: must be an integer in [0, {K - 1}], not {K}")
    stdout, _ = _ok(["interpolate", "-c", ckpt, SENTENCES[0], SENTENCES[1], "--steps", "4", "--device", "cpu"],
                    monkeypatch, capsys)
    assert len(stdout.splitlines()) == 4
    _refused(["interpolate", "-c", ckpt, SENTENCES[0], SENTENCES[1], "--method", "slerp", "--device", "cpu"],
             monkeypatch, capsys, "--method slerp: a categorical code")
    # encode | decode equals reconstruct, and in Python decode(encode(texts)) too
    codes, _ = _ok(["encode", "-c", ckpt, "--device", "cpu", *SENTENCES], monkeypatch, capsys)
    decoded, _ = _ok(["decode", "-c", ckpt, "--device", "cpu"], monkeypatch, capsys, stdin=codes)
    rebuilt, _ = _ok(["reconstruct", "-c", ckpt, "--device", "cpu", *SENTENCES], monkeypatch, capsys)
    assert decoded == rebuilt
    model = sentvae.load(ckpt, device="cpu")
    assert model.decode(model.encode(SENTENCES)) == rebuilt.splitlines()
    for row in map(json.loads, codes.splitlines()):
        assert set(row) == {"text", *model.posterior_params}
        probs = row["categories"]
        assert len(probs) == K and sum(probs) == pytest.approx(1.0, abs=1e-5)
        assert row["z"][:K] == [1.0 if i == probs.index(max(probs)) else 0.0 for i in range(K)]   # the mode
        assert len(row["z"]) == model.latent
    good = json.dumps({"z": [1.0] + [0.0] * (model.latent - 1)}) + "\n"
    bad = json.dumps({"z": [0.5, 0.7] + [0.0] * (model.latent - 2)}) + "\n"
    # the bad code on line 4, after a blank line, in a second batch: named by its line, not its row
    code, _, err = run_cli(["decode", "-c", ckpt, "--device", "cpu", "--batch-size", "2"], monkeypatch, capsys,
                           stdin=good + "\n" + good + bad)
    assert code == 2 and err.startswith('error: <stdin> line 4: "z": its first') and len(err.strip().splitlines()) == 1
    assert "the category) must be probabilities summing to 1" in err


def test_prior_samples_of_one_category(run):
    name, out = run
    import torch
    model = sentvae.load(out / "best.pt", device="cpu")
    z = model.net.prior.sample(5, torch.Generator().manual_seed(0), category=1)
    assert torch.equal(z[:, :K], torch.eye(K)[[1] * 5])
    assert z.shape == (5, model.latent)
    assert len(model.sample(2, category=0)) == 2
    with pytest.raises(SentvaeError, match=r"--category: must be an integer in \[0, \d+\], not True"):
        model.sample(2, category=True)                          # the declared domain: an integer
    with pytest.raises(SentvaeError, match=r"--category: must be an integer in \[0, 2\], not 3"):
        model.sample(2, category=3)                             # this model's K = 3 values
    with pytest.raises(SentvaeError, match="--component: .* has no mixture prior"):
        model.sample(2, component=0)


def test_clusters_info_and_latent_map(run, corpus_dir, tmp_path, monkeypatch, capsys):
    name, out = run
    texts = [t for t in (corpus_dir / "valid.txt").read_text().splitlines() if t.strip()]
    data = tmp_path / "labelled.jsonl"
    data.write_text("".join(json.dumps({"text": t, "mood": "question" if t.endswith("?") else "statement"}) + "\n"
                            for t in texts))
    stdout, err = _ok(["clusters", out / "best.pt", "--data", data, "--label-field", "mood", "--top", "2",
                       "--device", "cpu", "--json"], monkeypatch, capsys)
    report = json.loads(stdout)
    assert len(report["components"]) == K and sum(c["sentences"] for c in report["components"]) == len(texts)
    assert 0.0 <= report["agreement"]["nmi"] <= 1.0 and report["entropy_of_shares"] >= 0.0
    stdout, _ = _ok(["info", out / "best.pt"], monkeypatch, capsys)
    assert f"latent_type={name}" in stdout and f"categories={K}" in stdout
    figure = tmp_path / "latent.png"
    _ok(["plot", out, "--latent", "-c", out / "best.pt", "--data", corpus_dir / "valid.txt", "-o", figure,
         "--device", "cpu"], monkeypatch, capsys)
    assert figure.stat().st_size > 0
    _ok(["plot", out, "-o", tmp_path / "curves.png"], monkeypatch, capsys)


def test_a_gaussian_model_has_no_category(trained, monkeypatch, capsys):
    out, _ = trained
    _refused(["sample", "-c", out / "best.pt", "--category", "0", "--device", "cpu"], monkeypatch, capsys,
             "--category: ")
    code, _, err = run_cli(["sample", "-c", out / "best.pt", "--category", "0", "--device", "cpu"], monkeypatch, capsys)
    assert "has no categorical latent" in err


def test_combinations_it_cannot_honour_are_refused_before_anything_is_written(tmp_path, corpus_dir):
    base = dict(data=corpus_dir / "train.txt", valid=corpus_dir / "valid.txt", max_steps=2, epochs=0, device="cpu",
                model_type="word", vocab_size=1000, max_len=40, **TINY_MODEL)
    cat = dict(latent_type="categorical", categories=4)
    cases = [(dict(estimator="reinforce"), "--estimator reinforce: applies to a categorical latent"),
             (dict(objective="iwae", train_samples=2, estimator="exact"), "--estimator exact: applies to a categorical"),
             (dict(**cat, free_bits=0.5), "--free-bits: needs a KL that splits by latent dimension"),
             (dict(**cat, free_bits=0.5, free_bits_over="sentence"), "--free-bits: needs a KL that splits"),
             (dict(**cat, free_bits=0.35, free_bits_over="latent"), "--free-bits: 0.35 x 4 categories = 1.4 nats, at "
                                                                   "or above the most a categorical over 4 values"),
             (dict(**cat, objective="iwae", train_samples=2), "--objective iwae: a categorical latent trains the ELBO"),
             (dict(**cat, bow_weight=0.5), "--bow-weight: not offered with a categorical latent"),
             (dict(**cat, train_samples=2), "--train-samples: the exact estimator sums over"),
             (dict(latent_type="categorical", categories=20, max_tokens=500), "--max-tokens: must be at least 820"),
             (dict(**cat, estimator="gumbel", max_tokens=60), "--max-tokens: must be at least 82"),
             (dict(**cat, straight_through=True), "--straight-through: applies to --estimator gumbel only"),
             (dict(**cat, estimator="reinforce", tau=0.3), "--tau: applies to --estimator gumbel only"),
             (dict(**cat, estimator="gumbel", tau=0.3), "--tau-min: must be at most --tau 0.3"),
             (dict(**cat, posterior="iaf"), "--posterior: --latent-type categorical takes the diagonal Gaussian"),
             (dict(latent_type="categorical+gaussian", prior="gmm"), "--prior: --latent-type categorical+gaussian"),
             (dict(**cat, no_latent=True), "--latent-type: a --no-latent model has no latent")]
    for extra, message in cases:
        with pytest.raises(SentvaeError, match="^" + message.replace("+", r"\+")):
            sentvae.train(out=tmp_path / "r", **{**base, **extra})
        assert not (tmp_path / "r").exists(), extra


def test_the_command_line_refuses_with_one_line(tmp_path, corpus_dir, monkeypatch, capsys):
    _refused(["train", "-d", corpus_dir / "train.txt", "-o", tmp_path / "r", "--latent-type", "categorical",
              "--free-bits", "0.5", "--max-steps", "1", "--epochs", "0", "--model-type", "word", "--device", "cpu"],
             monkeypatch, capsys, "--free-bits: needs a KL that splits by latent dimension")
    _refused(["train", "-d", corpus_dir / "train.txt", "-o", tmp_path / "r", "--estimator", "gumbel",
              "--max-steps", "1", "--epochs", "0", "--model-type", "word", "--device", "cpu"],
             monkeypatch, capsys, "--estimator gumbel: applies to a categorical latent")
    assert not (tmp_path / "r").exists()
