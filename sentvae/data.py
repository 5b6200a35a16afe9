"""Reading text, token-id corpora, length-bucketed batching by a token budget, padding.

Local text files go through HF `datasets` (Arrow on disk, memory-mapped, tokenization
cached by `map`), so a corpus larger than memory still trains and a second run does not
re-tokenize. A Corpus is a flat token array plus offsets: sentence i is
ids[offsets[i]:offsets[i+1]]. A batch is (B, T+1) tokens laid out as
[BOS, w1..wn, EOS, PAD...]; the decoder reads [:, :-1] and predicts [:, 1:].
"""

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sentvae.errors import SentvaeError
from sentvae.tokenizer import BOS, EOS, PAD, Tokenizer

BUNDLED = Path(__file__).resolve().parent.parent / "data"


def bundled(split: str) -> str:
    path = BUNDLED / f"{split}.txt"
    if not path.is_file():
        raise SentvaeError(f"no --data given and the bundled corpus ({path}) is missing")
    return str(path)


def check_path(path: str) -> None:
    if path == "-":
        return
    p = Path(path)
    if not p.exists():
        raise SentvaeError(f"{path}: no such file")
    if p.is_dir():
        raise SentvaeError(f"{path}: is a directory, expected a text file (one sentence per line)")


def iter_lines(path: str, encoding_errors: str = "strict", keep_blank: bool = False):
    """Yield (line number, text) for each non-blank line (each line with keep_blank);
    '-' reads stdin. Decodes line by line so that a bad byte is reported with its file and line.
    """
    check_path(path)
    stream = sys.stdin.buffer if path == "-" else open(path, "rb")
    name = "<stdin>" if path == "-" else path
    try:
        for lineno, raw in enumerate(stream, 1):
            try:
                text = raw.decode("utf-8", errors=encoding_errors)
            except UnicodeDecodeError as e:
                raise SentvaeError(f"{name} line {lineno}: not valid UTF-8 (byte {e.start + 1}); "
                                   "pass --encoding-errors replace to go on") from None
            if "\x00" in text:
                raise SentvaeError(f"{name} line {lineno}: contains a NUL byte (a binary file?)")
            text = text.strip()
            if text or keep_blank:
                yield lineno, text
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


def read_texts(paths: list[str], encoding_errors: str = "strict"):
    for path in paths:
        for _, text in iter_lines(path, encoding_errors):
            yield text


@dataclass
class Corpus:
    ids: np.ndarray        # (N_tokens,) int32, every sentence's pieces back to back
    offsets: np.ndarray    # (n + 1,) int64
    words: np.ndarray      # (n,) whitespace words per sentence, for per-word perplexity
    n_truncated: int       # sentences cut to max_len pieces
    n_unk: int             # pieces the tokenizer could not represent
    source: str

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def check_coverage(self, limit: float = 0.5) -> None:
        """Refuse text the tokenizer mostly cannot represent (another language or script)."""
        total = int(self.lengths.sum())
        if total and self.n_unk / total > limit:
            raise SentvaeError(f"{self.source}: {100 * self.n_unk / total:.0f}% of its pieces are unknown to "
                               "this tokenizer; is it in the language/script the model was trained on?")

    def sentence(self, i: int) -> list[int]:
        return self.ids[self.offsets[i]:self.offsets[i + 1]].tolist()


def _quiet_datasets():
    # Local files only: never let datasets wait on the Hub. It reads these at import time.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    import datasets
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    logging.getLogger("datasets").setLevel(logging.ERROR)
    return datasets


def _gen_lines(paths, encoding_errors, stamps):
    # `stamps` (size, mtime) is unused here but part of datasets' cache key: an edited
    # file gets a new cache entry instead of stale Arrow data.
    for path in paths:
        for _, text in iter_lines(path, encoding_errors):
            yield {"text": text}


_TOKENIZERS: dict[int, Tokenizer] = {}


def _tokenize_batch(batch, proto: bytes, max_len: int):
    tok = _TOKENIZERS.get(hash(proto))
    if tok is None:
        tok = _TOKENIZERS.setdefault(hash(proto), Tokenizer(proto))
    ids = tok.encode(batch["text"])
    return {"ids": [x[:max_len] for x in ids],
            "truncated": [len(x) > max_len for x in ids],
            "unk": [x.count(1) for x in ids],
            "words": [len(t.split()) for t in batch["text"]]}


def _find_user_error(exc: BaseException):
    while exc is not None:
        if isinstance(exc, SentvaeError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def load_corpus(paths: list[str], tokenizer: Tokenizer, max_len: int,
                encoding_errors: str = "strict") -> Corpus:
    """Tokenize text files (or '-' for stdin) into a Corpus, cached by datasets."""
    for p in paths:
        check_path(p)
    datasets = _quiet_datasets()
    try:
        if "-" in paths:
            texts = list(read_texts(paths, encoding_errors))
            ds = datasets.Dataset.from_dict({"text": texts})
        else:
            stamps = [(os.path.getsize(p), os.stat(p).st_mtime_ns, os.path.abspath(p)) for p in paths]
            ds = datasets.Dataset.from_generator(
                _gen_lines, gen_kwargs={"paths": list(paths), "encoding_errors": encoding_errors,
                                        "stamps": stamps},
                features=datasets.Features({"text": datasets.Value("string")}))
        if len(ds) == 0:
            raise SentvaeError(f"{', '.join(paths)}: no usable sentence (the input is empty or blank)")
        ds = ds.map(_tokenize_batch, batched=True, batch_size=2000, remove_columns=["text"],
                    fn_kwargs={"proto": tokenizer.proto, "max_len": max_len})
    except Exception as e:  # datasets wraps errors raised inside the generator
        user = _find_user_error(e)
        if user is not None:
            raise user from None
        if isinstance(e, ValueError) and "corresponds to no data" in str(e):
            # datasets' way of saying the generator yielded nothing
            raise SentvaeError(f"{', '.join(paths)}: no usable sentence (the input is empty or blank)") from None
        raise
    table = ds.data.table
    col = table.column("ids").combine_chunks()
    ids = col.values.to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
    offsets = col.offsets.to_numpy(zero_copy_only=False).astype(np.int64)
    offsets = offsets - offsets[0]
    words = table.column("words").to_numpy().astype(np.int32)
    return Corpus(ids=ids, offsets=offsets, words=words,
                  n_truncated=int(table.column("truncated").to_numpy().sum()),
                  n_unk=int(table.column("unk").to_numpy().sum()),
                  source=", ".join(paths))


def corpus_from_texts(texts: list[str], tokenizer: Tokenizer, max_len: int) -> Corpus:
    """A small in-memory corpus (command-line sentences, tests); no datasets involved."""
    enc = _tokenize_batch({"text": list(texts)}, tokenizer.proto, max_len)
    lens = np.array([len(x) for x in enc["ids"]], dtype=np.int64)
    flat = [t for x in enc["ids"] for t in x]
    return Corpus(ids=np.array(flat, dtype=np.int32),
                  offsets=np.concatenate([[0], np.cumsum(lens)]).astype(np.int64),
                  words=np.array(enc["words"], dtype=np.int32),
                  n_truncated=sum(enc["truncated"]), n_unk=sum(enc["unk"]), source="<text>")


def corpus_from_ids(ids: list[list[int]]) -> Corpus:
    """A corpus of already tokenized sentences (decoder outputs, tests)."""
    lens = np.array([len(x) for x in ids], dtype=np.int64)
    return Corpus(ids=np.array([t for x in ids for t in x], dtype=np.int32),
                  offsets=np.concatenate([[0], np.cumsum(lens)]).astype(np.int64),
                  words=np.zeros(len(ids), dtype=np.int32), n_truncated=0, n_unk=0, source="<ids>")


def make_batches(lengths: np.ndarray, max_tokens: int, seed: int = 0, epoch: int = 0,
                 shuffle: bool = True) -> list[np.ndarray]:
    """Group sentence indices into batches of at most `max_tokens` padded tokens.

    Sentences are sorted by length (ties in a random order per epoch), cut greedily so
    that B * T_max <= max_tokens, where T = pieces + 1 (EOS), and the batches are shuffled.
    Sorting keeps padding small; the shuffle keeps batches of each length spread over
    the epoch. Deterministic in (seed, epoch).
    """
    n = len(lengths)
    seq = np.asarray(lengths, dtype=np.int64) + 1
    rng = np.random.default_rng([seed, epoch])
    perm = rng.permutation(n) if shuffle else np.arange(n)
    order = perm[np.argsort(seq[perm], kind="stable")]
    batches, start = [], 0
    for i in range(1, n + 1):
        # order is sorted by length, so the sentence at i - 1 is the longest so far
        if i == n or (i - start + 1) * seq[order[i]] > max_tokens:
            batches.append(order[start:i])
            start = i
    if shuffle:
        batches = [batches[j] for j in rng.permutation(len(batches))]
    return batches


def padding_fraction(batches: list[np.ndarray], lengths: np.ndarray) -> float:
    seq = np.asarray(lengths) + 1
    padded = sum(len(b) * int(seq[b].max()) for b in batches)
    return 1.0 - float(seq.sum()) / padded if padded else 0.0


def collate(corpus: Corpus, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens (B, T+1) as [BOS, w.., EOS, PAD..] and lengths (B,) = pieces + 1."""
    lens = corpus.lengths[idx]                                   # (B,)
    B, T = len(idx), int(lens.max()) + 1
    tokens = np.full((B, T + 1), PAD, dtype=np.int64)
    tokens[:, 0] = BOS
    total = int(lens.sum())
    row = np.repeat(np.arange(B), lens)
    col = np.arange(total) - np.repeat(np.cumsum(lens) - lens, lens)
    src = np.repeat(corpus.offsets[idx], lens) + col
    tokens[row, col + 1] = corpus.ids[src]
    tokens[np.arange(B), lens + 1] = EOS
    return torch.from_numpy(tokens), torch.from_numpy(lens + 1)


def subset(corpus: Corpus, idx: np.ndarray) -> Corpus:
    lens = corpus.lengths[idx]
    starts = corpus.offsets[idx]
    src = np.repeat(starts, lens) + (np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens))
    return Corpus(ids=corpus.ids[src], offsets=np.concatenate([[0], np.cumsum(lens)]).astype(np.int64),
                  words=corpus.words[idx], n_truncated=corpus.n_truncated, n_unk=corpus.n_unk,
                  source=corpus.source)


def split_corpus(corpus: Corpus, seed: int = 0, fraction: float = 0.05, max_held: int = 1000):
    """Hold out a random fraction (at most `max_held`, at least 1) for validation."""
    n = len(corpus)
    if n < 2:
        raise SentvaeError(f"{corpus.source}: {n} sentence(s) is too few to hold out validation data; "
                           "give --valid")
    held = min(max_held, max(1, int(n * fraction)))
    perm = np.random.default_rng([seed, 7919]).permutation(n)
    return subset(corpus, np.sort(perm[held:])), subset(corpus, np.sort(perm[:held]))
