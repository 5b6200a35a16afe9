"""Scores of generated sentences (sentvae/scoring.py), against hand-computed values."""

import math

import pytest

import sentvae
from sentvae.scoring import corpus_bleu, distinct_n, fluency, label_accuracy, normalize


@pytest.mark.parametrize("raw, expected", [
    # a human rewrite (Li et al. 2018's references) brought to the corpus's tokens
    ("Ever since joes has changed hands it's gotten better and better.",
     "ever since joes has changed hands it 's gotten better and better ."),
    ("I won't go, can't stay & don't care!", "i wo n't go , ca n't stay & do n't care !"),
    ("They should've been kind; I'd say 20-30% off...", "they should 've been kind ; i 'd say 20-30 % off ..."),
    ("I called at 6:30, paid $5.50 for 1,000 so-so (tiny) wings",
     "i called at 6:30 , paid $ 5.50 for 1,000 so-so ( tiny ) wings"),
    ('she said "yes" .', 'she said " yes " .'),
    # corpus text stays as it is, except its `` '' quotes (written ", like the rewrites')
    ("it 's small yet they make you feel right at home .", "it 's small yet they make you feel right at home ."),
    ("my `` hot '' sub was cold ... <unk> $ _num_ !", 'my " hot " sub was cold ... <unk> $ _num_ !'),
])
def test_normalize(raw, expected):
    assert normalize(raw) == expected
    assert normalize(expected) == expected          # idempotent


def test_bleu_against_hand_computed_precisions():
    # 1-4-gram precisions 5/6, 3/5, 2/4, 1/3, equal lengths (no brevity penalty)
    expected = 100 * (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25
    assert corpus_bleu(["the cat sat on the mat"], ["the cat sat on a mat"]) == pytest.approx(expected, abs=1e-9)
    # the reference as a person wrote it scores the same once normalised
    assert corpus_bleu(["the cat sat on the mat"], ["The cat sat on a mat"]) == pytest.approx(expected, abs=1e-9)
    # all precisions 1, hypothesis 4 words against 6: brevity penalty exp(1 - 6/4)
    assert corpus_bleu(["the cat sat on"], ["the cat sat on the mat"]) == pytest.approx(100 * math.exp(-0.5), abs=1e-9)
    # corpus BLEU pools the counts over sentences (not a mean of sentence scores)
    pooled = 100 * ((5 + 4) / (6 + 4) * (3 + 3) / (5 + 3) * (2 + 2) / (4 + 2) * (1 + 1) / (3 + 1)) ** 0.25 \
        * math.exp(1 - 12 / 10)
    got = corpus_bleu(["the cat sat on the mat", "the cat sat on"], ["the cat sat on a mat", "the cat sat on the mat"])
    assert got == pytest.approx(pooled, abs=1e-9)
    with pytest.raises(ValueError, match="as many hypotheses"):
        corpus_bleu(["a"], ["a", "b"])


def test_distinct_n_by_hand():
    texts = ["a b a b", "A c"]
    # unigrams a b a b a c: 3 distinct of 6; bigrams ab ba ab ac: 3 distinct of 4
    assert distinct_n(texts, 1) == pytest.approx(3 / 6)
    assert distinct_n(texts, 2) == pytest.approx(3 / 4)
    assert distinct_n(["x"], 2) == 0.0 and distinct_n([], 1) == 0.0


def test_label_accuracy():
    assert label_accuracy(["pos", "neg", "pos", "pos"], ["pos", "pos", "pos", "neg"]) == 0.5
    with pytest.raises(ValueError):
        label_accuracy(["pos"], ["pos", "neg"])


@pytest.fixture(scope="module")
def tiny_lm(corpus_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("lm")
    sentvae.train(data=corpus_dir / "train.txt", valid=corpus_dir / "valid.txt", out=out, model_type="word",
                  vocab_size=500, emb_dim=16, hidden=16, latent=4, no_latent=True, bidirectional=False,
                  max_tokens=300, max_steps=4, eval_every=2)
    return sentvae.load(out / "best.pt", device="cpu")


def test_fluency_is_per_word_perplexity_of_the_normalised_texts(tiny_lm):
    texts = ["The old man read a book.", "did the dogs chase two cats ?", "   "]
    got = fluency(tiny_lm, texts)
    assert got["sentences"] == 2 and got["blank"] == 1
    # exp(total exact NLL / (words + one EOS each)), from the LM's per-sentence scores of the
    # normalised texts
    rows = tiny_lm.score([normalize(t) for t in texts[:2]], k=1)
    assert [r["words"] for r in rows] == [8, 8]       # "the old man read a book ." + EOS
    for r in rows:                                    # --no-latent: the bound is the exact NLL
        assert r["iw_nll"] == pytest.approx(r["elbo"], abs=1e-4)
    expected = math.exp(sum(r["iw_nll"] for r in rows) / sum(r["words"] for r in rows))
    assert got["ppl"] == pytest.approx(expected, rel=1e-6)
    assert math.isnan(fluency(tiny_lm, [" "])["ppl"])
