"""Scores for a set of generated sentences (transfers, conditioned samples), none of them the
model's own: label accuracy by a judge, BLEU against human references and self-BLEU against the
sources (sacrebleu), distinct-1/2, and fluency as perplexity under a separately trained LM.

Texts are compared after one normalisation, `normalize`, applied alike to hypotheses, sources
and references: the Yelp corpus (Shen et al. 2017) is lower-cased and tokenized PTB-style
("it 's", "does n't", "$ _num_", "..."), while Li et al. 2018's human rewrites are plain text
("It's gotten better."). normalize lower-cases, splits the clitics ('s 'm 're 've 'll 'd n't)
and the punctuation off their words (not inside numbers: "6:30", "5.50"; "-" and "/" stay in
words: "so-so"), writes every double quote (`` '' ") as ", and collapses spaces. It brings a
rewrite to the corpus's tokens ("It's small, isn't it?" -> "it 's small , is n't it ?") and
leaves corpus text nearly as it is: of the 1,000 Yelp test sentences it changes 8, 7 by their
quotes and 1 by "dr." -> "dr .". Numbers are not mapped to the corpus's _num_ (the test
sentences keep their digits).
"""

import math
import re
from collections import Counter

_CLITIC = re.compile(r"(?<=\w)('s|'m|'re|'ve|'ll|'d)\b")
_NT = re.compile(r"(?<=\w)n't\b")
_QUOTES = re.compile(r"``|''|\"")
_DOTS = re.compile(r"\.{2,}")
# punctuation split off its word; . , : only where not between two digits ("6:30", "1,000", "5.50")
_PUNCT = re.compile(r"([!?;()\[\]{}$%&\"])|(?<!\d)([.,:])|([.,:])(?!\d)")
NORMALIZATION = "lowercase, PTB-style clitics and punctuation split, quotes as \" (sentvae.scoring.normalize)"


def normalize(text: str) -> str:
    """The one normalisation applied to every text before BLEU, distinct-n and the judge."""
    t = text.lower()
    t = _QUOTES.sub(' " ', t)
    t = _NT.sub(" n't", t)
    t = _CLITIC.sub(r" \1", t)
    # "..." is one token in the corpus; mark runs of dots so the split below leaves them whole
    t = _DOTS.sub(lambda m: f" \x00{len(m.group())} ", t)
    t = _PUNCT.sub(lambda m: f" {m.group()} ", t)
    t = re.sub(r"\x00(\d+)", lambda m: "." * int(m.group(1)), t)
    return " ".join(t.split())


def corpus_bleu(hypotheses: list[str], references: list[str]) -> float:
    """sacrebleu corpus BLEU (0-100) of normalised texts, one reference each; sacrebleu's own
    13a tokenizer then changes nothing that matters (the text is tokenized already)."""
    from sentvae.latent import corpus_bleu as bleu   # checks the lengths, quiets sacrebleu
    return bleu([normalize(h) for h in hypotheses], [normalize(r) for r in references])["bleu"]


def bleu_signature() -> str:
    import sacrebleu
    return f"{sacrebleu.BLEU().get_signature()} after {NORMALIZATION}"


def distinct_n(texts: list[str], n: int) -> float:
    """Distinct n-grams over all n-grams of the set (Li et al. 2016's distinct-n), on the
    normalised whitespace tokens; 0.0 for a set without any n-gram."""
    grams: Counter = Counter()
    for text in texts:
        words = normalize(text).split()
        grams.update(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
    total = sum(grams.values())
    return len(grams) / total if total else 0.0


def label_accuracy(predicted: list[str], targets: list[str]) -> float:
    """The fraction of outputs whose predicted label is the target label."""
    if len(predicted) != len(targets):
        raise ValueError(f"accuracy needs as many predictions ({len(predicted)}) as targets ({len(targets)})")
    if not targets:
        raise ValueError("accuracy of an empty set")
    return sum(p == t for p, t in zip(predicted, targets)) / len(targets)


def fluency(lm, texts: list[str], max_tokens: int = 4000) -> dict:
    """Perplexity per word of the texts under a language model `lm` (a sentvae.Model; a
    --no-latent one gives its exact NLL with k=1), as sentvae eval reports it:
    exp(total NLL / (words + one end of sentence each)). Texts are normalised first, like every
    other score; blank ones (nothing to score) are left out and counted."""
    kept = [normalize(t) for t in texts]
    kept = [t for t in kept if t]
    if not kept:
        return {"ppl": math.nan, "sentences": 0, "blank": len(texts)}
    result = lm.evaluate(kept, k=1, max_tokens=max_tokens)
    return {"ppl": result.ppl, "sentences": len(kept), "blank": len(texts) - len(kept)}
