"""Labelled data as corpora, for training and evaluating a labelled model.

Labelled sources (sentvae/labels.py: --label-field, --label-first-token, PATH@NAME=VALUE) are
read in memory, once: the texts (for the tokenizer, when one is trained, then tokenized without
datasets' cache) and their (N, A) label indices, which the Corpus carries beside its token ids
(Corpus.labels; a held-out split keeps its sentences' labels; collate puts them in Batch.labels).
A labelled corpus is a labelled corpus's size, not a web crawl's: yelp's 181k sentences are
~20 MB of text. Unlabelled training data goes on through sentvae.corpus.load_corpus (memory-mapped).

Imports neither torch nor sentvae.data at import time (`sentvae --help` stays fast).
"""

from sentvae.errors import SentvaeError
from sentvae.label_vocab import LabelVocab
from sentvae.labels import LabelOptions, attributes_of, load_labelled, split_source
from sentvae.labelled import check_passes


def options_of(run) -> LabelOptions:
    """The label-reading options of a RunConfig (or anything with its fields)."""
    return LabelOptions(fields=tuple(run.label_field or ()), first_token=run.label_first_token,
                        text_field=run.text_field, encoding=run.encoding, encoding_errors=run.encoding_errors)


def wanted(sources: list[str], options: LabelOptions) -> bool:
    """Labels are asked for: a --label-field, a --label-first-token, or a PATH@NAME=VALUE source."""
    return bool(options.fields or options.first_token or any(split_source(s)[1] for s in sources))


def read(sources: list[str], options: LabelOptions, vocab: LabelVocab | None = None, flag: str = "--data"):
    """-> (texts, (N, A) label indices, vocabulary) of training data: the vocabulary built from it,
    or given (a resumed or --init-from model's: every class must then have an example here)."""
    if vocab is not None:
        given = attributes_of(sources, options)
        if given != vocab.attributes:
            raise SentvaeError(f"{flag}: the model's labels are {', '.join(vocab.attributes) or 'none'}, "
                               f"the options give {', '.join(given) or 'none'}; give the same label options")
    texts, labels, vocab = load_labelled(sources, options, vocab, training=vocab is not None)
    if not texts:
        raise SentvaeError(f"{', '.join(sources)}: no usable sentence (the input is empty or blank)")
    if len(vocab):
        check_passes(labels, vocab, flag)
    return texts, labels, vocab


def read_held_out(sources: list[str], options: LabelOptions, vocab: LabelVocab, flag: str = "--valid"):
    """-> (texts, labels) of validation or test data for a model's vocabulary: a value it does not
    know is refused with its file and line; rows without a label are unlabelled."""
    texts, labels, _ = load_labelled(sources, options, vocab)
    if not texts:
        raise SentvaeError(f"{', '.join(sources)}: no usable sentence (the input is empty or blank)")
    if len(vocab):
        check_passes(labels, vocab, flag)
    return texts, labels


def corpus(texts: list[str], labels, vocab: LabelVocab, tokenizer, max_len: int, sources: list[str]):
    """A Corpus of the texts carrying their labels (None for a vocabulary without attributes)."""
    from sentvae.corpus import corpus_from_texts

    c = corpus_from_texts(texts, tokenizer, max_len)
    c.source = ", ".join(sources)
    c.labels = labels if len(vocab) else None
    return c


def tokenizer_texts(texts: list[str], sources: list[str], max_bytes: int):
    """The texts for training a tokenizer, a sentence too long for it refused (as read_texts does)."""
    for i, text in enumerate(texts):
        if len(text) > max_bytes // 4 and len(text.encode("utf-8")) > max_bytes:
            raise SentvaeError(f"{', '.join(sources)}: sentence {i + 1} has {len(text.encode('utf-8')):,} bytes, "
                               f"longer than a tokenizer can be trained on ({max_bytes:,}); split it into sentences")
        yield text


def eval_options(model_vocab: LabelVocab, sources: list[str], first_token: str | None, text_field: str,
                 encoding: str, encoding_errors: str) -> LabelOptions:
    """How `eval`/`plot` read a labelled model's data: the .jsonl/.csv fields named as its attributes,
    PATH@NAME=VALUE suffixes, or --label-first-token; rows without one are unlabelled."""
    if first_token is not None and first_token not in model_vocab.attributes:
        raise SentvaeError(f"--label-first-token {first_token}: the model's labels are "
                           f"{', '.join(model_vocab.attributes)}")
    return LabelOptions(fields=tuple(model_vocab.attributes), first_token=first_token, text_field=text_field,
                        encoding=encoding, encoding_errors=encoding_errors)
