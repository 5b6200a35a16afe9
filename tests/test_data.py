import numpy as np
import pytest

from sentvae.corpus import collate, load_corpus, make_batches, padding_fraction, split_corpus
from sentvae.errors import SentvaeError
from sentvae.tokenizer import BOS, EOS, PAD


def test_batches_cover_every_sentence_once_within_budget(corpora):
    train, _ = corpora
    for epoch in range(3):
        batches = make_batches(train.lengths, 300, seed=1, epoch=epoch)
        flat = np.concatenate(batches)
        assert sorted(flat.tolist()) == list(range(len(train)))
        for b in batches:
            assert len(b) * (train.lengths[b].max() + 1) <= 300


def test_batches_are_deterministic_per_epoch_and_vary_between_epochs(corpora):
    lengths = corpora[0].lengths
    a = make_batches(lengths, 300, seed=1, epoch=0)
    b = make_batches(lengths, 300, seed=1, epoch=0)
    c = make_batches(lengths, 300, seed=1, epoch=1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b)) and len(a) == len(b)
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_a_sentence_longer_than_the_budget_gets_its_own_batch():
    lengths = np.array([3, 50, 4, 2])
    batches = make_batches(lengths, 20, shuffle=False)
    assert [sorted(b.tolist()) for b in batches if 1 in b] == [[1]]


def test_length_bucketing_keeps_padding_small(tok):
    from conftest import BUNDLED
    corpus = load_corpus([str(BUNDLED / "train.txt")], tok, 100)
    assert padding_fraction(make_batches(corpus.lengths, 2000, seed=0), corpus.lengths) < 0.05


def test_collate_layout(corpora):
    train, _ = corpora
    idx = np.array([0, 5, 9])
    batch = collate(train, idx)
    x, lengths = batch.tokens, batch.lengths
    assert batch.index.tolist() == idx.tolist() and batch.labels is None
    for row, i in enumerate(idx):
        ids = train.sentence(i)
        n = len(ids)
        assert lengths[row] == n + 1
        assert x[row, 0] == BOS and x[row, n + 1] == EOS
        assert x[row, 1:n + 1].tolist() == ids
        assert (x[row, n + 2:] == PAD).all()


def test_split_is_disjoint_and_complete(corpora):
    train, _ = corpora
    a, b = split_corpus(train, seed=0, fraction=0.1)
    assert len(a) + len(b) == len(train) and len(b) == len(train) // 10
    seqs = {tuple(train.sentence(i)) for i in range(len(train))}
    got = [tuple(a.sentence(i)) for i in range(len(a))] + [tuple(b.sentence(i)) for i in range(len(b))]
    assert set(got) == seqs


def test_truncation_is_counted(tmp_path, tok):
    f = tmp_path / "long.txt"
    f.write_text("the man saw the dog .\n" + " ".join(["the dog"] * 40) + "\n", encoding="utf-8")
    c = load_corpus([str(f)], tok, 10)
    assert c.n_truncated == 1 and c.lengths.max() == 10


@pytest.mark.parametrize("content,match", [
    (None, "no such file"),
    (b"", "no usable sentence"),
    (b"\n  \n\n", "no usable sentence"),
    (b"the dog ran .\nthe cat \xff sat .\n", r"line 2: not valid UTF-8"),
    (b"the dog\x00 ran .\n", r"line 1: contains a NUL byte"),
])
def test_bad_text_files(tmp_path, tok, content, match):
    f = tmp_path / "bad.txt"
    if content is not None:
        f.write_bytes(content)
    with pytest.raises(SentvaeError, match=match) as e:
        load_corpus([str(f)], tok, 20)
    assert str(f) in str(e.value)


def test_invalid_utf8_replace_goes_on(tmp_path, tok):
    f = tmp_path / "bad.txt"
    f.write_bytes(b"the dog ran .\nthe cat \xff sat .\r\n")
    c = load_corpus([str(f)], tok, 20, encoding_errors="replace")
    assert len(c) == 2    # the bad byte became U+FFFD and the line was kept


def test_directory_is_refused(tmp_path, tok):
    with pytest.raises(SentvaeError, match="is a directory"):
        load_corpus([str(tmp_path)], tok, 20)


def test_edited_file_is_not_served_from_a_stale_cache(tmp_path, tok):
    f = tmp_path / "c.txt"
    f.write_text("the dog ran .\n", encoding="utf-8")
    assert len(load_corpus([str(f)], tok, 20)) == 1
    f.write_text("the dog ran .\nthe cat sat .\nthe man ran .\n", encoding="utf-8")
    assert len(load_corpus([str(f)], tok, 20)) == 3


def test_jsonl_and_csv_with_a_text_field(tmp_path, tok):
    import json as _json
    rows = ["the dog ran .", "did the man read a book ?", "she sat ."]
    j = tmp_path / "d.jsonl"
    j.write_text("\n".join(_json.dumps({"id": i, "sentence": r}) for i, r in enumerate(rows)) + "\n")
    c = tmp_path / "d.csv"
    c.write_text("id,sentence\n" + "\n".join(f'{i},"{r}"' for i, r in enumerate(rows)) + "\n")
    plain = load_corpus([str(_write(tmp_path / "p.txt", rows))], tok, 20)
    for f in (j, c):
        got = load_corpus([str(f)], tok, 20, text_field="sentence")
        assert got.ids.tolist() == plain.ids.tolist() and len(got) == 3
        with pytest.raises(SentvaeError, match="--text-field"):
            load_corpus([str(f)], tok, 20, text_field="text")


def _write(path, rows):
    path.write_text("\n".join(rows) + "\n")
    return path


def test_hub_data_fails_fast_and_clearly_offline(tok, monkeypatch):
    import time
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t = time.time()
    with pytest.raises(SentvaeError, match=r"--data hf:ptb_text_only: cannot load it: offline"):
        load_corpus(["hf:ptb_text_only"], tok, 20)
    assert time.time() - t < 15


def test_hub_data_fails_fast_without_a_network(tok, monkeypatch):
    import socket
    import time
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def unreachable(*a, **k):
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    t = time.time()
    with pytest.raises(SentvaeError, match="Hub is unreachable"):
        load_corpus(["hf:ptb_text_only"], tok, 20)
    assert time.time() - t < 5


def test_each_unknown_word_is_its_own_token(tmp_path):
    """SentencePiece would merge "<unk> <unk>" (PTB's unknown word, twice) into one UNK; a model
    would then be scored on fewer tokens than the text has words. Word-level corpora must keep
    one token per word, through the tokenizer and through the (cached) corpus."""
    from sentvae.corpus import load_corpus
    from sentvae.tokenizer import UNK, train_tokenizer
    text = ["the cat sat on the mat", "a dog sat on a log", "the dog saw the cat"] * 20
    tok = train_tokenizer(text, "word", 16)
    line = "the zebra <unk> <unk> sat on a yak"
    ids = tok.encode([line, "the cat sat"])
    assert len(ids[0]) == len(line.split()) and ids[0].count(UNK) == 4
    assert ids[1] == tok.encode(["the cat sat"])[0] and UNK not in ids[1]
    f = tmp_path / "t.txt"
    f.write_text(line + "\n")
    corpus = load_corpus([str(f)], tok, max_len=50)
    assert corpus.n_unk == 4 and int(corpus.offsets[1]) == len(line.split())
