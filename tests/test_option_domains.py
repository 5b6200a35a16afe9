"""Property: every command refuses every value outside an option's declared domain the same way.

For each command and each of its options that takes a number or a choice (derived from the
declarations, tests/declared_flags.py: a new option or command is covered by itself), hypothesis
generates values outside the declared domain: NaN, +-inf, integers beyond 64 bits, values below
the lower or above the upper bound (negative counts, 0 where >= 1), floats where an integer
belongs, words where a number belongs, words not among the choices. Each run must give exit 2,
exactly one line on stderr naming the option, no traceback, nothing on stdout, and the working
folder, which holds a finished tiny run (the output folder of `train --overwrite`, `tokenize -o`,
`eval --per-sentence`, `plot -o`), byte for byte as it was.
"""

import hashlib
import math
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import run_cli
from declared_flags import commands, declared_flags

SENTENCES = "the old man read a book .\ndid the dogs chase two cats ?\na cat sat on the mat .\n"

# a valid invocation of each command that writes into the working folder where it can; the bad
# option comes last (click: the last of a repeated option wins)
BASE = {
    "train": ["train", "--data", "text.txt", "--tokenizer", "run/tokenizer.model", "--out", "run", "--overwrite",
              "--max-steps", "1", "-q"],
    "tokenize": ["tokenize", "text.txt", "-o", "run/tokenizer.model"],
    "eval": ["eval", "-c", "run/best.pt", "-d", "text.txt", "--per-sentence", "run/per.jsonl", "-q"],
    "sample": ["sample", "-c", "run/best.pt"],
    "interpolate": ["interpolate", "the old man read a book .", "a cat sat on the mat .", "-c", "run/best.pt"],
    "reconstruct": ["reconstruct", "-i", "text.txt", "-c", "run/best.pt"],
    "encode": ["encode", "-i", "text.txt", "-c", "run/best.pt"],
    "decode": ["decode", "-i", "codes.jsonl", "-c", "run/best.pt"],
    "info": ["info", "run/best.pt"],
    "plot": ["plot", "run", "-o", "run/curves.png"],
    "clusters": ["clusters", "run/best.pt", "-d", "text.txt"],
    "probe": ["probe", "run/best.pt", "--task", "labelled.txt", "-q"],
    "classify": ["classify", "-i", "text.txt", "-c", "run/best.pt"],
}
CASES = [(command, flag, domain) for command, flag, domain in declared_flags()
         if domain.kind in (int, float) or domain.choices]
DOMAINS = sorted({domain for _, _, domain in CASES}, key=repr)


def test_every_command_is_driven():
    # a new command needs its valid invocation above; info has no option with a domain
    assert set(BASE) == set(commands())
    assert {c for c, _, _ in CASES} == set(BASE) - {"info"}


def _outside(domain, x) -> bool:
    """x is below the declared lower bound or above the upper one (the spec the test checks)."""
    return (domain.lo is not None and (x < domain.lo or (domain.lo_open and x == domain.lo))) or \
        (domain.hi is not None and (x > domain.hi or (domain.hi_open and x == domain.hi)))


WORDS = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12)
NOT_FINITE = st.sampled_from(["nan", "NaN", "inf", "-inf", "Infinity", "1e999", "-1e999"])


def bad_values(domain) -> st.SearchStrategy:
    """Command-line spellings of values outside `domain`."""
    if domain.choices:
        return WORDS.filter(lambda w: w not in domain.choices)
    finite = dict(allow_nan=False, allow_infinity=False)
    huge = st.integers(min_value=2 ** 64, max_value=2 ** 1400).flatmap(lambda i: st.sampled_from([i, -i]))
    ways = [NOT_FINITE, WORDS.filter(lambda w: not _is_number(w)),
            huge.filter(lambda i: _outside(domain, i) or not math.isfinite(float(str(i)))).map(str)]
    if domain.kind is int:
        ways.append(st.floats(**finite).filter(lambda x: not x.is_integer()).map(repr))      # a float for an int
        below = st.integers(max_value=domain.lo - 1) if domain.lo is not None else st.nothing()
        above = st.integers(min_value=domain.hi + 1) if domain.hi is not None else st.nothing()
    else:
        below = st.floats(max_value=domain.lo, **finite) if domain.lo is not None else st.nothing()
        above = st.floats(min_value=domain.hi, **finite) if domain.hi is not None else st.nothing()
    ways.append(st.one_of(below, above).filter(lambda x: _outside(domain, x)).map(repr))
    return st.one_of(ways)


def _is_number(word: str) -> bool:
    try:
        float(word)
        return True
    except ValueError:
        return False


def _spell(flag: str, value: str) -> list[str]:
    # --flag=VALUE and -fVALUE: a value starting with "-" is not read as another option
    return [f"{flag}={value}"] if flag.startswith("--") else [flag + value]


def _snapshot(folder: Path) -> dict:
    """Every file and folder below `folder` (hidden ones too), files by their bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def work(trained, tmp_path_factory):
    """A folder holding a finished tiny run (run/), a text file and a file of codes."""
    out, _ = trained
    w = tmp_path_factory.mktemp("domains")
    shutil.copytree(out, w / "run")
    assert {"last.pt", "best.pt", "metrics.jsonl", "tokenizer.model"} <= {p.name for p in (w / "run").iterdir()}
    (w / "text.txt").write_text(SENTENCES)
    (w / "codes.jsonl").write_text('{"z": [0, 0, 0, 0, 0, 0, 0, 0]}\n')
    (w / "labelled.txt").write_text("".join(f"{i % 2} {line}\n" for i, line in enumerate(SENTENCES.splitlines() * 4)))
    return w


@pytest.mark.parametrize("command,flag,domain", CASES, ids=[f"{c} {f}" for c, f, _ in CASES])
@settings(max_examples=6, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_a_value_outside_an_options_domain_is_one_line_exit_2_and_nothing_written(
        command, flag, domain, data, work, monkeypatch, capsys):
    value = data.draw(bad_values(domain), label=flag)
    monkeypatch.chdir(work)
    before = _snapshot(work)
    code, stdout, err = run_cli([*BASE[command], *_spell(flag, value)], monkeypatch, capsys)
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert flag in err, err
    assert stdout == "", stdout
    assert _snapshot(work) == before


@settings(max_examples=300, deadline=None, database=None)
@given(data=st.data())
def test_the_generated_values_are_outside_their_domains(data):
    # the generator checked against the domains' own check: a value in a domain would make the
    # property test fail for nothing (or, for train, start a run)
    from sentvae.errors import SentvaeError
    domain = data.draw(st.sampled_from(DOMAINS))
    value = data.draw(bad_values(domain))
    if domain.choices:
        assert value not in domain.choices
        return
    try:
        number = int(value) if domain.kind is int else float(value)      # as the command line parses it
    except ValueError:
        return                                                          # refused by the parser
    with pytest.raises(SentvaeError):
        domain.check("x", number)
