"""Representation probing (sentvae/probe.py, probe_run.py, probe_tasks.py, features.py, `sentvae probe`):
on synthetic sets whose answer is known, the probe finds a linear separator and sits at chance on
shuffled labels; the folds cover every sentence once; the bag-of-pieces baseline counts the
tokenizer's pieces; an LM's final state is the decoder's state after the last word, as stepping
the decoder by hand gives it, whatever the padding; bad task files are one line, exit 2."""

import json
import random
from collections import Counter

import numpy as np
import pytest
import torch

from conftest import BUNDLED, run_cli
from sentvae.errors import SentvaeError
from sentvae.probe import DENSE, SPARSE, FeatureSet, cross_validate, draws_of, few_label, folds_of, split

# words of the bundled corpus, so that the test tokenizer has a piece for each
FILLER = "the that a this her his will my did every is our to was".split()
MARKERS = {"pos": "happy", "neg": "sad"}


def _separable(n, seed, dim=6):
    """Gaussian features whose label is the sign of a fixed direction, with a margin."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, dim))
    w = np.arange(1, dim + 1, dtype=float)
    score = X @ w
    keep = np.abs(score) > 1.0                         # a margin: the answer is unambiguous
    return X[keep], (score[keep] > 0).astype(np.int64)


def _marker_sentences(n, seed):
    """Sentences of filler words with one marker word: the marker is the label."""
    r = random.Random(seed)
    texts, labels = [], []
    for _ in range(n):
        y = r.choice(sorted(MARKERS))
        words = r.sample(FILLER, 5)
        words.insert(r.randrange(6), MARKERS[y])
        texts.append(" ".join(words) + " .")
        labels.append(y)
    return texts, labels


def test_the_probe_finds_a_linear_separator_and_is_at_chance_on_shuffled_labels():
    X, y = _separable(400, 0)
    feats = [FeatureSet("x", DENSE, X)]
    found = cross_validate(feats, y, folds=5, inner=3, seed=0)
    assert found["x"]["accuracy"] > 0.97 and len(found["x"]["runs"]) == 5
    assert found["x"]["fits"] == 5 * (6 * 3 + 1)       # every C of the grid on every inner fold, then a refit
    X, y = _separable(1200, 1)
    shuffled = np.random.default_rng(1).permutation(y)
    chance = cross_validate([FeatureSet("x", DENSE, X)], shuffled, folds=5, inner=3, seed=0)
    # nothing to find: near 1/2 (the binomial s.d. over ~1,000 sentences is 0.016)
    assert abs(chance["x"]["accuracy"] - 0.5) < 0.06


def test_a_dense_features_units_do_not_matter():
    """Posterior means mix units of scale 1 with inactive ones of scale 1e-3: standardised, the
    probe (and the C it chooses) is the same whatever unit each dimension is in."""
    X, y = _separable(300, 4)
    scaled = X * np.array([1e-3, 1, 1e2, 1, 1e-2, 1])
    a = cross_validate([FeatureSet("x", DENSE, X)], y, folds=3, inner=2, seed=0)["x"]
    b = cross_validate([FeatureSet("x", DENSE, scaled)], y, folds=3, inner=2, seed=0)["x"]
    assert a["runs"] == b["runs"] and a["C"] == b["C"]


def test_folds_cover_every_example_exactly_once_and_are_stratified_and_seeded():
    y = np.array([0] * 70 + [1] * 30 + [2] * 20)
    splits = folds_of(y, 10, seed=3)
    tested = np.concatenate([test for _, test in splits])
    assert sorted(tested.tolist()) == list(range(len(y)))             # each row tested once
    for train, test in splits:
        assert not set(train) & set(test) and len(train) + len(test) == len(y)
        assert np.bincount(y[test], minlength=3).tolist() == [7, 3, 2]   # each class spread evenly
    again = folds_of(y, 10, seed=3)
    assert all((a[1] == b[1]).all() for a, b in zip(splits, again))
    other = folds_of(y, 10, seed=4)
    assert any((a[1] != b[1]).any() for a, b in zip(splits, other))
    with pytest.raises(SentvaeError, match="class 2 has 20 example"):
        folds_of(y, 25, seed=0)


def test_bag_of_pieces_counts_the_tokenizers_pieces_and_finds_the_marker(tok):
    from sentvae.features import bag_of_pieces

    texts, labels = _marker_sentences(200, 0)
    texts[0] = "happy happy " + texts[0]
    X = bag_of_pieces(tok, texts)
    assert X.shape == (200, tok.vocab_size)
    for i in (0, 1, 57):
        assert {j: int(X[i, j]) for j in X[i].indices} == dict(Counter(tok.encode([texts[i]])[0]))
    y = np.array([sorted(MARKERS).index(v) for v in labels])
    bow = [FeatureSet("bow", SPARSE, X)]
    assert cross_validate(bow, y, folds=5, inner=3, seed=0)["bow"]["accuracy"] == 1.0
    shuffled = np.random.default_rng(0).permutation(y)
    assert cross_validate(bow, shuffled, folds=5, inner=3, seed=0)["bow"]["accuracy"] < 0.65


def test_split_chooses_C_on_dev_and_tests_on_test_only():
    X, y = _separable(500, 2)
    rows = np.arange(len(y))
    train, dev, test = rows[:200], rows[200:300], rows[300:]
    out = split([FeatureSet("x", DENSE, X)], y, train, test, dev, seed=0)
    assert out["x"]["accuracy"] > 0.95 and out["x"]["std"] is None
    assert out["x"]["fits"] == 6 + 1 and "dev_accuracy" in out["x"]
    p = out["x"]["accuracy"]
    assert out["x"]["se"] == pytest.approx(np.sqrt(p * (1 - p) / len(test)))
    # the test rows' labels play no part in training: flipping them flips the accuracy
    flipped = y.copy()
    flipped[test] = 1 - flipped[test]
    assert split([FeatureSet("x", DENSE, X)], flipped, train, test, dev, seed=0)["x"]["accuracy"] == pytest.approx(1 - p)


def test_few_label_draws_are_nested_seeded_and_the_curve_is_reported_per_size():
    draws = draws_of(1000, [10, 50], draws=3, seed=0)
    assert [len(d) for d in draws] == [50, 50, 50] and all(len(set(d)) == 50 for d in draws)
    assert all((a == b).all() for a, b in zip(draws, draws_of(1000, [10, 50], 3, 0)))
    assert not (draws[0] == draws[1]).all()
    with pytest.raises(SentvaeError, match="--few 2000"):
        draws_of(1000, [100, 2000], 3, 0)
    X, y = _separable(1400, 3)
    pool, test = np.arange(1000), np.arange(1000, len(y))
    curve = few_label([FeatureSet("x", DENSE, X)], y, draws_of(len(pool), [20, 200], 3, 0), [20, 200], test,
                      inner=2, seed=0)
    assert [p["n"] for p in curve] == [20, 200]
    assert all(len(p["x"]["runs"]) == 3 and p["x"]["std"] is not None for p in curve)
    assert curve[1]["x"]["accuracy"] > 0.95


@pytest.mark.parametrize("arch", ["lstm", "transformer"])
@pytest.mark.parametrize("no_latent", [True, False])
def test_final_state_is_the_decoders_state_after_the_last_word_whatever_the_padding(tok, arch, no_latent):
    from sentvae.api import Model
    from sentvae.config import ModelConfig
    from sentvae.model import build_model
    from sentvae.tokenizer import BOS

    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=tok.vocab_size, arch=arch, emb_dim=16, hidden=16, latent=4, heads=2, ff=32,
                      dropout=0.0, no_latent=no_latent)
    net = build_model(cfg).eval()
    model = Model(net, tok, {}, torch.device("cpu"))
    short, long_ = "the dog ran .", "my kind friendly writers that the old farmer will not walk home ."
    together = model.final_states([short, long_, "a"])              # (3, H), padded to the longest
    alone = model.final_states([short])
    assert together.shape == (3, net.decoder.out_dim)
    assert torch.allclose(together[0], alone[0], atol=1e-5)        # padding changes nothing
    for i, text in enumerate([short, long_, "a"]):
        ids = tok.encode([text])[0]
        with torch.no_grad():
            x = torch.tensor([ids + [3]])
            z = net.encode(x, torch.tensor([len(ids) + 1])).mean()        # (1, nz); 0 for an LM
            state = net.decoder.init_state(net.condition(z))
            for t in [BOS] + ids:                                   # BOS, w1 .. wn: read one at a time
                h, state = net.decoder.step(net.emb(torch.tensor([[t]])), state)
        assert torch.allclose(together[i], h[0, 0], atol=1e-5), text
    # it is the state that predicts EOS: the model's own next-token distribution there
    assert not torch.allclose(together[0], together[1])


def _bad(monkeypatch, capsys, checkpoint, *args):
    code, out, err = run_cli(["probe", checkpoint, *args], monkeypatch, capsys)
    return code, out, err.strip()


def test_the_command_reports_three_feature_sets_on_the_same_folds_reproducibly(tmp_path, monkeypatch, capsys, v1):
    rows = [json.loads(line) for line in (BUNDLED / "test.jsonl").read_text().splitlines()[:120]]
    task = tmp_path / "neg.txt"        # `label sentence` lines: negation, which the words carry
    task.write_text("".join(f"{r['negation']} {r['text']}\n" for r in rows))
    args = ["probe", v1["vae"], "--task", task, "--lm", v1["lm"], "--folds", 3, "--inner-folds", 2, "--json"]
    code, out, err = run_cli(args, monkeypatch, capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["protocol"] == "cross-validation" and report["examples"] == 120 and report["folds"] == 3
    assert list(report["results"]) == ["majority", "vae", "lm", "bow"]
    assert report["results"]["vae"]["dim"] == 4 and report["results"]["lm"]["dim"] == 16
    assert report["results"]["bow"]["accuracy"] > 0.9                  # "not" / "n't" is a piece
    assert all(len(v["runs"]) == 3 for v in report["results"].values())
    assert "3-fold cross-validation of 120 sentences" in " ".join(err.split())      # the table, on stderr
    assert run_cli(args, monkeypatch, capsys)[1] == out                 # seeded: the same numbers again


def test_the_command_few_label_curve_and_split(tmp_path, monkeypatch, capsys, v1):
    texts, labels = _marker_sentences(160, 5)
    pos = tmp_path / "train.1"
    neg = tmp_path / "train.0"
    pos.write_text("".join(t + "\n" for t, y in zip(texts[:120], labels) if y == "pos"))
    neg.write_text("".join(t + "\n" for t, y in zip(texts[:120], labels) if y == "neg"))
    test = tmp_path / "test.txt"
    test.write_text("".join(f"{y} {t}\n" for t, y in zip(texts[120:], labels[120:])))
    code, out, err = run_cli(["probe", v1["vae"], "--task", f"{neg}@s=neg", "--task", f"{pos}@s=pos", "--test", test,
                              "--few", "20,40", "--draws", 2, "--inner-folds", 2, "--json"], monkeypatch, capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["protocol"] == "few-label" and report["sizes"] == [20, 40] and report["pool"] == 120
    assert [len(p["bow"]["runs"]) for p in report["curve"]] == [2, 2]
    assert report["encoded"] <= 40 * 2 + 40
    code, out, err = run_cli(["probe", v1["vae"], "--task", f"{neg}@s=neg", "--task", f"{pos}@s=pos", "--test", test,
                              "--dev", test, "--json"], monkeypatch, capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["protocol"] == "split" and report["chosen_on"] == "dev" and report["test_examples"] == 40


@pytest.mark.parametrize("make, extra, expected", [
    (lambda d: None, [], "no such file"),
    (lambda d: (d / "t.txt").write_text("1 a good one .\nlonely\n"), [], "line 2: expected 'LABEL sentence'"),
    (lambda d: (d / "t.txt").write_text("1 a b .\n1 c d .\n"), [], "a probe needs at least two classes"),
    (lambda d: (d / "t.txt").write_text("".join(f"{w} x y .\n" for w in FILLER * 9)), [], "label 'a' has 9 example"),
    (lambda d: (d / "t.txt").write_text("".join(f"w{i} x y .\n" for i in range(120))), [], "120 different labels"),
    (lambda d: (d / "t.jsonl").write_text('{"text": "a b ."}\n'), [], "--label-field"),
    (lambda d: (d / "t.jsonl").write_text('{"text": "a b .", "y": "1"}\n{"text": "c d ."}\n'), ["--label-field", "y"],
     "sentence 2"),
    (lambda d: (d / "t.txt").write_bytes("1 caf\xe9 .\n0 no .\n".encode("latin-1")), [], "--encoding latin-1"),
    (lambda d: (d / "t.txt").write_text("1 a .\n0 b .\n"), ["--few", "10,x"], "--few 10,x"),
    (lambda d: (d / "t.txt").write_text("1 a .\n0 b .\n"), ["--few", "10"], "needs a held-out --test"),
    (lambda d: (d / "t.txt").write_text("1 a .\n0 b .\n"), ["--folds", "1"], "--folds"),
])
def test_bad_task_files_and_options_are_one_line_exit_2(tmp_path, monkeypatch, capsys, make, extra, expected, v1):
    make(tmp_path)
    path = next(iter(sorted(tmp_path.iterdir())), tmp_path / "missing.txt")
    code, out, err = _bad(monkeypatch, capsys, v1["vae"], "--task", path, *extra)
    assert code == 2 and out == "" and len(err.splitlines()) == 1, err
    assert expected in " ".join(err.split()), err


def test_a_test_label_training_never_saw_is_refused(tmp_path, monkeypatch, capsys, v1):
    (tmp_path / "train.txt").write_text("".join(f"{i % 2} s{i} x .\n" for i in range(40)))
    (tmp_path / "test.txt").write_text("0 a .\n7 b .\n")
    code, out, err = _bad(monkeypatch, capsys, v1["vae"], "--task", tmp_path / "train.txt", "--test", tmp_path / "test.txt")
    assert code == 2 and len(err.splitlines()) == 1
    assert "--test" in err and "label '7'" in err and "test.txt" in " ".join(err.split())
