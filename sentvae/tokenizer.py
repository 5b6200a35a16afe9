"""SentencePiece training and the Tokenizer every other module uses.

Special ids are fixed for every sentvae tokenizer, so models and code can rely on them:
pad 0, unk 1, bos 2, eos 3. The tokenizer is a SentencePiece model proto (bytes): it
travels inside every checkpoint and is rebuilt from those bytes, never from the corpus.
"""

import io
import os
from collections.abc import Iterable
from pathlib import Path

import sentencepiece as spm

from sentvae.atomic import write_atomically
from sentvae.errors import SentvaeError

PAD, UNK, BOS, EOS = 0, 1, 2, 3
MAX_SENTENCE_BYTES = 1 << 16   # SentencePiece's trainer silently skips longer sentences
ENCODING = 3        # bumped whenever encode() changes what it returns (cached corpora key)
MODEL_TYPES = ("unigram", "bpe", "word", "char")


class Tokenizer:
    def __init__(self, proto: bytes, source: str = "tokenizer"):
        self.proto = bytes(proto)
        self.sp = spm.SentencePieceProcessor()
        try:
            self.sp.LoadFromSerializedProto(self.proto)
        except Exception:
            raise SentvaeError(f"{source}: not a SentencePiece model") from None
        ids = (self.sp.pad_id(), self.sp.unk_id(), self.sp.bos_id(), self.sp.eos_id())
        if ids != (PAD, UNK, BOS, EOS):
            raise SentvaeError(f"{source}: special ids (pad, unk, bos, eos) are {ids}, expected "
                               f"{(PAD, UNK, BOS, EOS)}; make it with `sentvae tokenize`")

    @classmethod
    def load(cls, path) -> "Tokenizer":
        path = Path(path)
        if path.is_dir():
            raise SentvaeError(f"{path}: is a directory, expected a tokenizer model (from `sentvae tokenize`)")
        if not path.is_file():
            raise SentvaeError(f"{path}: tokenizer model not found")
        return cls(path.read_bytes(), source=str(path))

    def save(self, path) -> None:
        """Write atomically: a crash leaves the old file or the new one, never half of one."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, lambda f: f.write(self.proto))

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def encode(self, texts: list[str]) -> list[list[int]]:
        return self.encode_counting(texts)[0]

    def encode_counting(self, texts: list[str]) -> tuple[list[list[int]], list[int]]:
        """-> (ids of each text, its unknown words): a whitespace word is unknown when any of
        its pieces is UNK (a Greek word is two pieces, the word-boundary piece and UNK, so a
        count of pieces would find Greek text only half unknown)."""
        texts = list(texts)
        ids = self.sp.encode(texts, out_type=int)
        unknown = [0] * len(ids)
        # SentencePiece merges a run of unknown pieces into one UNK, across spaces too: PTB's
        # "<unk> <unk>" would become one token, and a model would be scored on fewer tokens
        # than the text has words. Sentences holding an UNK are encoded again word by word
        # (pieces never cross spaces), so each unknown word keeps its own UNK.
        redo = [i for i, x in enumerate(ids) if UNK in x]
        if redo:
            words = [texts[i].split() for i in redo]
            flat = self.sp.encode([w for ws in words for w in ws], out_type=int)
            k = 0
            for i, ws in zip(redo, words):
                pieces = flat[k:k + len(ws)]
                ids[i] = [t for x in pieces for t in x]
                unknown[i] = sum(UNK in x for x in pieces)
                k += len(ws)
        return ids, unknown

    def decode(self, ids: list[list[int]]) -> list[str]:
        return [self.sp.decode(list(x)) for x in ids]

    def pieces(self, text: str) -> list[str]:
        return self.sp.encode(text, out_type=str)


def train_tokenizer(sentences: Iterable[str], model_type: str = "bpe", vocab_size: int = 8000,
                    max_sentences: int = 2_000_000, source: str = "training data") -> Tokenizer:
    """Train a SentencePiece model on an iterable of sentences (files, stdin, lists).

    hard_vocab_limit=False lets a small corpus get fewer pieces than asked instead of failing.
    """
    if model_type not in MODEL_TYPES:
        raise SentvaeError(f"--model-type: must be one of {', '.join(MODEL_TYPES)}, not {model_type!r}")
    if vocab_size < 8:
        raise SentvaeError(f"--vocab-size: must be >= 8, not {vocab_size}")
    counted = _Counted(sentences)
    buf = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(counted), model_writer=buf, model_type=model_type,
            vocab_size=vocab_size, hard_vocab_limit=False, character_coverage=1.0,
            pad_id=PAD, unk_id=UNK, bos_id=BOS, eos_id=EOS, unk_surface="<unk>",
            input_sentence_size=max_sentences, shuffle_input_sentence=True,
            max_sentence_length=MAX_SENTENCE_BYTES, minloglevel=2, num_threads=os.cpu_count() or 1)
    except RuntimeError as e:
        if counted.error is not None:   # raised inside our iterator, reported by SentencePiece
            raise counted.error from None
        if counted.n == 0:
            raise SentvaeError(f"{source}: no usable sentence (the input is empty or blank)") from None
        raise SentvaeError(f"SentencePiece training failed: {str(e).strip().splitlines()[-1]}") from None
    return Tokenizer(buf.getvalue())


class _Counted:
    """Iterates sentences, skipping blank ones, and counts what went through."""

    def __init__(self, sentences):
        self.sentences = sentences
        self.n = 0
        self.error = None

    def __iter__(self):
        try:
            for s in self.sentences:
                s = s.strip()
                if s:
                    self.n += 1
                    yield s
        except BaseException as e:      # SentencePiece would report any of them as its own failure
            self.error = e
            raise
