"""The label vocabulary: attribute -> its ordered values, a value's index its place in that list.

It lives in the checkpoint (to_dict / from_dict: plain data that torch.load(weights_only=True)
reads), turns --label NAME=VALUE into indices with one-line errors naming the attribute and its
known values, and gives the (N, A) int64 array a batch carries, UNLABELLED (-1) where a row has
no value for an attribute. Reading labelled files: sentvae/labels.py.

Imports neither torch nor sentvae.data (`sentvae --help` stays fast).
"""

import re
from collections.abc import Iterable

import numpy as np

from sentvae.errors import SentvaeError

UNLABELLED = -1
# More values than this is not a label but text read as one (a file without labels read with
# --label-first-token, a --label-field holding free text): refused rather than learnt.
MAX_VALUES = 100
NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_.-]*"     # an attribute's name (also in a PATH@NAME=VALUE suffix)
_SPEC = re.compile(rf"^(?P<name>{NAME_PATTERN})=(?P<value>\S(?:.*\S)?)$")


class LabelVocab:
    """Attribute -> the ordered list of its values; a value's index is its place in that list."""

    def __init__(self, values: dict[str, list[str]]):
        self.values = {attr: list(vals) for attr, vals in values.items()}
        self._index = {attr: {v: i for i, v in enumerate(vals)} for attr, vals in self.values.items()}

    @property
    def attributes(self) -> list[str]:
        return list(self.values)

    def __len__(self) -> int:
        return len(self.values)

    def __eq__(self, other) -> bool:
        return isinstance(other, LabelVocab) and self.values == other.values

    def __repr__(self) -> str:
        return f"LabelVocab({self.values!r})"

    def index(self, attribute: str, value: str) -> int:
        """The index of a value; an unknown attribute or value is the user's error (one line)."""
        if attribute not in self._index:
            known = ", ".join(self.values) or "none"
            raise SentvaeError(f"no label attribute {attribute!r}; this model knows: {known}")
        i = self._index[attribute].get(value)
        if i is None:
            raise SentvaeError(f"{attribute} has no value {value!r}; known values: "
                               f"{', '.join(self.values[attribute])}")
        return i

    def knows(self, attribute: str, value: str) -> bool:
        return value in self._index.get(attribute, {})

    def value(self, attribute: str, index: int) -> str:
        return self.values[attribute][index]

    def to_dict(self) -> dict:
        """Plain data for the checkpoint (torch.load(weights_only=True) reads it back)."""
        return {"attributes": [[attr, list(vals)] for attr, vals in self.values.items()]}

    @classmethod
    def from_dict(cls, d, where: str = "checkpoint") -> "LabelVocab":
        try:
            pairs = d["attributes"]
            values = {}
            for attr, vals in pairs:
                if not isinstance(attr, str) or not all(isinstance(v, str) for v in vals) or attr in values:
                    raise TypeError
                values[attr] = list(vals)
        except (KeyError, TypeError, ValueError):
            raise SentvaeError(f"{where}: its label vocabulary is malformed") from None
        return cls(values)

    @classmethod
    def build(cls, labels: Iterable[dict], attributes: list[str], source: str,
              declared: dict[str, set[str]] | None = None) -> "LabelVocab":
        """The values each attribute takes in the training rows, in sorted order (numerically
        where all are integers: "2" before "10"), so that the same data in another order gives
        the same indices. Refuses an attribute no row has a value for, one with a single value
        (nothing to tell apart), and a declared value (an @NAME=VALUE file) with no example."""
        counts: dict[str, dict[str, int]] = {a: {} for a in attributes}
        for row in labels:
            for attr in attributes:
                v = row.get(attr)
                if v is not None:
                    counts[attr][v] = counts[attr].get(v, 0) + 1
        values = {}
        for attr in attributes:
            seen = counts[attr]
            missing = sorted((declared or {}).get(attr, set()) - set(seen))
            if missing:
                raise SentvaeError(f"{source}: no example of {attr}={missing[0]} "
                                   "(its file has no sentence)")
            if not seen:
                raise SentvaeError(f"{source}: no row has a value for the label {attr!r}")
            if len(seen) > MAX_VALUES:
                some = ", ".join(sorted(seen)[:3])
                raise SentvaeError(f"{source}: the label {attr!r} takes {len(seen):,} values ({some}, ...), "
                                   f"more than {MAX_VALUES}: is it really a label (does every line start "
                                   "with one)?")
            if len(seen) == 1:
                raise SentvaeError(f"{source}: the label {attr!r} takes one value only "
                                   f"({next(iter(seen))!r}); a label needs at least two")
            values[attr] = sorted(seen, key=_value_order)
        return cls(values)

    def check_examples(self, labels: Iterable[dict], source: str) -> None:
        """Every value of the vocabulary must have an example in these rows (training data
        read with a vocabulary given beforehand, e.g. from a checkpoint)."""
        seen = {attr: set() for attr in self.values}
        for row in labels:
            for attr in self.values:
                if row.get(attr) is not None:
                    seen[attr].add(row[attr])
        for attr, vals in self.values.items():
            for v in vals:
                if v not in seen[attr]:
                    raise SentvaeError(f"{source}: no example of {attr}={v}, a class of the label vocabulary")

def _value_order(v: str):
    return (0, int(v), "") if re.fullmatch(r"-?\d+", v) else (1, 0, v)

def parse_label(spec: str, option: str = "--label") -> tuple[str, str]:
    """'sentiment=positive' -> ('sentiment', 'positive')."""
    m = _SPEC.match(spec.strip())
    if not m:
        raise SentvaeError(f"{option} {spec!r}: expected NAME=VALUE, e.g. sentiment=positive")
    return m["name"], m["value"]


def label_request(specs: list[str], vocab: LabelVocab, option: str = "--label") -> dict[str, int]:
    """--label NAME=VALUE (repeatable) -> {attribute: value index}, checked against the vocabulary."""
    out = {}
    for spec in specs:
        attr, value = parse_label(spec, option)
        if attr in out:
            raise SentvaeError(f"{option} {spec!r}: {attr} is set twice")
        out[attr] = vocab.index(attr, value)
    return out

def label_array(labels: list[dict], vocab: LabelVocab) -> np.ndarray:
    """(N, A) int64 value indices in the vocabulary's attribute order, UNLABELLED (-1) for None."""
    out = np.full((len(labels), len(vocab)), UNLABELLED, dtype=np.int64)   # (N, A)
    for j, attr in enumerate(vocab.attributes):
        index = vocab._index[attr]
        for i, row in enumerate(labels):
            v = row.get(attr)
            if v is not None:
                if v not in index:
                    raise SentvaeError(f"{attr} has no value {v!r}; known values: "
                                       f"{', '.join(vocab.values[attr])}")
                out[i, j] = index[v]
    return out
