"""Labels: reading labelled sentences (the vocabulary of their values: sentvae/label_vocab.py).

A label is a named attribute ("sentiment", "tense") with a value from a finite set ("negative",
"positive"). A sentence may carry several attributes, or none: a row without a value for an
attribute is unlabelled for it (semi-supervised training learns from it all the same).

Three ways to give labels (each --data source may use its own):
- .jsonl / .csv rows, `--label-field NAME` (repeatable): the field NAME holds the value; a row
  where it is missing, null or "" is unlabelled for NAME.
- "label sentence" lines (SentEval's format), `--label-first-token NAME`: the first whitespace
  token of each line of a text file is NAME's value. `--encoding latin-1` reads MR's bytes. A
  line holding only a value earlier lines used as a label (SentEval's CR and MPQA have a few) is
  a label without its sentence, skipped as a blank .jsonl row is; any other lone word is refused.
- one file per value, a path suffix `@NAME=VALUE`: `--data yelp/train.0@sentiment=negative`.
  The suffix is read only when it has that shape and the path without it exists (a file
  really named `x@a=b` is read as it is). Several suffixes stack: `f.txt@a=x@b=y`.

read_labelled() yields (text, {attribute: value or None}) for every sentence of the sources;
load_labelled() gives, in one call, the texts, their (N, A) int64 value indices (UNLABELLED, -1,
where a row has no value) and the LabelVocab, built from training rows or checked against one.

This module imports neither torch nor sentvae.data at import time (`sentvae --help` stays fast).
"""

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sentvae.errors import SentvaeError
from sentvae.label_vocab import NAME_PATTERN, LabelVocab, label_array

_SUFFIX = re.compile(rf"^(?P<path>.+)@(?P<name>{NAME_PATTERN})=(?P<value>[^@=/\\\s]+)$")


@dataclass(frozen=True)
class LabelOptions:
    fields: tuple[str, ...] = ()         # --label-field (.jsonl/.csv), each an attribute
    first_token: str | None = None       # --label-first-token NAME (text files: "VALUE sentence")
    text_field: str = "text"             # --text-field
    encoding: str = "utf-8"              # --encoding: latin-1 for MR (rt-polarity.all)
    encoding_errors: str = "strict"      # --encoding-errors


def split_source(spec: str) -> tuple[str, dict[str, str]]:
    """'yelp/train.0@sentiment=negative' -> ('yelp/train.0', {'sentiment': 'negative'}).

    A spec that names an existing file, or does not end in @NAME=VALUE, is a path as it is."""
    fixed: dict[str, str] = {}
    path = spec
    if spec == "-" or spec.startswith("hf:"):
        return spec, fixed
    # peel suffixes off the right while what is left is not a file (a file named x@a=b is one)
    while (m := _SUFFIX.match(path)) and not Path(path).exists():
        if m["name"] in fixed:
            raise SentvaeError(f"--data {spec}: @{m['name']}= is given twice")
        fixed[m["name"]] = m["value"]
        path = m["path"]
    if fixed and not Path(path).exists():
        raise SentvaeError(f"--data {spec}: {path}: no such file")
    return path, dict(reversed(fixed.items()))


def attributes_of(sources: list[str], options: LabelOptions) -> list[str]:
    """The attributes, in order: --label-field, --label-first-token, then the @NAME suffixes."""
    out = list(dict.fromkeys(options.fields))
    if len(out) != len(options.fields):
        raise SentvaeError(f"--label-field: a field is given twice ({', '.join(options.fields)})")
    if options.first_token and options.first_token not in out:
        out.append(options.first_token)
    for spec in sources:
        for name in split_source(spec)[1]:
            if name not in out:
                out.append(name)
    return out


def declared_values(sources: list[str]) -> dict[str, set[str]]:
    """The values the @NAME=VALUE suffixes promise: each must have an example."""
    out: dict[str, set[str]] = {}
    for spec in sources:
        for name, value in split_source(spec)[1].items():
            out.setdefault(name, set()).add(value)
    return out


def load_labelled(sources: list[str], options: LabelOptions = LabelOptions(), vocab: LabelVocab | None = None,
                  training: bool = False) -> tuple[list[str], np.ndarray, LabelVocab]:
    """Texts, their (N, A) label indices and the vocabulary, in one call.

    Without a vocabulary (training data) it is built from these rows; with one (validation or
    test data, or training data for a checkpoint's vocabulary with training=True) values it
    does not know are refused, and with training=True every class must have an example."""
    texts, labels = [], []
    for text, row in read_labelled(sources, options, vocab):
        texts.append(text)
        labels.append(row)
    where = ", ".join(sources)
    if vocab is None:
        vocab = LabelVocab.build(labels, attributes_of(sources, options), where, declared_values(sources))
    elif training:
        vocab.check_examples(labels, where)
    return texts, label_array(labels, vocab), vocab


def read_labelled(sources: list[str], options: LabelOptions = LabelOptions(),
                  vocab: LabelVocab | None = None) -> Iterator[tuple[str, dict]]:
    """(text, {attribute: value or None}) for every sentence of the sources, in order.

    With a vocabulary (validation or test data read for a trained model) a value it does not
    know stops the reading with the file and line; without one, the end of the reading checks
    that every attribute got a value somewhere (a --label-field no row has is a typo)."""
    attributes = vocab.attributes if vocab is not None else attributes_of(sources, options)
    labelled = {a: 0 for a in attributes}
    fields_seen: set[str] = set()
    paths = []
    for spec in sources:
        path, fixed = split_source(spec)
        paths.append(path)
        for name, lineno, text, row in _rows(path, options, fields_seen):
            labels = dict.fromkeys(attributes)
            for attr, value in row.items():
                if attr in labels:
                    labels[attr] = value
            for attr, value in fixed.items():
                if attr not in labels:
                    continue
                if labels[attr] is not None and labels[attr] != value:
                    raise SentvaeError(f"{name} line {lineno}: {attr} is {labels[attr]!r} in the row "
                                       f"but @{attr}={value} on the file")
                labels[attr] = value
            for attr, value in labels.items():
                if value is not None:
                    labelled[attr] += 1
                    if vocab is not None and not vocab.knows(attr, value):
                        raise SentvaeError(f"{name} line {lineno}: {attr} {value!r} is not one of the "
                                           f"values in training ({', '.join(vocab.values[attr])})")
            yield text, labels
    if vocab is None:
        for attr, n in labelled.items():
            if n == 0 and attr in options.fields:
                seen = (f" (fields seen: {', '.join(sorted(fields_seen))})" if fields_seen else
                        " (text files have no fields: --label-first-token NAME reads 'label sentence' lines)")
                raise SentvaeError(f"--label-field {attr}: no row of {', '.join(paths)} has it{seen}")


def _label_value(value, name: str, lineno: int, field: str):
    """A row's value as a label string; None for missing, null or ""."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value.strip() or None
    raise SentvaeError(f"{name} line {lineno}: field {field!r} (--label-field) is a "
                       f"{type(value).__name__}, expected a string or integer label")


def _rows(path: str, options: LabelOptions, fields_seen: set[str]):
    """(name, line number, text, {attribute: value}) of one source."""
    name = "<stdin>" if path == "-" else path
    if path.startswith("hf:"):
        raise SentvaeError(f"--data {path}: labels are read from local .jsonl, .csv or text files only")
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".json"):
        records = _json_records(path, options, name)
    elif suffix == ".csv":
        records = _csv_records(path, options, name)
    else:
        yield from _text_rows(path, options, name)
        return
    tf = options.text_field
    for lineno, row in records:
        fields_seen.update(row)
        if tf not in row:
            raise SentvaeError(f"{name} line {lineno}: no field {tf!r} (--text-field)")
        text = row[tf]
        if not isinstance(text, str):
            raise SentvaeError(f"{name} line {lineno}: no string field {tf!r} (--text-field)")
        if not text.strip():
            continue
        labels = {f: _label_value(row.get(f), name, lineno, f) for f in options.fields}
        yield name, lineno, text.strip(), labels


def _json_records(path, options, name):
    # sentvae.data.iter_records refuses a row without a field it asks for; here a missing
    # label field is an unlabelled row, so the rows are read whole
    for lineno, line in _lines(path, options):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise SentvaeError(f"{name} line {lineno}: not JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise SentvaeError(f"{name} line {lineno}: not a JSON object")
        yield lineno, row


def _csv_records(path, options, name):
    import csv

    reader = csv.DictReader(text for _, text in _lines(path, options, keep_blank=True))
    if reader.fieldnames is None or options.text_field not in reader.fieldnames:
        raise SentvaeError(f"{name}: no column {options.text_field!r} (--text-field); "
                           f"columns: {', '.join(reader.fieldnames or [])}")
    for lineno, row in enumerate(reader, 2):
        yield lineno, {k: v for k, v in row.items() if k is not None}


def _text_rows(path, options, name):
    attr = options.first_token
    seen = set()                         # the values earlier lines gave
    for lineno, line in _lines(path, options):
        if attr is None:
            yield name, lineno, line, {}
            continue
        parts = line.split(None, 1)
        if len(parts) < 2:
            # a label and no sentence (SentEval's CR has 4 such lines, MPQA 3): a blank row. Only a
            # value earlier lines used is read so: a lone word is a sentence that lost its label.
            if parts[0] in seen:
                continue
            raise SentvaeError(f"{name} line {lineno}: expected 'LABEL sentence' (--label-first-token "
                               f"{attr}), found a single token {parts[0]!r}")
        seen.add(parts[0])
        yield name, lineno, parts[1].strip(), {attr: parts[0]}


def _lines(path, options, keep_blank=False):
    """(line number, stripped text) in the encoding asked for, through sentvae.data's reader."""
    import codecs
    try:
        encoding = codecs.lookup(options.encoding).name          # "utf-8" for utf8, UTF-8, utf_8
    except LookupError:
        raise SentvaeError(f"--encoding {options.encoding}: not an encoding Python knows") from None
    from sentvae.data import iter_lines
    try:
        yield from iter_lines(path, options.encoding_errors, keep_blank,
                              "utf-8" if encoding == "utf-8" else options.encoding)   # messages say it as given
    except SentvaeError as e:
        if "not valid UTF-8" not in str(e):
            raise
        # labelled sets come in older encodings (MR is Latin-1): name the option that reads them
        raise SentvaeError(f"{str(e).split('; pass')[0]}; pass --encoding latin-1 if it is Latin-1 "
                           "(as MR is), or --encoding-errors replace") from None
