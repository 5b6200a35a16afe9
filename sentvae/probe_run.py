"""One probing run: a task's sentences -> features of every representation -> the protocol's
accuracies, as one report (what `sentvae probe` prints; the probes themselves: sentvae/probe.py).

    from sentvae import load
    from sentvae.probe_run import run
    from sentvae.probe_tasks import read_set
    task = read_set(["senteval/custrev.all"], "--task")
    report = run(load("vae/best.pt"), task, lm=load("lm/best.pt"))     # 10-fold CV
    report["results"]["vae"]["accuracy"], report["results"]["bow"]["accuracy"]

The feature sets, in the order reported: "vae" (the checkpoint's posterior means), "lm" (the
--lm checkpoint's final decoder state, if given), "bow" (bag-of-pieces tf-idf of the
checkpoint's own tokenisation), beside "majority" (the most frequent training class).
"""

import numpy as np

from sentvae.errors import SentvaeError
from sentvae.command_config import ProbeConfig, check_option
from sentvae.config import TrainConfig
from sentvae.probe import DENSE, SPARSE, FeatureSet, cross_validate, draws_of, few_label, split
from sentvae.probe_tasks import classes_of, encode_labels


def features(texts: list[str], model, lm=None, max_len: int = 100, stats: dict | None = None) -> list[FeatureSet]:
    """Every representation of `texts`: the posterior means, the LM's final states, the bag of pieces."""
    from sentvae.features import bag_of_pieces

    out = [FeatureSet("vae", DENSE, model.encode(texts, max_len, stats).mean().cpu().numpy())]
    if lm is not None:
        out.append(FeatureSet("lm", DENSE, lm.final_states(texts, max_len, stats).cpu().numpy()))
    out.append(FeatureSet("bow", SPARSE, bag_of_pieces(model.tokenizer, texts)))
    return out


def run(model, train, test=None, dev=None, lm=None, folds: int = 10, inner: int = 5, few: list[int] | None = None,
        draws: int = 5, seed: int = 0, max_len: int = 100, stats: dict | None = None) -> dict:
    """train, test, dev: TaskSets (sentvae/probe_tasks.py). Without test: `folds`-fold CV on train;
    with test: train/test, C on dev (or inner CV); with few (sizes): the few-label curve, `draws`
    draws of each size from train, tested on test. -> the report (plain data, JSON-ready)."""
    o = ProbeConfig(folds=folds, inner_folds=inner, draws=draws, seed=seed)        # each its flag's domain
    folds, inner, draws, seed = o.folds, o.inner_folds, o.draws, o.seed
    max_len = check_option(TrainConfig, "max_len", max_len)
    if few and test is None:
        raise SentvaeError("--few: the few-label curve needs a held-out --test set")
    if dev is not None and test is None:
        raise SentvaeError("--dev: a dev set chooses C for a --test set; give --test too (without it, "
                           "the task is cross-validated)")
    if few and dev is not None:
        raise SentvaeError("--dev: the few-label curve chooses C by inner cross-validation on the N "
                           "sentences drawn; leave out --dev")
    classes = classes_of(train)
    y_train = encode_labels(train, classes, "--task")
    report = {"classes": classes, "train": train.source, "train_examples": len(train.texts),
              "inner_folds": inner, "seed": seed, "checkpoint": model.source,
              "lm": None if lm is None else lm.source}
    if test is None:
        _check_counts(y_train, classes, folds, "--folds")
        feats = features(train.texts, model, lm, max_len, stats)
        report.update(protocol="cross-validation", folds=folds, examples=len(train.texts),
                      results=cross_validate(feats, y_train, folds, inner, seed))
        return report
    y_test = encode_labels(test, classes, "--test")
    report.update(test=test.source, test_examples=len(test.texts))
    if few:
        sizes = sorted(set(few))
        chosen = draws_of(len(train.texts), sizes, draws, seed)
        for n in sizes:          # every draw must hold every class, inner-folds times
            for d in chosen:
                counts = np.bincount(y_train[d[:n]], minlength=len(classes))
                if counts.min() < inner:
                    c = int(counts.argmin())
                    raise SentvaeError(f"--few {n}: a draw of {n} sentences holds {counts[c]} of label "
                                       f"{classes[c]!r}, fewer than --inner-folds {inner}; draw more")
        # only the sentences some draw holds are encoded (a pool of 180k costs minutes)
        used = np.unique(np.concatenate(chosen))
        where = np.full(len(train.texts), -1)
        where[used] = np.arange(len(used))
        texts = [train.texts[i] for i in used] + test.texts
        y = np.concatenate([y_train[used], y_test])
        feats = features(texts, model, lm, max_len, stats)
        test_rows = np.arange(len(used), len(texts))
        report.update(protocol="few-label", draws=draws, sizes=sizes, pool=len(train.texts),
                      encoded=len(texts),
                      curve=few_label(feats, y, [where[d] for d in chosen], sizes, test_rows, inner, seed))
        return report
    texts = train.texts + (dev.texts if dev is not None else []) + test.texts
    y = np.concatenate([y_train] + ([encode_labels(dev, classes, "--dev")] if dev is not None else []) + [y_test])
    n_dev = 0 if dev is None else len(dev.texts)
    rows = np.arange(len(texts))
    tr, dv, te = rows[:len(train.texts)], rows[len(train.texts):len(train.texts) + n_dev], rows[len(train.texts) + n_dev:]
    if dev is None:
        _check_counts(y_train, classes, inner, "--inner-folds")
    feats = features(texts, model, lm, max_len, stats)
    report.update(protocol="split", dev=None if dev is None else dev.source, dev_examples=n_dev,
                  chosen_on="dev" if dev is not None else f"{inner}-fold inner cross-validation",
                  examples=len(texts), results=split(feats, y, tr, te, dv if dev is not None else None, inner, seed))
    return report


def _check_counts(y: np.ndarray, classes: list[str], k: int, option: str) -> None:
    """Stratified k folds need k examples of every class: said with the class's name."""
    if k < 2:
        raise SentvaeError(f"{option}: must be >= 2, not {k}")
    counts = np.bincount(y, minlength=len(classes))
    if counts.min() < k:
        c = int(counts.argmin())
        raise SentvaeError(f"{option} {k}: label {classes[c]!r} has {counts[c]} example(s), fewer than {k}")
