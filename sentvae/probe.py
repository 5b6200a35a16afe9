"""Representation probing: how much of a label a fixed sentence representation makes linearly
readable, beside baselines measured in the same run on the same splits.

A probe is a logistic regression (scikit-learn's LogisticRegression: L2, lbfgs, multinomial for
more than two classes) on a feature set:
- "dense" features (posterior means, LM states) are standardised with the training part's mean
  and spread (a latent's inactive units have a tiny scale; the L2 penalty should not favour
  dimensions by their units);
- "sparse" features (bag-of-pieces counts) become sublinear tf-idf, idf from the training part.

Protocols (SentEval's, Conneau and Kiela 2018, senteval/tools/validation.py):
- cross_validate: k-fold stratified cross-validation (MR, CR, MPQA: 10 folds); in each fold the
  regularisation C is chosen by an inner stratified cross-validation on the training folds alone.
- split: train / test with C chosen on the dev set (SST-2, SST-5), or by inner cross-validation
  on the training set when there is no dev set.
- few_label: N training sentences drawn at random from a pool (several draws; draw d takes the
  first N of its own seeded permutation, so a draw's 100 lie inside its 500), C by inner
  cross-validation on those N alone (no dev set larger than the training set), tested on a fixed
  held-out set.
C comes from SentEval's grid for scikit-learn, 2^-2 .. 2^3; ties go to the smaller C (the
simpler model). Everything is seeded: the same call gives the same numbers.
"""

import warnings
from dataclasses import dataclass

import numpy as np

from sentvae.errors import SentvaeError

C_GRID = tuple(2.0 ** t for t in range(-2, 4))
DENSE, SPARSE = "dense", "sparse"


@dataclass
class FeatureSet:
    """One representation of the task's sentences: X (N, D), a numpy array or a scipy CSR matrix."""
    name: str
    kind: str            # DENSE or SPARSE
    X: object

    @property
    def dim(self) -> int:
        return int(self.X.shape[1])


def classifier(kind: str, C: float, seed: int = 0):
    """An unfitted probe: the feature transform for `kind`, then the logistic regression."""
    from sklearn.feature_extraction.text import TfidfTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    prep = StandardScaler() if kind == DENSE else TfidfTransformer(sublinear_tf=True)
    return make_pipeline(prep, LogisticRegression(C=C, max_iter=1000, random_state=seed))


class Fitter:
    """Fits probes and counts those lbfgs stopped before converging (reported, not hidden)."""

    def __init__(self, seed: int = 0):
        self.seed, self.unconverged, self.fits = seed, 0, 0

    def fit(self, kind, X, y, C):
        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model = classifier(kind, C, self.seed).fit(X, y)
        self.fits += 1
        self.unconverged += any(issubclass(w.category, ConvergenceWarning) for w in caught)
        return model

    def accuracy(self, kind, X, y, train, test, C) -> float:
        model = self.fit(kind, X[train], y[train], C)
        return float((model.predict(X[test]) == y[test]).mean())


def folds_of(y: np.ndarray, k: int, seed: int, what: str = "--folds") -> list[tuple[np.ndarray, np.ndarray]]:
    """k stratified folds of the rows of y: (train rows, test rows) each; every row is tested in
    exactly one fold. A class with fewer than k examples: one line."""
    from sklearn.model_selection import StratifiedKFold

    values, counts = np.unique(y, return_counts=True)
    if counts.min() < k:
        raise SentvaeError(f"{what} {k}: class {values[counts.argmin()]} has {counts.min()} example(s) "
                           f"there, fewer than the {k} folds")
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(y)), y))


def choose_C(fitter: Fitter, kind: str, X, y, rows: np.ndarray, inner: int, seed: int, Cs=C_GRID,
             dev: tuple | None = None) -> tuple[float, float]:
    """The C of the grid with the best mean accuracy: on `dev` (X_dev, y_dev) if given, else by
    `inner`-fold cross-validation over `rows`. -> (C, its accuracy)."""
    scores = []
    if dev is not None:
        for C in Cs:
            model = fitter.fit(kind, X[rows], y[rows], C)
            scores.append(float((model.predict(dev[0]) == dev[1]).mean()))
    else:
        splits = folds_of(y[rows], inner, seed, "--inner-folds")
        for C in Cs:
            scores.append(float(np.mean([fitter.accuracy(kind, X, y, rows[a], rows[b], C) for a, b in splits])))
    best = int(np.argmax(scores))          # the first maximum: the smallest C among ties
    return Cs[best], scores[best]


def summary(accuracies: list[float]) -> dict:
    """Mean and spread of per-fold (or per-draw) accuracies; std with ddof=1 (None for one)."""
    a = np.asarray(accuracies, dtype=float)
    return {"accuracy": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else None,
            "min": float(a.min()), "max": float(a.max()), "runs": [float(v) for v in a]}


def majority(y_train: np.ndarray, y_test: np.ndarray) -> float:
    """The accuracy of always answering the training part's most frequent class."""
    return float((y_test == np.bincount(y_train).argmax()).mean())


def cross_validate(features: list[FeatureSet], y: np.ndarray, folds: int = 10, inner: int = 5, seed: int = 0,
                   Cs=C_GRID) -> dict:
    """k-fold cross-validation of every feature set on the same folds -> {name: summary + C per fold}."""
    splits = folds_of(y, folds, seed)
    out = {"majority": summary([majority(y[a], y[b]) for a, b in splits])}
    for f in features:
        fitter, accs, chosen = Fitter(seed), [], []
        for train, test in splits:
            C, _ = choose_C(fitter, f.kind, f.X, y, train, inner, seed, Cs)
            accs.append(fitter.accuracy(f.kind, f.X, y, train, test, C))
            chosen.append(C)
        out[f.name] = {**summary(accs), "C": chosen, "dim": f.dim, "fits": fitter.fits,
                       "unconverged": fitter.unconverged}
    return out


def split(features: list[FeatureSet], y: np.ndarray, train: np.ndarray, test: np.ndarray,
          dev: np.ndarray | None = None, inner: int = 5, seed: int = 0, Cs=C_GRID) -> dict:
    """Train on the rows `train`, C on `dev` (or inner CV), test on `test` -> {name: ...}. Beside
    the accuracy, its binomial standard error sqrt(p(1-p)/n) over the test sentences."""
    out = {"majority": _scored(majority(y[train], y[test]), len(test))}
    for f in features:
        fitter = Fitter(seed)
        held = None if dev is None else (f.X[dev], y[dev])
        C, chosen_by = choose_C(fitter, f.kind, f.X, y, train, inner, seed, Cs, held)
        acc = fitter.accuracy(f.kind, f.X, y, train, test, C)
        out[f.name] = {**_scored(acc, len(test)), "C": C, ("dev_accuracy" if dev is not None else "inner_cv_accuracy"): chosen_by,
                       "dim": f.dim, "fits": fitter.fits, "unconverged": fitter.unconverged}
    return out


def _scored(acc: float, n: int) -> dict:
    return {"accuracy": acc, "std": None, "se": float(np.sqrt(acc * (1 - acc) / n))}


def draws_of(pool: int, sizes: list[int], draws: int, seed: int) -> list[np.ndarray]:
    """Draw d's permutation of range(pool), cut to max(sizes): draw d of size N is its first N
    rows. Refuses a size larger than the pool."""
    if max(sizes) > pool:
        raise SentvaeError(f"--few {max(sizes)}: more than the {pool:,} labelled training sentences")
    return [np.random.default_rng([seed, d]).permutation(pool)[:max(sizes)] for d in range(draws)]


def few_label(features: list[FeatureSet], y: np.ndarray, draws: list[np.ndarray], sizes: list[int],
              test: np.ndarray, inner: int = 5, seed: int = 0, Cs=C_GRID) -> list[dict]:
    """The few-label curve: for each size N, every feature set trained on each draw's first N rows
    (C by inner CV on them), tested on `test` -> [{"n": N, name: summary over the draws...}]."""
    curve = []
    for n in sizes:
        rows = [d[:n] for d in draws]
        for r in rows:
            if len(np.unique(y[r])) < 2:
                raise SentvaeError(f"--few {n}: a draw of {n} sentences holds one class only; draw more")
        point = {"n": n, "majority": summary([majority(y[r], y[test]) for r in rows])}
        for f in features:
            fitter, accs, chosen = Fitter(seed), [], []
            for r in rows:
                C, _ = choose_C(fitter, f.kind, f.X, y, r, inner, seed, Cs)
                accs.append(fitter.accuracy(f.kind, f.X, y, r, test, C))
                chosen.append(C)
            point[f.name] = {**summary(accs), "C": chosen, "dim": f.dim, "fits": fitter.fits,
                             "unconverged": fitter.unconverged}
        curve.append(point)
    return curve
