"""The labels c that generation decodes with, from what the user asked for (sentvae/labelled.py has
the model's side).

A labelled model's decoder reads (z, c). `--label NAME=VALUE` (repeatable; in Python
label={"NAME": "VALUE"} or ["NAME=VALUE", ...]) sets attributes; the others come from
- the prior p(c) (seeded; given the asked ones: sentvae/label_prior.py) where there is no sentence to read them from:
  `sample`, and `decode` of a code that carries none;
- q(c|x)'s most likely value where there is one: `reconstruct` (so without --label it
  reconstructs; with one it transfers: z from the sentence, c set, and --label-strength S moves the
  set attributes' embeddings S times the way from the sentence's own value: `pushed`; `sample
  --label-strength` from the average under p(c)), `encode` (it writes the
  labels, so `encode | decode` = `reconstruct`, --label-strength included: `decode` moves a set
  attribute from the line's own value), and the two ends of `interpolate`, whose path
  moves the labels' embeddings from one end's to the other's as it moves z (a held --label stays;
  with --label-strength S it is moved S times the way from the path's own mix).
An unknown attribute or value, or --label for a model without labels: one line (exit 2).
"""

import torch
import torch.nn.functional as F

from sentvae.errors import SentvaeError
from sentvae.label_vocab import LabelVocab, parse_label
from sentvae.labelled import one_hot


def request(label, vocab: LabelVocab | None, source: str = "the model") -> dict[str, int]:
    """--label specs (a dict NAME -> VALUE, a list of "NAME=VALUE", one such string, or None) ->
    {attribute: value index}, checked against the model's vocabulary."""
    if label is None or (isinstance(label, (list, tuple, dict)) and not label):
        return {}
    if vocab is None:
        raise SentvaeError(f"--label: {source} has no labels (train it with --label-field, "
                           "--label-first-token or PATH@NAME=VALUE data)")
    if isinstance(label, str):
        label = [label]
    if isinstance(label, dict):
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in label.items()):
            raise SentvaeError(f"--label: expected names and values as strings, not {label!r}")
        label = [f"{k}={v}" for k, v in label.items()]
    if not isinstance(label, (list, tuple)) or not all(isinstance(s, str) for s in label):
        raise SentvaeError(f"--label: expected NAME=VALUE strings or a dict, not {label!r}")
    out = {}
    for spec in label:
        attr, value = parse_label(spec)
        if attr in out:
            raise SentvaeError(f"--label {spec}: {attr} is set twice")
        try:
            out[attr] = vocab.index(attr, value)
        except SentvaeError as e:
            raise SentvaeError(f"--label {spec}: {e}") from None
    return out


def from_prior(vocab: LabelVocab, prior, asked: dict[str, int], n: int, generator: torch.Generator) -> torch.Tensor:
    """(n, A) value indices: the asked ones, the others drawn from p(c_others | the asked), `prior` the
    model's LabelPrior, by `generator`."""
    return prior.sample(known(vocab, asked, n), generator)


def known(vocab: LabelVocab, asked: dict[str, int], n: int) -> torch.Tensor:
    """(n, A) the asked values, -1 for the attributes left to draw."""
    return torch.tensor([[asked.get(attr, -1) for attr in vocab.attributes]] * n, dtype=torch.long).view(n, len(vocab))


def from_classifier(vocab: LabelVocab, asked: dict[str, int], log_probs: list[torch.Tensor]) -> torch.Tensor:
    """(N, A) value indices: the asked ones, the others q(c|x)'s most likely value."""
    cols = [torch.full_like(lp[:, 0], asked[attr], dtype=torch.long) if attr in asked else lp.argmax(dim=1)
            for attr, lp in zip(vocab.attributes, log_probs)]
    return torch.stack(cols, dim=1)


def check_strength(strength: float, asked: dict[str, int], vocab: LabelVocab | None, source: str = "the model") -> None:
    """--label-strength moves the attributes --label sets: without one it has nothing to move."""
    if strength != 1.0 and vocab is None:
        raise SentvaeError(f"--label-strength: {source} has no labels (train it with --label-field, "
                           "--label-first-token or PATH@NAME=VALUE data)")
    if strength != 1.0 and not asked:
        raise SentvaeError("--label-strength: give --label NAME=VALUE (the attributes it moves)")


def pushed(vocab: LabelVocab, asked: dict[str, int], own: torch.Tensor | list[torch.Tensor], strength: float,
           reference: str = "own", prior=None) -> list[torch.Tensor]:
    """Labels at a strength S (--label-strength): A tensors (N, V_a), weights on each attribute's
    value embeddings. An asked attribute gets r + S (e(asked) - r), the reference r being
    - "own": e(own), the value `own` (N, A) gives (reconstruct: q(c|x)'s most likely value), or the
      weights `own` holds (A rows (N, V_a): interpolate's path between its two ends' values), so
      S = 0 reconstructs, 1 transfers, and a sentence already of the asked value keeps it at any S;
    - "prior": the average embedding under p(c_a) (`prior`, the model's LabelPrior: sample), so S = 0
      gives the decoder no word on the attribute and 1 asks for the value;
    above 1, past the asked value, away from the reference. The other attributes keep `own`'s
    values. S = 1 is the asked value itself. The rows are not probabilities above 1 (a negative
    weight): LabelCode reads them as weights on the value embeddings."""
    if reference not in ("own", "prior") or (reference == "prior" and prior is None):
        raise ValueError(f"pushed: reference must be 'own' or 'prior' (with the prior), not {reference!r}")
    out = []
    rows = own if isinstance(own, list) else one_hot(own, [len(vocab.values[attr]) for attr in vocab.attributes])
    for a, (attr, row) in enumerate(zip(vocab.attributes, rows)):          # row: (N, V_a)
        if attr in asked:
            ref = prior.marginal(a).expand_as(row) if reference == "prior" else row
            target = torch.zeros_like(row)
            target[:, asked[attr]] = 1.0
            row = ref + strength * (target - ref)
        out.append(row)
    return out


def from_rows(vocab: LabelVocab, prior, asked: dict[str, int], rows: list, generator: torch.Generator) -> torch.Tensor:
    """(N, A) value indices for codes read from JSON lines, rows: (where, the line's "label" or None).
    --label wins, then the line's own {NAME: VALUE} (as `encode` writes it), then p(c | those)."""
    drawn = known(vocab, asked, len(rows))
    for i, (where, row) in enumerate(rows):
        if row is None:
            continue
        if not isinstance(row, dict) or not all(isinstance(v, str) for v in row.values()):
            raise SentvaeError(f"{where}: \"label\" must be an object of NAME: VALUE strings, not {row!r}")
        for attr, value in row.items():
            try:
                index = vocab.index(attr, value)
            except SentvaeError as e:
                raise SentvaeError(f"{where}: {e}") from None
            if attr not in asked:
                drawn[i, vocab.attributes.index(attr)] = index
    return prior.sample(drawn, generator)


def path(vocab: LabelVocab, ends: torch.Tensor, t: torch.Tensor) -> list[torch.Tensor]:
    """Labels along an interpolation: A probability tensors (S, V_a) moving from the value of end 0
    to that of end 1 (ends (2, A) value indices) as t goes from 0 to 1 (`pushed` then holds the
    attributes --label asks for, at --label-strength)."""
    out = []
    for a, attr in enumerate(vocab.attributes):
        size = len(vocab.values[attr])
        first, last = F.one_hot(ends[:, a], size).float().to(t.device)       # (V_a,) each
        out.append((1 - t).unsqueeze(1) * first + t.unsqueeze(1) * last)
    return out


def described(vocab: LabelVocab, log_probs: list[torch.Tensor]) -> list[dict]:
    """q(c|x) of each sentence as {"label": {NAME: VALUE}, "probabilities": {NAME: {VALUE: p}}}."""
    probs = [lp.exp().cpu().tolist() for lp in log_probs]
    out = []
    for i in range(len(probs[0]) if probs else 0):
        label, table = {}, {}
        for attr, p in zip(vocab.attributes, probs):
            row = p[i]
            label[attr] = vocab.values[attr][max(range(len(row)), key=row.__getitem__)]
            table[attr] = dict(zip(vocab.values[attr], row))
        out.append({"label": label, "probabilities": table})
    return out
