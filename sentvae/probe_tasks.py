"""Reading a probing task: labelled sentences for `sentvae probe` (the probes: sentvae/probe.py).

A task source is one of (sentvae/labels.py reads them all):
- a text file of `label sentence` lines (SentEval's format: MR, CR, MPQA, SST);
- a text file of plain sentences that all carry one label, named by a suffix
  `PATH@NAME=VALUE` (yelp's `train.0@sentiment=negative`): one file per label;
- a .jsonl/.csv file whose `--label-field` holds each row's label.
Several sources make one set (`--task yelp/train.0@s=neg --task yelp/train.1@s=pos`). Every
sentence must have a label (probing learns from labelled rows only); a value with no place in
the training classes, in a dev or test set, is refused with its file.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sentvae.errors import SentvaeError
from sentvae.label_vocab import MAX_VALUES
from sentvae.labels import LabelOptions, read_labelled, split_source

FIRST_TOKEN = "label"       # the attribute name of `label sentence` lines (never shown to the user)


@dataclass
class TaskSet:
    texts: list[str]
    labels: list[str]         # each sentence's label, as written
    source: str               # the sources, for messages and the report


def read_set(specs: list[str], option: str, label_field: str | None = None, encoding: str = "utf-8",
             encoding_errors: str = "strict") -> TaskSet:
    """The labelled sentences of the sources given to `option` (--task, --dev, --test)."""
    texts, labels = [], []
    for spec in specs:
        path, fixed = split_source(spec)
        if len(fixed) > 1:
            raise SentvaeError(f"{option} {spec}: one @NAME=VALUE label per file, not {len(fixed)}")
        structured = Path(path).suffix.lower() in (".jsonl", ".json", ".csv")
        if fixed:
            options = LabelOptions(encoding=encoding, encoding_errors=encoding_errors)
        elif structured:
            if label_field is None:
                raise SentvaeError(f"{option} {spec}: name the field that holds the label with --label-field")
            options = LabelOptions(fields=(label_field,), encoding=encoding, encoding_errors=encoding_errors)
        else:
            options = LabelOptions(first_token=FIRST_TOKEN, encoding=encoding, encoding_errors=encoding_errors)
        n = 0
        for n, (text, row) in enumerate(read_labelled([spec], options), 1):
            value = next(iter(fixed.values())) if fixed else row[label_field if structured else FIRST_TOKEN]
            if value is None:
                raise SentvaeError(f"{path}: sentence {n} ({text[:40]!r}) has no label in "
                                   f"{label_field!r} (--label-field); probing needs every row labelled")
            texts.append(text)
            labels.append(value)
        if n == 0:
            raise SentvaeError(f"{option} {spec}: no labelled sentence (the file is empty or blank)")
    return TaskSet(texts, labels, ", ".join(specs))


def classes_of(train: TaskSet, option: str = "--task") -> list[str]:
    """The training set's classes, sorted: at least two, and not so many that the labels must be
    text read as labels (a file of plain sentences read as `label sentence` lines)."""
    classes = sorted(set(train.labels))
    if len(classes) < 2:
        raise SentvaeError(f"{option} {train.source}: every sentence has the label {classes[0]!r}; "
                           "a probe needs at least two classes")
    if len(classes) > MAX_VALUES:
        raise SentvaeError(f"{option} {train.source}: {len(classes):,} different labels (more than "
                           f"{MAX_VALUES}); are they 'label sentence' lines? A file of plain sentences "
                           "takes its label from a suffix, FILE@label=VALUE")
    return classes


def encode_labels(task: TaskSet, classes: list[str], option: str) -> np.ndarray:
    """Labels -> (N,) int64 indices into `classes`; a label training never saw: one line."""
    index = {c: i for i, c in enumerate(classes)}
    for text, label in zip(task.texts, task.labels):
        if label not in index:
            raise SentvaeError(f"{option} {task.source}: label {label!r} ({text[:40]!r}) is not one of "
                               f"the training classes ({', '.join(classes)})")
    return np.array([index[label] for label in task.labels], dtype=np.int64)
