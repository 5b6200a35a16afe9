"""A judge that is not the model: a bag-of-n-grams logistic regression over one label,
trained on labelled text alone, that scores what a model generates (label accuracy).

Features: tf-idf of word 1- and 2-grams (sublinear tf, l2-normalised rows, n-grams seen in at
least `min_df` training sentences) of the normalised text (sentvae.scoring.normalize, the same
normalisation every score uses); classifier: scikit-learn's LogisticRegression (L2, lbfgs,
balanced class weights so that a skewed training set does not tilt the verdict).

Saved without pickle: one .npz of plain arrays (the n-gram vocabulary in feature order, idf,
coefficients, intercepts, classes) and a JSON header, read back with allow_pickle=False, so
that loading a judge can never run code; the loaded judge predicts exactly as the saved one.
"""

import io
import json
import zipfile
from pathlib import Path

import numpy as np

from sentvae.errors import SentvaeError
from sentvae.scoring import normalize

FORMAT = "sentvae-judge"
VERSION = 1
TOKEN_PATTERN = r"\S+"      # the normalised text's tokens, punctuation included ("!" is evidence)


class Judge:
    """predict(texts) -> labels; proba(texts) -> (N, K); accuracy(texts, targets)."""

    def __init__(self, vectorizer, classifier, attribute: str, settings: dict):
        self.vectorizer, self.classifier = vectorizer, classifier
        self.attribute, self.settings = attribute, settings

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.classifier.classes_]

    def __repr__(self) -> str:
        return (f"Judge({self.attribute!r}: {', '.join(self.classes)}; "
                f"{len(self.vectorizer.idf_):,} n-grams, C={self.settings['C']})")

    @classmethod
    def train(cls, texts: list[str], labels: list[str], attribute: str = "label", C: float = 1.0,
              min_df: int = 2, max_iter: int = 1000) -> "Judge":
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        if len(texts) != len(labels):
            raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
        kept = [(t, str(y)) for t, y in zip(texts, labels) if y is not None]
        classes = sorted({y for _, y in kept})
        if len(classes) < 2:
            raise SentvaeError(f"judge for {attribute!r}: needs labelled examples of at least two values, "
                               f"got {', '.join(classes) or 'none'}")
        vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=min_df, sublinear_tf=True, lowercase=False,
                                     token_pattern=TOKEN_PATTERN, dtype=np.float64)
        X = vectorizer.fit_transform([normalize(t) for t, _ in kept])           # (N, F) sparse
        classifier = LogisticRegression(C=C, class_weight="balanced", max_iter=max_iter)
        classifier.fit(X, [y for _, y in kept])
        settings = {"ngram_range": [1, 2], "min_df": min_df, "sublinear_tf": True, "C": C,
                    "class_weight": "balanced", "train_sentences": len(kept)}
        return cls(vectorizer, classifier, attribute, settings)

    def features(self, texts: list[str]):
        return self.vectorizer.transform([normalize(t) for t in texts])        # (N, F) sparse

    def proba(self, texts: list[str]) -> np.ndarray:
        """(N, K) class probabilities, columns in the order of self.classes."""
        return self.classifier.predict_proba(self.features(texts))

    def predict(self, texts: list[str]) -> list[str]:
        return [str(c) for c in self.classifier.predict(self.features(texts))]

    def accuracy(self, texts: list[str], targets: list[str]) -> float:
        from sentvae.scoring import label_accuracy
        return label_accuracy(self.predict(texts), [str(t) for t in targets])

    # --- a file that cannot run code
    def save(self, path) -> None:
        from sentvae.atomic import write_atomically

        vocab = self.vectorizer.vocabulary_
        terms = np.empty(len(vocab), dtype=object)
        for term, i in vocab.items():
            terms[i] = term
        header = {"format": FORMAT, "version": VERSION, "attribute": self.attribute,
                  "settings": self.settings, "token_pattern": TOKEN_PATTERN}
        arrays = {"header": np.array(json.dumps(header)),
                  "terms": terms.astype(str),                                   # (F,) in feature order
                  "idf": self.vectorizer.idf_,                                  # (F,)
                  "coef": self.classifier.coef_,                                # (K or 1, F)
                  "intercept": self.classifier.intercept_,                      # (K or 1,)
                  "classes": np.array(self.classes, dtype=str)}                 # (K,)
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            write_atomically(path, lambda f: f.write(buf.getvalue()))
        except OSError as e:
            raise SentvaeError(f"{path}: cannot write the judge ({e.strerror})", 1) from None

    @classmethod
    def load(cls, path) -> "Judge":
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        path = Path(path)
        if not path.is_file():
            raise SentvaeError(f"{path}: no such judge file")
        if not zipfile.is_zipfile(path):    # np.load would take any other file for a pickle
            raise SentvaeError(f"{path}: not a sentvae judge (not an .npz file)")
        try:
            with np.load(path, allow_pickle=False) as z:
                header = json.loads(str(z["header"]))
                if header.get("format") != FORMAT:
                    raise KeyError
                terms, idf, coef = z["terms"], z["idf"], z["coef"]
                intercept, classes = z["intercept"], z["classes"]
        except ValueError as e:
            if "pickle" in str(e):
                raise SentvaeError(f"{path}: refused, it holds Python objects a judge never has "
                                   "(it could run code)") from None
            raise SentvaeError(f"{path}: not a sentvae judge, or truncated/corrupt") from None
        except (KeyError, OSError, EOFError, json.JSONDecodeError, TypeError):
            raise SentvaeError(f"{path}: not a sentvae judge, or truncated/corrupt") from None
        if header.get("version", 0) > VERSION:
            raise SentvaeError(f"{path}: judge format version {header['version']} is newer than this "
                               f"sentvae reads ({VERSION}); upgrade sentvae")
        s = header["settings"]
        vectorizer = TfidfVectorizer(ngram_range=tuple(s["ngram_range"]), sublinear_tf=s["sublinear_tf"],
                                     lowercase=False, token_pattern=header["token_pattern"],
                                     vocabulary={str(t): i for i, t in enumerate(terms)}, dtype=np.float64)
        vectorizer.idf_ = idf
        classifier = LogisticRegression(C=s["C"])
        classifier.classes_ = np.array([str(c) for c in classes], dtype=object)
        classifier.coef_, classifier.intercept_ = coef, intercept
        classifier.n_features_in_ = coef.shape[1]
        if coef.shape[1] != len(terms) or len(idf) != len(terms):
            raise SentvaeError(f"{path}: not a sentvae judge (its arrays disagree in size)")
        return cls(vectorizer, classifier, header["attribute"], s)
