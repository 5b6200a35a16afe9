"""The judge (sentvae/judge.py): a bag-of-n-grams logistic regression, on a tiny synthetic set
whose answer is known, saved and loaded without pickle."""

import random

import numpy as np
import pytest

from sentvae.errors import SentvaeError
from sentvae.judge import Judge

FILLER = "the food was service staff place really very our table today and it".split()
MARKERS = {"pos": "good", "neg": "bad", "mid": "okay"}


def _synthetic(n, seed, classes=("neg", "pos")):
    """Sentences of filler words with one marker word: its class is the answer."""
    r = random.Random(seed)
    texts, labels = [], []
    for _ in range(n):
        y = r.choice(classes)
        words = r.sample(FILLER, 5)
        words.insert(r.randrange(6), MARKERS[y])
        texts.append(" ".join(words) + " .")
        labels.append(y)
    return texts, labels


@pytest.fixture(scope="module")
def binary():
    texts, labels = _synthetic(300, 0)
    return Judge.train(texts, labels, attribute="sentiment")


def test_judge_learns_the_marker_and_generalises(binary):
    texts, labels = _synthetic(200, 1)             # new sentences, same rule
    assert binary.accuracy(texts, labels) == 1.0
    assert binary.classes == ["neg", "pos"] and binary.attribute == "sentiment"
    # the text is normalised as every score's is: case and attached punctuation do not matter
    assert binary.predict(["The staff was GOOD!", "Bad, really."]) == ["pos", "neg"]
    p = binary.proba(["good good food", "bad food"])
    assert p.shape == (2, 2) and np.allclose(p.sum(1), 1.0)
    assert p[0, 1] > 0.5 > p[1, 1]


def test_unlabelled_rows_are_skipped_and_one_class_is_refused():
    texts, labels = _synthetic(60, 2)
    labels[:10] = [None] * 10
    judge = Judge.train(texts, labels)
    assert judge.settings["train_sentences"] == 50
    with pytest.raises(SentvaeError, match="at least two values"):
        Judge.train(["good food", "good staff"], ["pos", "pos"])


@pytest.mark.parametrize("classes", [("neg", "pos"), ("neg", "mid", "pos")])
def test_saved_judge_predicts_exactly_as_the_trained_one(classes, tmp_path):
    texts, labels = _synthetic(300, 3, classes)
    judge = Judge.train(texts, labels, attribute="sentiment", C=4.0)
    judge.save(tmp_path / "judge.npz")
    back = Judge.load(tmp_path / "judge.npz")
    probe, _ = _synthetic(100, 4, classes)
    probe += ["never seen words here", "good bad okay"]
    assert np.array_equal(back.proba(probe), judge.proba(probe))
    assert back.predict(probe) == judge.predict(probe)
    assert back.classes == sorted(classes) and back.attribute == "sentiment" and back.settings["C"] == 4.0
    # plain arrays only: the file opens without pickle
    with np.load(tmp_path / "judge.npz", allow_pickle=False) as z:
        assert set(z.files) == {"header", "terms", "idf", "coef", "intercept", "classes"}
        assert all(z[k].dtype != object for k in z.files)


def test_loading_refuses_what_is_not_a_judge(tmp_path, binary):
    evil = tmp_path / "evil.npz"
    np.savez(evil, header=np.array([{"format": "sentvae-judge"}], dtype=object))     # needs pickle
    with pytest.raises(SentvaeError, match="refused, it holds Python objects"):
        Judge.load(evil)
    text = tmp_path / "notes.npz"
    text.write_text("hello\n")
    with pytest.raises(SentvaeError, match="not a sentvae judge"):
        Judge.load(text)
    other = tmp_path / "other.npz"
    np.savez(other, header=np.array('{"format": "something-else"}'))
    with pytest.raises(SentvaeError, match="not a sentvae judge"):
        Judge.load(other)
    with pytest.raises(SentvaeError, match="no such judge file"):
        Judge.load(tmp_path / "missing.npz")
