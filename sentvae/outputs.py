"""The files a command writes beside a run folder (`tokenize -o`, `eval --per-sentence`): where
one may go, said before the work that makes it.

Such a file replaces what is at its path (a rerun writes its figures again), but never what a
user would lose by a slip of the keyboard: one of the command's own inputs, a file of a run
folder (only `train --overwrite` replaces those, and it sets the old run aside first), or a
checkpoint. A device or a FIFO is written into, not replaced (sentvae/atomic.py).
"""

import os
from pathlib import Path

from sentvae.atomic import output_problem
from sentvae.errors import SentvaeError
from sentvae.rundir import KEPT

ZIP = b"PK\x03\x04"          # how torch.save's files (a checkpoint) begin


def check_output(path, flag: str, inputs=(), make_folders: bool = False) -> Path:
    """path, or one line naming `flag`: inputs are (flag, path) pairs of what the command reads
    (flag "" for a positional argument)."""
    path = Path(path)
    problem = output_problem(path, make_folders) or replace_problem(path, inputs)
    if problem:
        raise SentvaeError(f"{flag} {path}: {problem}")
    return path


def replace_problem(path: Path, inputs=()) -> str:
    """Why the file at `path` must not be replaced ("" if it may, or if there is none)."""
    if not path.exists():
        return ""
    for flag, given in inputs:
        if given is not None and str(given) != "-" and Path(given).exists() and os.path.samefile(path, given):
            return f"is what this command reads ({f'{flag} ' if flag else ''}{given}): give another path"
    if path.is_file() and path.name in KEPT and any((path.parent / n).exists() for n in ("last.pt", "best.pt")):
        return f"is a file of the run in {path.parent} (only `sentvae train --overwrite` replaces those): " \
               "give another path"
    if path.is_file() and _starts_with(path, ZIP):
        return "holds a checkpoint (a zip archive): give another path"
    return ""


def _starts_with(path: Path, magic: bytes) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(magic)) == magic
    except OSError:
        return False
