"""The rule judge of the bundled corpus: a sentence's tense, aspect, mood and negation read from
its words alone, by the grammar's rules (data/make_corpus.py), without the generator's choices.

It judges control: a model asked for a "future" "wh-question" is checked by these rules, not by
the model itself. It reads any string; one the grammar cannot have made gets its best guess.

    judge("did the dogs chase two cats ?")
    -> {"tense": "past", "aspect": "simple", "mood": "yes-no", "negation": "no"}

Where the words do not decide (only "read" is both a present and a past form: "they read a
book ."), a time adverb of the clause ("yesterday", "every day") decides, else "past", the
grammar's more frequent tense; `ambiguous(text)` says when that guess was made.

    python data/corpus_labels.py data/valid.jsonl   # agreement with the generator's labels
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_corpus as g  # noqa: E402 - the grammar's lexicon, beside this file

VERBS = sorted(set(g.TRANSITIVE) | set(g.INTRANSITIVE) | set(g.MOTION) | set(g.DITRANSITIVE))
PRESENT = {g.third(v) for v in VERBS} | set(VERBS)
PAST = {g.past(v) for v in VERBS}
THIRD = {g.third(v) for v in VERBS}
ING = {g.ing(v) for v in VERBS}          # a set, not a suffix: "king" and "ring" are nouns
NOUNS = {n for words in g.KINDS.values() for n in words}
NOUNS |= {g.plural(n) for n in NOUNS}
ADJS = set(g.ADJ_ANIMATE) | set(g.ADJ_THING) | set(g.ADJ_PLACE)
DETS = {"the", "some", "two", "three", "many", "my", "his", "her", "these", "a", "an", "this", "that",
        "our", "every"}
SUBJECT_PRONOUNS = {"i", "he", "she", "we", "they", "you"}
OBJECT_PRONOUNS = {"me", "him", "her", "us", "them", "you"}
NAMES = set(g.NAMES)
CONJUNCTIONS = {"and", "but", "because", "so", "when"}
BE = {"am": "present", "is": "present", "are": "present", "was": "past", "were": "past"}
TIME_WORDS = {tense: [w.split() for w in ws] for tense, ws in g.TIME.items()}


def _noun_phrase(words, i, subject, depth=0):
    """The index just past the noun phrase starting at words[i] (the grammar's Grammar.np)."""
    w = words[i]
    if w in NAMES or (subject and w in SUBJECT_PRONOUNS):
        return i + 1
    nxt = words[i + 1] if i + 1 < len(words) else ""
    if not subject and w in OBJECT_PRONOUNS and not (w == "her" and (nxt in ADJS or nxt in NOUNS)):
        return i + 1   # "her" is a pronoun unless a noun (or its adjectives) follows
    j = i + 1 if w in DETS else i
    while j < len(words) and words[j] in ADJS:
        j += 1
    j += 1                                       # the noun
    if depth > 0 or j >= len(words):
        return j
    if words[j] in ("who", "that"):
        after = words[j + 1] if j + 1 < len(words) else ""
        if after in DETS or after in NAMES or after in SUBJECT_PRONOUNS:
            # object relative: "the dog that the girl watched"
            return _noun_phrase(words, j + 1, subject=True, depth=1) + 1
        # subject relative: "the man who reads a book"
        return _noun_phrase(words, j + 2, subject=False, depth=1)
    if words[j] == "with":                       # "with a big coat"
        return j + 4
    return j


def _subject_end(words, i):
    """Where the subject starting at words[i] ends; the end of the words for a broken one."""
    try:
        return _noun_phrase(words, i, subject=True)
    except IndexError:     # text the grammar cannot make (a model's output): no verb group found
        return len(words)


def _aspect_after(words, j):
    """After a form of "be": progressive if an -ing verb follows (past a "not"), else a copula."""
    if j < len(words) and words[j] == "not":
        j += 1
    return "progressive" if j < len(words) and words[j] in ING else "simple"


def _bare_verb_tense(verb, clause):
    """present or past for a one-word verb group; None where the form is both ("read")."""
    if verb in PAST and verb not in PRESENT:
        return "past"
    if verb in PRESENT and verb not in PAST:
        return "present"
    for tense in ("past", "present"):
        for adverb in TIME_WORDS[tense]:
            n = len(adverb)
            if any(clause[k:k + n] == adverb for k in range(len(clause) - n + 1)):
                return tense
    return None


def _verb_group(words, j, clause):
    """(tense, aspect, decided) of the verb group starting at words[j]."""
    w = words[j] if j < len(words) else ""
    if w == "will":
        return "future", "simple", True
    if w == "did":
        return "past", "simple", True
    if w in ("do", "does"):
        return "present", "simple", True
    if w in ("has", "have"):
        return "present", "perfect", True
    if w in BE:
        return BE[w], _aspect_after(words, j + 1), True
    tense = _bare_verb_tense(w, clause)
    return tense or "past", "simple", tense is not None


def _judge(text):
    words = text.split()
    if not words:
        return {"tense": "present", "aspect": "simple", "mood": "statement", "negation": "no"}, False
    negation = "yes" if "not" in words else "no"
    question = words[-1] == "?"
    first = words[0]
    if question and first in ("who", "where", "what"):
        mood = "wh-question"
        second = words[1] if len(words) > 1 else ""
        # The grammar's wh-questions are all simple; a model's need not be ("who was making a box ?",
        # "where is a wolf coming ?"): a form of "be" or "have" is read as in a yes-no question.
        if second in BE:
            # "who/what is eating ..." asks for the subject (the verb follows); "who is the girl
            # watching ?", "where is a wolf coming ?" for something else (a subject comes first)
            third = words[2] if len(words) > 2 else ""
            after = 2 if third in ING or third == "not" or third == "?" else _subject_end(words, 2)
            return {"tense": BE[second], "aspect": _aspect_after(words, after), "mood": mood,
                    "negation": negation}, True
        if second in ("has", "have"):
            return {"tense": "present", "aspect": "perfect", "mood": mood, "negation": negation}, True
        if first == "who":   # "who" + a 3rd-person verb group: "reads" is present, "read" past
            tense = {"will": "future", "did": "past", "does": "present"}.get(
                second, "present" if second in THIRD else "past")
        else:                # "where/what" + an auxiliary: "did the girl go ..."
            tense = {"will": "future", "did": "past"}.get(second, "present")
        return {"tense": tense, "aspect": "simple", "mood": mood, "negation": negation}, True
    if question:
        mood = "yes-no"
        if first in BE:      # "is the man walking ..." / "is the man happy ?"
            j = _subject_end(words, 1)
            tense, aspect, decided = BE[first], _aspect_after(words, j), True
        else:
            tense, aspect, decided = _verb_group(words, 0, words)
        return {"tense": tense, "aspect": aspect, "mood": mood, "negation": negation}, decided
    if first == "there":
        return {"tense": BE.get(words[1], "present") if len(words) > 1 else "present", "aspect": "simple",
                "mood": "statement", "negation": negation}, True
    # a statement: the first clause's verb group, found past its subject (and the subject's
    # own relative clause, whose verb is not the sentence's)
    end = next((k for k, w in enumerate(words) if w in CONJUNCTIONS), len(words))
    j = _subject_end(words, 0)
    tense, aspect, decided = _verb_group(words, j, words[:end])
    return {"tense": tense, "aspect": aspect, "mood": "statement", "negation": negation}, decided


def judge(text: str) -> dict:
    """{"tense", "aspect", "mood", "negation"} of one sentence, by the grammar's rules."""
    return _judge(text)[0]


def ambiguous(text: str) -> bool:
    """True where the words do not decide the tense (judge() then guessed)."""
    return not _judge(text)[1]


def agreement(path) -> dict:
    """Per attribute: how many rows of a labelled .jsonl the judge agrees with, of how many,
    and how many of the rows it got wrong were ambiguous."""
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line]
    out = {}
    for attr in g.LABELS:
        wrong = [r["text"] for r in rows if judge(r["text"])[attr] != r[attr]]
        out[attr] = {"agree": len(rows) - len(wrong), "rows": len(rows),
                     "wrong_ambiguous": sum(ambiguous(t) for t in wrong), "wrong": wrong}
    return out


if __name__ == "__main__":
    for p in sys.argv[1:]:
        for attr, a in agreement(p).items():
            print(f"{p} {attr}: {a['agree']}/{a['rows']} agree; of the {len(a['wrong'])} others, "
                  f"{a['wrong_ambiguous']} ambiguous")
            for t in a["wrong"][:5]:
                print("   ", t)
