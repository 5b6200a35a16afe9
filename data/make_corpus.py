"""Make the bundled English corpus: data/{train,valid,test}.txt, and the same sentences with
the labels the grammar chose for them in data/{train,valid,test}.jsonl.

A small probabilistic grammar over a few hundred real English words. Verbs select
the kinds of subjects and objects that make sense (people read books, dogs bark,
birds fly), and sentences vary in tense (present, past, future, progressive,
perfect), polarity, mood (statements, yes/no and wh-questions), and carry
adjectives, prepositional phrases, relative clauses, adverbs and coordination.
Output is lower-cased and space-tokenized, one sentence per line.

Each .jsonl line is {"text", "tense", "aspect", "mood", "negation"} for the .txt line of the
same number (see LABELS): the generator records what it chose, it does not guess afterwards.
data/corpus_labels.py judges the same attributes from the words alone (the "rule judge").
The labels are recorded without drawing any random number, so the .txt files are exactly
those of the unlabelled generator.

Deterministic: the same seed always writes the same files.
    python data/make_corpus.py [--seed 1234] [--train 20000] [--valid 1000] [--test 1000]
"""

import argparse
import json
import random
from pathlib import Path

PEOPLE = ("man woman boy girl teacher doctor farmer student child king queen soldier "
          "sailor artist writer singer baker driver nurse pilot friend neighbor stranger "
          "captain hunter fisherman").split()
ANIMALS = "dog cat horse bird fox wolf bear mouse rabbit cow sheep lion owl duck goat pig frog".split()
FOOD = "apple bread cake soup cheese orange egg pie fish sandwich".split()
READABLE = "book letter map story newspaper poem note".split()
THINGS = ("ball box key bag hat coat ring cup lamp chair table bottle gift ticket picture "
          "flower rope stone bicycle car boat umbrella basket clock door window song").split()
PLACES = ("park garden river forest city village market school library kitchen station beach "
          "hill field church bridge shop office hospital harbor lake mountain farm castle museum").split()
NAMES = "john mary peter anna tom lucy james sarah david emma paul alice sam kate".split()
IRREGULAR_PLURAL = {"man": "men", "woman": "women", "child": "children", "mouse": "mice",
                    "sheep": "sheep", "fish": "fish", "fisherman": "fishermen", "wolf": "wolves"}

ADJ_ANIMATE = ("old young happy sad tall quiet angry little tired hungry brave clever kind strange "
               "lonely famous rich poor busy lazy careful friendly").split()
ADJ_THING = "big small old new red green blue little heavy cold warm dark bright strange beautiful broken".split()
ADJ_PLACE = "big small old quiet dark beautiful busy empty cold warm".split()
MANNER = "quickly slowly quietly happily carefully loudly suddenly".split()

# Verb lexicon: base -> (past, participle) for the irregular ones; the rest follow the rules.
IRREGULAR = {
    "see": ("saw", "seen"), "find": ("found", "found"), "take": ("took", "taken"),
    "read": ("read", "read"), "write": ("wrote", "written"), "buy": ("bought", "bought"),
    "sell": ("sold", "sold"), "build": ("built", "built"), "eat": ("ate", "eaten"),
    "meet": ("met", "met"), "hear": ("heard", "heard"), "forget": ("forgot", "forgotten"),
    "sleep": ("slept", "slept"), "run": ("ran", "run"), "swim": ("swam", "swum"),
    "fly": ("flew", "flown"), "sit": ("sat", "sat"), "leave": ("left", "left"),
    "go": ("went", "gone"), "drive": ("drove", "driven"), "bring": ("brought", "brought"),
    "give": ("gave", "given"), "sing": ("sang", "sung"), "make": ("made", "made"),
    "catch": ("caught", "caught"), "teach": ("taught", "taught"), "throw": ("threw", "thrown"),
    "tell": ("told", "told"), "know": ("knew", "known"), "lose": ("lost", "lost"),
    "hold": ("held", "held"), "keep": ("kept", "kept"), "break": ("broke", "broken"),
    "steal": ("stole", "stolen"), "come": ("came", "come"), "fall": ("fell", "fallen"),
}
STATIVE = {"like", "love", "know", "remember", "hear", "see"}
DOUBLE = {"run", "swim", "sit", "stop", "shop", "plan", "hug", "drop"}

ANIM = ("person", "animal")
TRANSITIVE = {  # verb: (subject kinds, object kinds)
    "see": (ANIM, ("person", "animal", "thing", "food")), "watch": (ANIM, ("person", "animal")),
    "find": (ANIM, ("thing", "readable", "food", "animal", "person")),
    "take": (("person",), ("thing", "readable", "food")), "carry": (ANIM, ("thing", "food", "readable")),
    "read": (("person",), ("readable",)), "write": (("person",), ("readable",)),
    "buy": (("person",), ("thing", "food", "readable")), "sell": (("person",), ("thing", "food", "readable")),
    "open": (("person",), ("box", "door", "window", "book", "letter", "bag", "bottle")),
    "paint": (("person",), ("picture", "door", "chair", "boat", "table", "box")),
    "build": (("person",), ("boat", "table", "chair", "box")), "cook": (("person",), ("food",)),
    "eat": (ANIM, ("food",)), "love": (ANIM, ("person", "animal", "food", "thing")),
    "like": (ANIM, ("person", "animal", "food", "thing", "readable")), "help": (ANIM, ("person", "animal")),
    "follow": (ANIM, ("person", "animal")), "call": (("person",), ("person", "animal")),
    "meet": (("person",), ("person",)), "chase": (ANIM, ("animal", "person", "ball")),
    "hear": (ANIM, ("song", "story", "person", "animal")), "catch": (ANIM, ("ball", "fish", "animal")),
    "lose": (("person",), ("thing", "readable")), "forget": (("person",), ("thing", "readable", "person")),
    "remember": (("person",), ("person", "story", "song", "place")), "hold": (("person",), ("thing", "animal")),
    "break": (ANIM, ("cup", "window", "lamp", "chair", "bottle", "clock", "box")),
    "steal": (ANIM, ("thing", "food")), "wash": (("person",), ("cup", "car", "dog", "coat", "hat", "bottle")),
    "fix": (("person",), ("car", "chair", "clock", "lamp", "bicycle", "door", "boat")),
    "throw": (("person",), ("ball", "stone", "key", "hat")), "teach": (("person",), ("person",)),
    "visit": (("person",), ("person", "place")), "make": (("person",), ("cake", "bread", "soup", "box", "hat")),
    "sing": (("person",), ("song",)), "bring": (ANIM, ("thing", "food", "readable")),
}
INTRANSITIVE = {
    "sleep": ANIM, "run": ANIM, "walk": ANIM, "laugh": ("person",), "cry": ("person",),
    "sing": ("person", "bird"), "dance": ("person",), "wait": ANIM, "smile": ("person",),
    "swim": ("person", "animal"), "fly": ("bird", "owl", "duck", "pilot"), "bark": ("dog",),
    "work": ("person",), "talk": ("person",), "sit": ANIM, "arrive": ("person",),
    "jump": ANIM, "play": ANIM, "fall": ANIM, "hide": ANIM,
}
MOTION = {"go": ANIM, "walk": ANIM, "run": ANIM, "drive": ("person",), "return": ("person",),
          "come": ANIM, "travel": ("person",)}
DITRANSITIVE = {"give": ("thing", "food", "readable"), "bring": ("thing", "food", "readable"),
                "tell": ("story",), "show": ("thing", "readable", "picture"), "send": ("letter", "gift", "note")}
LOC_PREP = "in near behind outside at".split()
TIME = {"past": ["yesterday", "last night", "last week", "in the morning"],
        "present": ["every day", "every morning", "at night", "today"],
        "future": ["tomorrow", "next week", "tonight", "soon"]}

# The six verb-group forms the grammar knows, as (tense, aspect).
TENSE_ASPECT = {"present": ("present", "simple"), "past": ("past", "simple"),
                "future": ("future", "simple"), "progressive": ("present", "progressive"),
                "past_progressive": ("past", "progressive"), "perfect": ("present", "perfect")}
LABELS = {"tense": ("past", "present", "future"), "aspect": ("simple", "progressive", "perfect"),
          "mood": ("statement", "yes-no", "wh-question"), "negation": ("no", "yes")}

KINDS = {"person": PEOPLE, "animal": ANIMALS, "food": FOOD, "readable": READABLE,
         "thing": THINGS, "place": PLACES}


def kind_of(word):
    """Every category a noun belongs to: its own name and its broad kind."""
    kinds = {word}
    for kind, words in KINDS.items():
        if word in words:
            kinds.add(kind)
    if word in ("bird", "owl", "duck"):
        kinds.add("bird")
    return kinds


def nouns_for(kinds):
    out = []
    for k in kinds:
        out.extend(KINDS.get(k, [k]))
    return sorted(set(out))


def plural(noun):
    if noun in IRREGULAR_PLURAL:
        return IRREGULAR_PLURAL[noun]
    if noun.endswith(("s", "sh", "ch", "x")):
        return noun + "es"
    if noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def third(verb):
    if verb == "go":
        return "goes"
    if verb.endswith(("s", "sh", "ch", "x")):
        return verb + "es"
    if verb.endswith("y") and verb[-2] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


def past(verb):
    if verb in IRREGULAR:
        return IRREGULAR[verb][0]
    if verb.endswith("e"):
        return verb + "d"
    if verb.endswith("y") and verb[-2] not in "aeiou":
        return verb[:-1] + "ied"
    if verb in DOUBLE:
        return verb + verb[-1] + "ed"
    return verb + "ed"


def realized(verb, tense):
    """The form a verb group really takes: stative verbs have no progressive (see finite)."""
    if verb in STATIVE and tense.endswith("progressive"):
        return "present" if tense == "progressive" else "past"
    return tense


def participle(verb):
    return IRREGULAR[verb][1] if verb in IRREGULAR else past(verb)


def ing(verb):
    if verb in DOUBLE:
        return verb + verb[-1] + "ing"
    if verb.endswith("e") and not verb.endswith("ee"):
        return verb[:-1] + "ing"
    return verb + "ing"


class Grammar:
    def __init__(self, rng):
        self.r = rng
        self.clauses = []   # ((tense, aspect), negated) of each main clause of the sentence being made
        self.labels = {}    # the labels of the last sentence made (see LABELS)

    def chance(self, p):
        return self.r.random() < p

    # --- noun phrases: (words, agreement, kinds of the head); agreement is "1sg", "3sg" or "pl"
    def np(self, kinds, depth=0, subject=True):
        r = self.r
        nouns = nouns_for(kinds)
        if "person" in kinds and self.chance(0.15):
            return [r.choice(NAMES)], "3sg", {"person"}
        if "person" in kinds and self.chance(0.12):
            pron = r.choice(["i", "he", "she", "we", "they", "you"] if subject else
                            ["me", "him", "her", "us", "them", "you"])
            agr = {"i": "1sg", "he": "3sg", "she": "3sg", "me": "1sg", "him": "3sg", "her": "3sg"}
            return [pron], agr.get(pron, "pl"), {"person"}
        noun = r.choice(nouns)
        pl = self.chance(0.25)
        if "place" in kinds:  # "his market" reads oddly; places take plain determiners
            det = r.choice(["the", "some", "two", "these"] if pl else ["the", "the", "a", "this", "that"])
        else:
            det = r.choice(["the", "some", "two", "three", "many", "my", "his", "her", "these"] if pl else
                           ["the", "the", "a", "this", "that", "my", "his", "her", "our", "every"])
        kinds_n = kind_of(noun)
        adj_pool = ADJ_ANIMATE if kinds_n & {"person", "animal"} else (
            ADJ_PLACE if "place" in kinds_n else ADJ_THING)
        adjs = r.sample(adj_pool, k=1) if self.chance(0.35) else []
        if adjs and self.chance(0.15):
            second = r.choice(adj_pool)
            if second != adjs[0]:
                adjs.append(second)
        words = [det] + adjs + [plural(noun) if pl else noun]
        if det == "a" and words[1][0] in "aeiou":
            words[0] = "an"
        agr = "pl" if pl else "3sg"
        if depth == 0 and self.chance(0.12):
            words += self.np_modifier(kinds_n, agr, depth)
        return words, agr, kinds_n

    def np_modifier(self, kinds_n, agr, depth):
        r = self.r
        if kinds_n & {"person", "animal"} and self.chance(0.6):
            # relative clause with the head as subject: "the man who lives in the city"
            rel = "who" if "person" in kinds_n else "that"
            verb, objs = self.transitive_for(kinds_n)
            tense = r.choice(["past", "present"])
            obj = self.np(objs, depth + 1, subject=False)[0]
            return [rel] + self.finite(verb, tense, agr) + obj
        if "place" in kinds_n or self.chance(0.5):
            adj = r.choice(ADJ_THING)
            thing = r.choice(THINGS[:20])
            return ["with", "an" if adj[0] in "aeiou" else "a", adj, thing]
        # object relative: "the book that the girl read"
        subj, sagr, _ = self.np(("person",), depth + 1)
        verbs = [v for v, (s, o) in TRANSITIVE.items()
                 if "person" in s and (set(o) & kinds_n)]
        if not verbs:
            return []
        return ["that"] + subj + self.finite(r.choice(verbs), "past", sagr)

    def transitive_for(self, subj_kinds):
        verbs = [v for v, (s, _) in TRANSITIVE.items() if set(s) & subj_kinds]
        verb = self.r.choice(verbs)
        return verb, TRANSITIVE[verb][1]

    def place(self):
        return self.np(("place",), depth=1, subject=False)[0]

    # --- verb groups
    def finite(self, verb, tense, agr, neg=False):
        if verb in STATIVE and tense.endswith("progressive"):
            tense = "present" if tense == "progressive" else "past"  # "they are liking" is not English
        be_pres = {"1sg": "am", "3sg": "is", "pl": "are"}[agr]
        be_past = "were" if agr == "pl" else "was"
        no = ["not"] if neg else []
        if tense == "present":
            if neg:
                return ["does" if agr == "3sg" else "do", "not", verb]
            return [third(verb) if agr == "3sg" else verb]
        if tense == "past":
            return ["did", "not", verb] if neg else [past(verb)]
        if tense == "future":
            return ["will"] + no + [verb]
        if tense == "progressive":
            return [be_pres] + no + [ing(verb)]
        if tense == "past_progressive":
            return [be_past] + no + [ing(verb)]
        have = "has" if agr == "3sg" else "have"
        return [have] + no + [participle(verb)]

    def question(self, verb, tense, agr, subj):
        """A yes/no question: auxiliary, subject, the rest of the verb group."""
        if tense == "present":
            return ["does" if agr == "3sg" else "do"] + subj + [verb]
        if tense == "past":
            return ["did"] + subj + [verb]
        if tense == "future":
            return ["will"] + subj + [verb]
        if verb in STATIVE and tense.endswith("progressive"):
            tense = "present" if tense == "progressive" else "past"
            return self.question(verb, tense, agr, subj)
        if tense in ("progressive", "past_progressive"):
            group = self.finite(verb, tense, agr)
            return [group[0]] + subj + group[1:]
        return ["has" if agr == "3sg" else "have"] + subj + [participle(verb)]

    def tense(self):
        return self.r.choices(["present", "past", "future", "progressive", "past_progressive", "perfect"],
                              weights=[25, 35, 15, 12, 6, 7])[0]

    def predicate(self, subj_kinds):
        """A verb and what follows it: (verb, complement words)."""
        r = self.r
        kind = r.choices(["trans", "intrans", "motion", "ditrans"], weights=[55, 20, 15, 10])[0]
        if kind == "trans":
            verb, objs = self.transitive_for(subj_kinds)
            obj = self.np(objs, subject=False)[0]
            rest = obj
        elif kind == "ditrans" and "person" in subj_kinds:
            verb = r.choice(sorted(DITRANSITIVE))
            obj = self.np(DITRANSITIVE[verb], depth=1, subject=False)[0]
            to = self.np(("person",), depth=1, subject=False)[0]
            rest = obj + ["to"] + to if self.chance(0.5) else to + obj
        elif kind == "motion":
            verbs = [v for v, s in MOTION.items() if set(s) & subj_kinds]
            verb = r.choice(verbs)
            rest = ["to"] + self.place() if self.chance(0.8) else ["home"]
        else:
            verbs = [v for v, s in INTRANSITIVE.items() if set(s) & subj_kinds]
            verb = r.choice(verbs)
            rest = []
        if kind != "motion" and self.chance(0.3):
            rest = rest + [r.choice(LOC_PREP)] + self.place()
        if self.chance(0.15):
            rest = rest + [r.choice(MANNER)]
        return verb, rest

    def subject(self):
        return self.np(("person",) if self.chance(0.65) else ("animal",))

    def time_adverb(self, tense):
        key = {"past": "past", "past_progressive": "past", "future": "future",
               "present": "present", "progressive": None, "perfect": None}[tense]
        if key and self.chance(0.2):
            return self.r.choice(TIME[key]).split()
        return []

    def clause(self, neg_p=0.15):
        subj, agr, kinds = self.subject()
        tense = self.tense()
        verb, rest = self.predicate(kinds)
        neg = self.chance(neg_p)  # drawn where the call's argument drew it: the same random sequence
        self.clauses.append((TENSE_ASPECT[realized(verb, tense)], neg))
        return subj + self.finite(verb, tense, agr, neg=neg) + rest + self.time_adverb(tense)

    def sentence(self):
        """A sentence's words; its labels in self.labels."""
        self.clauses = []
        words = self._sentence()
        if self.clauses:
            # a coordination is labelled by its first clause's verb group (the main clause of
            # "because"/"when"), and negated when either clause is
            (tense, aspect), _ = self.clauses[0]
            neg = any(n for _, n in self.clauses)
            self.labels.update(tense=tense, aspect=aspect, negation="yes" if neg else "no")
        return words

    def _sentence(self):
        r = self.r
        lab = self.labels
        lab.clear()
        lab["mood"] = "statement"
        form = r.choices(["decl", "yn", "wh", "copula", "there", "coord"], weights=[45, 14, 10, 13, 5, 13])[0]
        if form == "decl":
            return self.clause() + ["."]
        if form == "yn":
            subj, agr, kinds = self.subject()
            tense = self.tense()
            verb, rest = self.predicate(kinds)
            lab.update(zip(("tense", "aspect"), TENSE_ASPECT[realized(verb, tense)]))
            lab.update(mood="yes-no", negation="no")
            return self.question(verb, tense, agr, subj) + rest + ["?"]
        if form == "wh":
            tense = r.choice(["past", "present", "future"])
            lab.update(tense=tense, aspect="simple", mood="wh-question", negation="no")
            if self.chance(0.4):
                verb, objs = self.transitive_for({"person"})
                obj = self.np(objs, subject=False)[0]
                return ["who"] + self.finite(verb, tense, "3sg") + obj + ["?"]
            subj, agr, kinds = self.subject()
            if self.chance(0.5):
                verb = r.choice([v for v, s in MOTION.items() if set(s) & kinds])
                return ["where"] + self.question(verb, tense, agr, subj) + ["?"]
            verbs = [v for v, (s, o) in TRANSITIVE.items()
                     if set(s) & kinds and set(o) & {"thing", "food", "readable"}]
            return ["what"] + self.question(r.choice(verbs), tense, agr, subj) + ["?"]
        if form == "copula":
            subj, agr, kinds = self.subject()
            be = r.choice([{"1sg": "am", "3sg": "is", "pl": "are"}[agr], "was" if agr != "pl" else "were"])
            neg = ["not"] if self.chance(0.2) else []
            adj = r.choice(ADJ_ANIMATE)
            tail = [r.choice(LOC_PREP)] + self.place() if self.chance(0.35) else []
            lab.update(tense="past" if be in ("was", "were") else "present", aspect="simple",
                       negation="yes" if neg else "no")
            if self.chance(0.15):
                lab["mood"] = "yes-no"
                return [be] + subj + neg + [adj] + tail + ["?"]
            return subj + [be] + neg + [adj] + tail + ["."]
        if form == "there":
            noun = r.choice(ANIMALS + THINGS[:20])
            pl = self.chance(0.3)
            be = r.choice(["are", "were"] if pl else ["is", "was"])
            lab.update(tense="past" if be in ("was", "were") else "present", aspect="simple",
                       negation="no")
            np_words = [r.choice(["two", "some", "many"]), plural(noun)] if pl else [
                "an" if noun[0] in "aeiou" else "a", noun]
            return ["there", be] + np_words + [r.choice(["in", "near", "behind"])] + self.place() + ["."]
        first = self.clause(neg_p=0.1)
        conj = r.choice(["and", "but", "because", "so", "when"])
        second = self.clause(neg_p=0.2)
        return first + [conj] + second + ["."]


def generate_labelled(seed, n):
    """n distinct sentences with their labels: [(text, {attribute: value})]. A sentence made
    twice keeps the labels of its first making (the grammar can make one string two ways:
    "they read a book" is past or present)."""
    g = Grammar(random.Random(seed))
    seen = {}
    while len(seen) < n:
        words = g.sentence()
        if len(words) <= 30:
            seen.setdefault(" ".join(words), dict(g.labels))
    return list(seen.items())


def generate(seed, n):
    return [text for text, _ in generate_labelled(seed, n)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--train", type=int, default=20000)
    ap.add_argument("--valid", type=int, default=1000)
    ap.add_argument("--test", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = ap.parse_args()
    rows = generate_labelled(args.seed, args.train + args.valid + args.test)
    random.Random(args.seed + 1).shuffle(rows)
    sents = [text for text, _ in rows]
    splits = {"valid": rows[:args.valid], "test": rows[args.valid:args.valid + args.test],
              "train": rows[args.valid + args.test:]}
    for name, part in splits.items():
        (args.out / f"{name}.txt").write_text("\n".join(t for t, _ in part) + "\n", encoding="utf-8")
        jsonl = (json.dumps({"text": t, **{k: lab[k] for k in LABELS}}) for t, lab in part)
        (args.out / f"{name}.jsonl").write_text("\n".join(jsonl) + "\n", encoding="utf-8")
    vocab = {w for s in sents for w in s.split()}
    mean_len = sum(len(s.split()) for s in sents) / len(sents)
    print(f"wrote {len(sents)} sentences, {len(vocab)} word types, mean length {mean_len:.1f}")


if __name__ == "__main__":
    main()
