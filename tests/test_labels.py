"""Reading labelled sentences (sentvae/labels.py) and their vocabulary (sentvae/label_vocab.py):
every input format, every error."""

import io
import json

import numpy as np
import pytest
import torch

from sentvae.errors import SentvaeError
from sentvae.label_vocab import MAX_VALUES, UNLABELLED, LabelVocab, label_array, label_request, parse_label
from sentvae.labels import (LabelOptions, attributes_of, declared_values, load_labelled, read_labelled,
                            split_source)


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def _read(sources, **kw):
    return list(read_labelled([str(s) for s in sources], LabelOptions(**kw)))


def _error(fn, *args, **kw) -> str:
    with pytest.raises(SentvaeError) as e:
        fn(*args, **kw)
    assert e.value.exit_code == 2
    msg = str(e.value)
    assert "\n" not in msg
    return msg


# --- .jsonl / .csv with --label-field -------------------------------------------------------

def test_jsonl_fields_missing_null_and_empty_are_unlabelled(tmp_path):
    p = _jsonl(tmp_path / "a.jsonl", [
        {"text": "good food .", "sentiment": "positive", "stars": 5},
        {"text": "bad food .", "sentiment": "negative", "stars": None},
        {"text": "some food .", "sentiment": ""},
        {"text": "more food .", "stars": 1},
        {"text": "   ", "sentiment": "positive"},          # a blank text is skipped, as sentvae.data does
    ])
    rows = _read([p], fields=("sentiment", "stars"))
    assert rows == [("good food .", {"sentiment": "positive", "stars": "5"}),
                    ("bad food .", {"sentiment": "negative", "stars": None}),
                    ("some food .", {"sentiment": None, "stars": None}),
                    ("more food .", {"sentiment": None, "stars": "1"})]


def test_csv_field_and_a_file_without_the_column_is_unlabelled(tmp_path):
    a = tmp_path / "a.csv"
    a.write_text('text,sentiment\n"good, really",positive\nmeh,\n', encoding="utf-8")
    b = tmp_path / "b.csv"
    b.write_text("text,other\nplain,x\n", encoding="utf-8")
    rows = _read([a, b], fields=("sentiment",))
    assert rows == [("good, really", {"sentiment": "positive"}), ("meh", {"sentiment": None}),
                    ("plain", {"sentiment": None})]


def test_label_field_absent_from_every_row_is_an_error_naming_the_option(tmp_path):
    p = _jsonl(tmp_path / "a.jsonl", [{"text": "x", "label": "1"}, {"text": "y", "label": "0"}])
    msg = _error(_read, [p], fields=("sentimnet",))
    assert "--label-field sentimnet" in msg and "a.jsonl" in msg and "label, text" in msg


def test_label_field_on_text_files_points_to_first_token(tmp_path):
    p = tmp_path / "sst.txt"
    p.write_text("1 good film .\n", encoding="utf-8")
    msg = _error(_read, [p], fields=("label",))
    assert "--label-field label: no row of" in msg and "--label-first-token" in msg


def test_a_non_scalar_label_names_file_and_line(tmp_path):
    p = _jsonl(tmp_path / "a.jsonl", [{"text": "x", "s": "a"}, {"text": "y", "s": 0.5}])
    msg = _error(_read, [p], fields=("s",))
    assert "a.jsonl line 2" in msg and "'s'" in msg


def test_text_field_missing_names_file_and_line(tmp_path):
    p = _jsonl(tmp_path / "a.jsonl", [{"text": "x", "s": "a"}, {"sentence": "y", "s": "b"}])
    assert "a.jsonl line 2: no field 'text' (--text-field)" in _error(_read, [p], fields=("s",))


# --- "label sentence" lines -----------------------------------------------------------------

def test_first_token_lines(tmp_path):
    p = tmp_path / "sst.txt"
    p.write_text("4 a stirring , funny film\n\n1 apparently reassembled .  \n", encoding="utf-8")
    assert _read([p], first_token="sentiment") == [("a stirring , funny film", {"sentiment": "4"}),
                                                   ("apparently reassembled .", {"sentiment": "1"})]


def test_first_token_latin1_as_in_mr(tmp_path):
    p = tmp_path / "rt-polarity.all"
    p.write_bytes(b"1 a caf\xe9 of a film . \n0 na\xefve .\n")
    msg = _error(_read, [p], first_token="polarity")        # UTF-8 by default: the byte is named
    assert "rt-polarity.all line 1" in msg and "UTF-8" in msg and "--encoding latin-1" in msg
    rows = _read([p], first_token="polarity", encoding="latin-1")
    assert rows == [("a caf\u00e9 of a film .", {"polarity": "1"}), ("na\u00efve .", {"polarity": "0"})]


def test_first_token_a_line_without_its_label(tmp_path):
    p = tmp_path / "mr.txt"
    p.write_text("1 fine film .\nsimplistic\n", encoding="utf-8")
    msg = _error(_read, [p], first_token="polarity")
    assert "mr.txt line 2" in msg and "--label-first-token polarity" in msg


def test_first_token_a_label_without_its_sentence_is_a_blank_row(tmp_path):
    """SentEval's CR and MPQA hold a few '0 ' lines: a label seen before, no sentence."""
    p = tmp_path / "custrev.all"
    p.write_text("0 too loud .\n1 fine .\n0 \n1 good .\n", encoding="utf-8")
    assert _read([p], first_token="polarity") == [("too loud .", {"polarity": "0"}), ("fine .", {"polarity": "1"}),
                                                  ("good .", {"polarity": "1"})]
    q = tmp_path / "first.all"
    q.write_text("0 \n0 too loud .\n", encoding="utf-8")        # no earlier line: not known as a label
    assert "first.all line 1" in _error(_read, [q], first_token="polarity")


def test_first_token_on_unlabelled_text_is_refused_by_the_vocabulary(tmp_path):
    p = tmp_path / "plain.txt"
    p.write_text("".join(f"word{i} and more\n" for i in range(MAX_VALUES + 1)), encoding="utf-8")
    rows = _read([p], first_token="polarity")
    msg = _error(LabelVocab.build, [r for _, r in rows], ["polarity"], str(p))
    assert "'polarity'" in msg and "101 values" in msg


# --- one file per value: PATH@NAME=VALUE ----------------------------------------------------

def test_one_file_per_label_suffix(tmp_path):
    (tmp_path / "train.0").write_text("the food was cold .\nrude staff .\n", encoding="utf-8")
    (tmp_path / "train.1").write_text("great pizza !\n", encoding="utf-8")
    (tmp_path / "extra.txt").write_text("we went there .\n", encoding="utf-8")
    sources = [f"{tmp_path}/train.0@sentiment=negative", f"{tmp_path}/train.1@sentiment=positive",
               f"{tmp_path}/extra.txt"]
    rows = list(read_labelled(sources))
    assert rows == [("the food was cold .", {"sentiment": "negative"}), ("rude staff .", {"sentiment": "negative"}),
                    ("great pizza !", {"sentiment": "positive"}), ("we went there .", {"sentiment": None})]
    vocab = LabelVocab.build([r for _, r in rows], attributes_of(sources, LabelOptions()), "train")
    assert vocab.values == {"sentiment": ["negative", "positive"]}
    assert label_array([r for _, r in rows], vocab).tolist() == [[0], [0], [1], [UNLABELLED]]


def test_split_source_shapes(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("x\n", encoding="utf-8")
    assert split_source(f"{f}@s=neg@topic=food") == (str(f), {"s": "neg", "topic": "food"})
    assert split_source(str(f)) == (str(f), {})
    odd = tmp_path / "b@s=neg"          # a file really named so is read as it is
    odd.write_text("y\n", encoding="utf-8")
    assert split_source(str(odd)) == (str(odd), {})
    assert split_source("no/such@file") == ("no/such@file", {})      # not the shape: a plain path
    assert "b.txt: no such file" in _error(split_source, f"{tmp_path}/b.txt@s=neg")
    assert "given twice" in _error(split_source, f"{f}@s=neg@s=pos")


def test_suffix_that_contradicts_the_row(tmp_path):
    p = _jsonl(tmp_path / "a.jsonl", [{"text": "x", "s": "pos"}, {"text": "y", "s": "neg"}])
    msg = _error(_read, [f"{p}@s=pos"], fields=("s",))
    assert "a.jsonl line 2" in msg and "@s=pos" in msg


def test_a_declared_value_with_no_example(tmp_path):
    (tmp_path / "train.0").write_text("bad .\nworse .\n", encoding="utf-8")
    (tmp_path / "train.1").write_text("\n", encoding="utf-8")
    (tmp_path / "train.2").write_text("meh .\n", encoding="utf-8")
    sources = [f"{tmp_path}/train.0@s=neg", f"{tmp_path}/train.1@s=pos", f"{tmp_path}/train.2@s=mid"]
    assert declared_values(sources) == {"s": {"neg", "pos", "mid"}}
    msg = _error(load_labelled, sources)
    assert "no example of s=pos" in msg and "train.1@s=pos" in msg


def test_load_labelled_gives_texts_array_and_vocab(tmp_path):
    (tmp_path / "t.0").write_text("bad .\nworse .\n", encoding="utf-8")
    (tmp_path / "t.1").write_text("good .\n", encoding="utf-8")
    (tmp_path / "v.jsonl").write_text('{"text": "fine .", "s": "pos"}\n{"text": "so so ."}\n', encoding="utf-8")
    texts, arr, vocab = load_labelled([f"{tmp_path}/t.1@s=pos", f"{tmp_path}/t.0@s=neg"])
    assert texts == ["good .", "bad .", "worse ."] and arr.tolist() == [[1], [0], [0]]
    # validation data: read with the training vocabulary, whose classes it need not all have
    texts, arr, same = load_labelled([str(tmp_path / "v.jsonl")], LabelOptions(fields=("s",)), vocab=vocab)
    assert same is vocab and arr.tolist() == [[1], [UNLABELLED]]
    # training data given a vocabulary beforehand (a checkpoint's) must have every class
    msg = _error(load_labelled, [f"{tmp_path}/t.0@s=neg"], vocab=vocab, training=True)
    assert "no example of s=pos" in msg


# --- the vocabulary -------------------------------------------------------------------------

def test_vocab_order_index_and_array():
    rows = [{"stars": "10", "s": "pos"}, {"stars": "2", "s": None}, {"stars": "1", "s": "neg"},
            {"stars": None, "s": "pos"}]
    vocab = LabelVocab.build(rows, ["stars", "s"], "train")
    assert vocab.values == {"stars": ["1", "2", "10"], "s": ["neg", "pos"]}    # numeric, then sorted
    assert vocab.index("stars", "10") == 2 and vocab.value("s", 1) == "pos"
    arr = label_array(rows, vocab)
    assert arr.dtype == np.int64 and arr.shape == (4, 2)
    assert arr.tolist() == [[2, 1], [1, -1], [0, 0], [-1, 1]]
    # the same rows in another order give the same indices
    assert LabelVocab.build(rows[::-1], ["stars", "s"], "train") == vocab


def test_vocab_unknown_value_and_attribute_at_generation():
    vocab = LabelVocab({"sentiment": ["negative", "positive"]})
    assert _error(vocab.index, "sentiment", "neutral") == \
        "sentiment has no value 'neutral'; known values: negative, positive"
    assert "no label attribute 'tense'; this model knows: sentiment" == _error(vocab.index, "tense", "past")


def test_vocab_refuses_an_attribute_without_values_or_with_one():
    assert "no row has a value for the label 's'" in _error(LabelVocab.build, [{"s": None}], ["s"], "train.jsonl")
    msg = _error(LabelVocab.build, [{"s": "a"}, {"s": "a"}], ["s"], "train.jsonl")
    assert "train.jsonl" in msg and "one value only" in msg


def test_vocab_round_trips_through_a_safe_checkpoint(tmp_path):
    vocab = LabelVocab({"tense": ["past", "present", "future"], "mood": ["statement", "yes-no"]})
    buf = io.BytesIO()
    torch.save({"labels": vocab.to_dict()}, buf)
    buf.seek(0)
    back = LabelVocab.from_dict(torch.load(buf, weights_only=True)["labels"])
    assert back == vocab and back.attributes == ["tense", "mood"]
    assert back.index("tense", "future") == 2
    for bad in ({}, {"attributes": [["a", [1, 2]]]}, {"attributes": [["a", ["x"]], ["a", ["y"]]]}, None):
        assert "label vocabulary is malformed" in _error(LabelVocab.from_dict, bad, "best.pt")


def test_check_examples():
    vocab = LabelVocab({"s": ["neg", "pos"]})
    vocab.check_examples([{"s": "neg"}, {"s": "pos"}], "train")
    assert "train: no example of s=pos" in _error(vocab.check_examples, [{"s": "neg"}, {"s": None}], "train")


def test_reading_with_a_vocabulary_refuses_unknown_values(tmp_path):
    vocab = LabelVocab({"s": ["neg", "pos"]})
    p = _jsonl(tmp_path / "valid.jsonl", [{"text": "x", "s": "pos"}, {"text": "y", "s": "neutral"}])
    with pytest.raises(SentvaeError, match=r"valid.jsonl line 2: s 'neutral' is not one of the values in "
                                           r"training \(neg, pos\)"):
        list(read_labelled([p], LabelOptions(fields=("s",)), vocab=vocab))


# --- --label NAME=VALUE ---------------------------------------------------------------------

def test_label_specs():
    assert parse_label("sentiment=positive") == ("sentiment", "positive")
    assert parse_label("stars=very good") == ("stars", "very good")
    for bad in ("sentiment", "=positive", "sentiment=", "senti ment=x", "1x=y"):
        assert _error(parse_label, bad).startswith(f"--label {bad!r}: expected NAME=VALUE")
    vocab = LabelVocab({"s": ["neg", "pos"], "t": ["past", "present"]})
    assert label_request(["t=present", "s=neg"], vocab) == {"t": 1, "s": 0}
    assert "s is set twice" in _error(label_request, ["s=neg", "s=pos"], vocab)
    assert "known values: neg, pos" in _error(label_request, ["s=neutral"], vocab)


def test_attributes_order_and_duplicates(tmp_path):
    (tmp_path / "y.0").write_text("x\n", encoding="utf-8")
    opts = LabelOptions(fields=("tense", "mood"), first_token="polarity")
    assert attributes_of([f"{tmp_path}/y.0@sentiment=neg"], opts) == ["tense", "mood", "polarity", "sentiment"]
    assert "given twice" in _error(attributes_of, [], LabelOptions(fields=("a", "a")))


def test_the_bundled_corpus_reads_with_its_four_labels():
    from pathlib import Path
    valid = str(Path(__file__).resolve().parent.parent / "data" / "valid.jsonl")
    opts = LabelOptions(fields=("tense", "aspect", "mood", "negation"))
    rows = list(read_labelled([valid], opts))
    vocab = LabelVocab.build([r for _, r in rows], list(opts.fields), valid)
    assert vocab.values["mood"] == ["statement", "wh-question", "yes-no"]
    assert label_array([r for _, r in rows], vocab).min() >= 0 and len(rows) == 1000
