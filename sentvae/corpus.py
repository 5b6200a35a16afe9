"""Token-id corpora and their batches: a Corpus (a flat token array plus offsets: sentence i is
ids[offsets[i]:offsets[i+1]]), built from text files through HF `datasets` (Arrow on disk,
memory-mapped, tokenization cached by `map`: a corpus larger than memory still trains and a second
run does not re-tokenize), length-bucketed batching by a token budget, padding. A batch is
(B, T+1) tokens laid out as [BOS, w1..wn, EOS, PAD...]; the decoder reads [:, :-1] and predicts
[:, 1:]. Reading the text itself: sentvae/data.py.
"""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sentvae.data import hub_dataset, quiet_datasets, check_path, read_texts
from sentvae.errors import SentvaeError
from sentvae.tokenizer import BOS, ENCODING, EOS, PAD, Tokenizer

@dataclass
class Corpus:
    ids: np.ndarray        # (N_tokens,) int32, pieces back to back; memory-mapped for big corpora
    offsets: np.ndarray    # (N + 1,) int64 into ids
    words: np.ndarray      # (n,) whitespace words of each sentence of this corpus, for perplexity
    n_truncated: int       # sentences cut to max_len pieces
    n_unk: int             # words holding a piece the tokenizer could not represent (UNK)
    source: str
    rows: np.ndarray | None = None   # a view: these sentences of ids/offsets, in this order
    unknown: np.ndarray | None = None    # (n,) each sentence's unknown words, as `words`
    truncated: np.ndarray | None = None  # (n,) each sentence cut to max_len, as `words`
    labels: np.ndarray | None = None     # (n, A) int64 label value indices, -1 unlabelled, as `words`

    def __post_init__(self):
        starts, ends = self.offsets[:-1], self.offsets[1:]
        if self.rows is not None:
            starts, ends = starts[self.rows], ends[self.rows]
        self.starts = np.asarray(starts, dtype=np.int64)      # (n,) computed once, not per batch
        self.lengths = np.asarray(ends - starts, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.lengths)

    def check_coverage(self, limit: float = 0.5) -> None:
        """Refuse text the tokenizer mostly cannot represent (another language or script): more
        than `limit` of its whitespace words hold a piece it maps to UNK."""
        total = int(self.words.sum())
        if total and self.n_unk / total > limit:
            raise SentvaeError(f"{self.source}: {100 * self.n_unk / total:.0f}% of its words are unknown to "
                               "this tokenizer; is it in the language/script the model was trained on?")

    def sentence(self, i: int) -> list[int]:
        return self.ids[self.starts[i]:self.starts[i] + self.lengths[i]].tolist()


def _gen_lines(paths, encoding_errors, stamps, text_field="text"):
    # `stamps` (size, mtime) is unused here but part of datasets' cache key: an edited
    # file gets a new cache entry instead of stale Arrow data.
    for text in read_texts(paths, encoding_errors, text_field):
        yield {"text": text}


_TOKENIZERS: dict[int, Tokenizer] = {}


def _tokenize_batch(batch, proto: bytes, max_len: int, encoding: int = ENCODING):
    # `encoding` (tokenizer.ENCODING) is unused here but part of datasets' cache key: corpora
    # cached before a change to Tokenizer.encode are tokenized again
    tok = _TOKENIZERS.get(hash(proto))
    if tok is None:
        tok = _TOKENIZERS.setdefault(hash(proto), Tokenizer(proto))
    ids, unknown = tok.encode_counting(batch["text"])
    return {"ids": [x[:max_len] for x in ids],
            "truncated": [len(x) > max_len for x in ids],
            "unk": unknown,                               # words, not pieces: Corpus.n_unk
            "words": [len(t.split()) for t in batch["text"]]}


def _find_user_error(exc: BaseException):
    while exc is not None:
        if isinstance(exc, SentvaeError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def load_corpus(paths: list[str], tokenizer: Tokenizer, max_len: int,
                encoding_errors: str = "strict", text_field: str = "text") -> Corpus:
    """Tokenize sources (text, .jsonl, .csv, '-' for stdin, hf:NAME) into a Corpus, cached by datasets."""
    hub = [p for p in paths if p.startswith("hf:")]
    if hub and len(paths) > 1:
        raise SentvaeError("--data: give one hf:NAME source on its own")
    for p in paths:
        if not p.startswith("hf:"):
            check_path(p)
    datasets = quiet_datasets(offline_default=not hub)
    try:
        if hub:
            ds = hub_dataset(hub[0], text_field).rename_column(text_field, "text")
            ds = ds.filter(lambda b: [bool(t and t.strip()) for t in b["text"]], batched=True)
        elif "-" in paths:
            texts = list(read_texts(paths, encoding_errors, text_field))
            ds = datasets.Dataset.from_dict({"text": texts})
        else:
            stamps = [(os.path.getsize(p), os.stat(p).st_mtime_ns, os.path.abspath(p)) for p in paths]
            ds = datasets.Dataset.from_generator(
                _gen_lines, gen_kwargs={"paths": list(paths), "encoding_errors": encoding_errors,
                                        "stamps": stamps, "text_field": text_field},
                features=datasets.Features({"text": datasets.Value("string")}))
        if len(ds) == 0:
            raise SentvaeError(f"{', '.join(paths)}: no usable sentence (the input is empty or blank)")
        ds = ds.map(_tokenize_batch, batched=True, batch_size=2000, remove_columns=["text"],
                    fn_kwargs={"proto": tokenizer.proto, "max_len": max_len, "encoding": ENCODING})
    except Exception as e:  # datasets wraps errors raised inside the generator
        user = _find_user_error(e)
        if user is not None:
            raise user from None
        if isinstance(e, ValueError) and "corresponds to no data" in str(e):
            # datasets' way of saying the generator yielded nothing
            raise SentvaeError(f"{', '.join(paths)}: no usable sentence (the input is empty or blank)") from None
        raise
    table = ds.data.table
    ids, lengths = _flat_ids(ds, table.column("ids"))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    words = table.column("words").to_numpy().astype(np.int32)
    unknown = table.column("unk").to_numpy().astype(np.int32)
    truncated = table.column("truncated").to_numpy(zero_copy_only=False).astype(bool)
    return Corpus(ids=ids, offsets=offsets, words=words, n_truncated=int(truncated.sum()),
                  n_unk=int(unknown.sum()), source=", ".join(paths), unknown=unknown, truncated=truncated)


def _flat_ids(ds, col):
    """All token ids back to back, and each sentence's length. For a dataset cached on disk
    the ids are written once, chunk by chunk, to a .npy file beside datasets' Arrow cache
    (named by its fingerprint) and memory-mapped: a corpus larger than memory still trains,
    and memory does not grow with it."""
    import pyarrow.compute as pc

    lengths = np.concatenate([pc.list_value_length(c).to_numpy(zero_copy_only=False)
                              for c in col.chunks] or [np.zeros(0)]).astype(np.int64)
    if not ds.cache_files:   # an in-memory dataset (stdin): keep it in memory
        return np.concatenate([c.flatten().to_numpy(zero_copy_only=False) for c in col.chunks]
                              ).astype(np.int32), lengths
    path = Path(ds.cache_files[0]["filename"]).with_name(f"sentvae-ids-{ds._fingerprint}.npy")
    if not path.exists():
        tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.int32, shape=(int(lengths.sum()),))
        at = 0
        for c in col.chunks:
            v = c.flatten().to_numpy(zero_copy_only=False)
            out[at:at + len(v)] = v
            at += len(v)
        out.flush()
        del out
        os.replace(tmp, path)
    return np.load(path, mmap_mode="r"), lengths


def corpus_from_texts(texts: list[str], tokenizer: Tokenizer, max_len: int) -> Corpus:
    """A small in-memory corpus (command-line sentences, tests); no datasets involved."""
    enc = _tokenize_batch({"text": list(texts)}, tokenizer.proto, max_len)
    lens = np.array([len(x) for x in enc["ids"]], dtype=np.int64)
    flat = [t for x in enc["ids"] for t in x]
    return Corpus(ids=np.array(flat, dtype=np.int32),
                  offsets=np.concatenate([[0], np.cumsum(lens)]).astype(np.int64),
                  words=np.array(enc["words"], dtype=np.int32),
                  n_truncated=sum(enc["truncated"]), n_unk=sum(enc["unk"]), source="<text>",
                  unknown=np.array(enc["unk"], dtype=np.int32), truncated=np.array(enc["truncated"], dtype=bool))


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


@dataclass
class Batch:
    """B sentences as the model reads them.

    tokens (B, T+1): [BOS, w.., EOS, PAD..]; lengths (B,): pieces + 1 (EOS); index (B,): each
    sentence's position in its corpus (noise is seeded by it, so a sentence's samples do not
    depend on the batch it sits in); labels (B, A): a value index per attribute, -1 where a
    sentence has none, or None for unlabelled data."""
    tokens: torch.Tensor
    lengths: torch.Tensor
    index: np.ndarray
    labels: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.tokens.size(0)

    def to(self, device, non_blocking: bool = False) -> "Batch":
        move = lambda t: None if t is None else t.to(device, non_blocking=non_blocking)   # noqa: E731
        return Batch(move(self.tokens), move(self.lengths), self.index, move(self.labels))

    def pin_memory(self) -> "Batch":
        pin = lambda t: None if t is None else t.pin_memory()   # noqa: E731
        return Batch(pin(self.tokens), pin(self.lengths), self.index, pin(self.labels))


def collate(corpus: Corpus, idx: np.ndarray) -> Batch:
    """The sentences idx of a corpus as a Batch (tokens, lengths, index, and labels if it has them)."""
    idx = np.asarray(idx)
    lens = corpus.lengths[idx]                                   # (B,)
    B, T = len(idx), int(lens.max()) + 1
    tokens = np.full((B, T + 1), PAD, dtype=np.int64)
    tokens[:, 0] = BOS
    total = int(lens.sum())
    row = np.repeat(np.arange(B), lens)
    col = np.arange(total) - np.repeat(np.cumsum(lens) - lens, lens)
    src = np.repeat(corpus.starts[idx], lens) + col
    tokens[row, col + 1] = corpus.ids[src]
    tokens[np.arange(B), lens + 1] = EOS
    labels = None if corpus.labels is None else torch.from_numpy(np.ascontiguousarray(corpus.labels[idx]))
    return Batch(torch.from_numpy(tokens), torch.from_numpy(lens + 1), idx, labels)


def subset(corpus: Corpus, idx: np.ndarray) -> Corpus:
    """The sentences idx of a corpus, as a view: no token is copied."""
    base = np.arange(len(corpus.offsets) - 1) if corpus.rows is None else corpus.rows
    # the counts are this subset's own (else a held-out split would report the whole corpus's)
    unknown = None if corpus.unknown is None else corpus.unknown[idx]
    truncated = None if corpus.truncated is None else corpus.truncated[idx]
    return Corpus(ids=corpus.ids, offsets=corpus.offsets, words=corpus.words[idx],
                  n_truncated=corpus.n_truncated if truncated is None else int(truncated.sum()),
                  n_unk=corpus.n_unk if unknown is None else int(unknown.sum()), source=corpus.source,
                  rows=base[np.asarray(idx)], unknown=unknown, truncated=truncated,
                  labels=None if corpus.labels is None else corpus.labels[idx])


def split_corpus(corpus: Corpus, seed: int = 0, fraction: float = 0.05, max_held: int = 1000):
    """Hold out a random fraction (at most `max_held`, at least 1) for validation."""
    n = len(corpus)
    if n < 2:
        raise SentvaeError(f"{corpus.source}: {n} sentence(s) is too few to hold out validation data; "
                           "give --valid")
    held = min(max_held, max(1, int(n * fraction)))
    perm = np.random.default_rng([seed, 7919]).permutation(n)
    return subset(corpus, np.sort(perm[held:])), subset(corpus, np.sort(perm[:held]))
