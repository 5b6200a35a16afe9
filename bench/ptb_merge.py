"""Merge the ten parts of a full-test evaluation that `FULL=1 bench/ptb.sh ROW` made (part r: the
test lines with line number % 10 == r, so that each part can run, or be resumed, on its own):

    .venv/bin/python bench/ptb_merge.py RUNDIR NAME TEST_FILE

reads RUNDIR/NAME-part{0..9}.json and .sentences.jsonl and writes RUNDIR/NAME.json and
RUNDIR/NAME.sentences.jsonl, the rows back in the test file's order (index = its line - 1), so
that they pair with another row's whole-test evaluation sentence by sentence. The summary is
computed from the rows by the function `sentvae eval` uses (sentvae.evaluate.summarize); MI and AU from
RUNDIR/eval-test.json (they do not depend on K). Each part drew its own noise: the estimate is as
valid as one made in one piece, though not bit-identical to it.

A per-sentence file is read as NAME.sentences.jsonl or, where only that is there, as
NAME.sentences.jsonl.gz: bench/results/ keeps them compressed."""

import gzip
import json
import os
import sys
from pathlib import Path

from sentvae.evaluate import summarize

PARTS = 10


def part_indices(r: int, n_lines: int) -> list[int]:
    """The 0-based test-file indices that part r holds, in its order (line number % PARTS == r)."""
    return [i for i in range(n_lines) if (i + 1) % PARTS == r]


def read_lines(path: Path) -> list[str]:
    """The lines of a .jsonl file, or of its .jsonl.gz where only that is there (bench/results)."""
    packed = path.with_name(path.name + ".gz")
    if not path.is_file() and packed.is_file():
        with gzip.open(packed, "rt", encoding="utf-8") as f:
            return f.read().splitlines()
    return path.read_text().splitlines()


def rows_of(path: Path) -> list[dict]:
    return [json.loads(x) for x in read_lines(path)]


def merge(run: Path, name: str, n_lines: int) -> dict:
    parts = {r: (json.loads((run / f"{name}-part{r}.json").read_text()),
                 rows_of(run / f"{name}-part{r}.sentences.jsonl")) for r in range(PARTS)}
    best = run / "best.pt"
    for r in range(PARTS):
        if best.is_file() and best.stat().st_mtime > (run / f"{name}-part{r}.json").stat().st_mtime:
            raise SystemExit(f"ptb_merge: {best} is newer than {name}-part{r}: evaluate that part again")
    K = {s["iw_samples"] for s, _ in parts.values()}
    if len(K) != 1:
        raise SystemExit(f"ptb_merge: the parts of {run}/{name} differ in K: {sorted(K)}")
    K = K.pop()
    # Compared by file name: each part records the path as its command line gave it (absolute
    # from ptb.sh, relative from a hand-run eval in the run dir), and the mtime check above
    # already guards against a best.pt rewritten between parts.
    ckpts = {Path(s["checkpoint"]).name for s, _ in parts.values()}
    if len(ckpts) != 1:
        raise SystemExit(f"ptb_merge: the parts of {run}/{name} come from different checkpoints: {sorted(ckpts)}")
    rows: list = [None] * n_lines
    for r, (_, part) in parts.items():
        lines = part_indices(r, n_lines)
        if len(lines) != len(part):
            raise SystemExit(f"ptb_merge: {run}/{name}-part{r} has {len(part)} sentences, not {len(lines)}")
        for i, row in zip(lines, part):
            rows[i] = {**row, "index": i}
    whole = json.loads((run / "eval-test.json").read_text())
    summary = {**summarize({k: [r[k] for r in rows] for k in ("words", "elbo", "iw_nll", "ess", "kl")}, K),
               "mi": whole["mi"], "au": whole["au"], "latent": whole["latent"], "iw_samples": K,
               "checkpoint": ckpts.pop(), "merged_from": PARTS}
    for target, text in ((run / f"{name}.sentences.jsonl", "".join(json.dumps(r) + "\n" for r in rows)),
                         (run / f"{name}.json", json.dumps(summary) + "\n")):
        tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")   # two calls may merge at once
        tmp.write_text(text)
        os.replace(tmp, target)
    return summary


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__.split("\n\n")[1])
    run, name, test = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    print(json.dumps(merge(run, name, len(test.read_text().splitlines()))))
