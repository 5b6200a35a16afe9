"""What a discrete latent learned: each component's share of a corpus, its most typical sentences,
and, with labelled text, how well the components agree with the labels.

A sentence's component is the argmax of q(c|x) (the posterior's `components()`: a mixture prior's
component posterior, or a categorical latent). Homogeneity (each component holds one label),
completeness (each label sits in one component) and their harmonic mean, NMI (the arithmetic-mean
normalisation, as scikit-learn's default), are computed from the contingency table, in nats.
"""

import math

import numpy as np

from sentvae.command_config import ClustersConfig
from sentvae.errors import SentvaeError


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def agreement(labels, clusters) -> dict:
    """Homogeneity, completeness and NMI of `clusters` against `labels` (two equal-length sequences)."""
    labels, clusters = np.asarray(labels), np.asarray(clusters)
    if len(labels) != len(clusters) or len(labels) == 0:
        raise ValueError("labels and clusters must be two equal, non-empty sequences")
    _, y = np.unique(labels, return_inverse=True)
    _, c = np.unique(clusters, return_inverse=True)
    table = np.zeros((y.max() + 1, c.max() + 1))
    np.add.at(table, (y, c), 1)
    h_y, h_c = _entropy(table.sum(1)), _entropy(table.sum(0))
    n = table.sum()
    nz = table > 0
    outer = np.outer(table.sum(1), table.sum(0))
    mi = float((table[nz] / n * np.log(table[nz] * n / outer[nz])).sum())
    homogeneity = 1.0 if h_y == 0 else mi / h_y
    completeness = 1.0 if h_c == 0 else mi / h_c
    nmi = 1.0 if h_y == h_c == 0 else (2 * mi / (h_y + h_c) if h_y + h_c > 0 else 0.0)
    return {"homogeneity": homogeneity, "completeness": completeness, "nmi": nmi, "mutual_information": mi}


def cluster_report(model, texts: list[str], labels: list | None = None, top: int = 5, stats: dict | None = None) -> dict:
    """model: a sentvae.Model whose posterior has components. -> {"components": [{"component", "share",
    "sentences", "typical": [{"text", "probability"}]}...], "assigned": [c per text], and with
    labels "agreement" (agreement()) and each component's label counts}."""
    top = ClustersConfig(top=top).top              # --top's domain
    q = model.encode(texts, stats=stats)
    if not hasattr(q, "components"):
        raise SentvaeError(f"clusters: {model.source} has no discrete latent (train with --prior gmm or "
                           "--latent-type categorical)")
    probs = q.components().cpu().numpy()                              # (N, C)
    assigned = probs.argmax(axis=1)
    N, C = probs.shape
    rows = []
    for c in range(C):
        members = np.flatnonzero(assigned == c)
        order = members[np.argsort(-probs[members, c], kind="stable")][:top]
        row = {"component": c, "share": len(members) / N, "sentences": int(len(members)),
               "typical": [{"text": texts[i], "probability": float(probs[i, c])} for i in order]}
        if labels is not None:
            values, counts = np.unique(np.asarray(labels, dtype=object)[members].astype(str), return_counts=True)
            row["labels"] = {str(v): int(k) for v, k in zip(values, counts)}
        rows.append(row)
    report = {"sentences": N, "components": rows, "assigned": assigned.tolist(),
              "entropy_of_shares": _entropy(np.bincount(assigned, minlength=C).astype(float)),
              "max_entropy": math.log(C)}
    if labels is not None:
        report["agreement"] = agreement([str(v) for v in labels], assigned)
    return report
