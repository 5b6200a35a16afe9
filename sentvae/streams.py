"""Pipeline input and output: text lines from arguments, a file or stdin, in batches, and
JSON lines of latent codes. Streams: memory stays flat however long the input is.

Blank input lines are kept in place (they come out as blank lines, or as null codes), so
output line i always belongs to input line i.
"""

import json
import sys
from collections.abc import Iterator
from itertools import islice

from sentvae.codes import check_code
from sentvae.data import iter_lines
from sentvae.errors import SentvaeError


def text_source(texts: list[str] | None, input_file: str | None, encoding_errors: str = "strict",
                command: str = "") -> Iterator[str]:
    """Lines from arguments, else -i FILE ('-' for stdin), else stdin when it is not a terminal."""
    if texts and input_file:
        raise SentvaeError(f"{command}: give sentences as arguments or -i FILE, not both")
    if texts:
        return iter(texts)
    if input_file is None:
        if sys.stdin is None or sys.stdin.isatty():
            raise SentvaeError(f"{command}: give sentences as arguments, -i FILE, or pipe text on stdin")
        input_file = "-"
    return (text for _, text in iter_lines(input_file, encoding_errors, keep_blank=True))


def source_name(texts: list[str] | None, input_file: str | None) -> str:
    if texts:
        return "arguments"
    return "<stdin>" if input_file in (None, "-") else input_file


def batches(items: Iterator, size: int) -> Iterator[list]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def code_source(input_file: str | None, dim: int, labels: bool = False, check=None) -> Iterator:
    """Latent codes from JSON lines with "z" (or "mu"): a list of `dim` numbers, or null. With
    labels (a labelled model's): (code, (where, the line's "label" or None)) for each code.
    check(code, where): the model's own test of a code (a categorical part on the simplex)."""
    if input_file is None and (sys.stdin is None or sys.stdin.isatty()):
        raise SentvaeError("decode: give -i FILE or pipe JSON lines on stdin")
    path = input_file or "-"
    name = "<stdin>" if path == "-" else path
    for lineno, text in iter_lines(path, "strict", keep_blank=True, lenient=False):
        if not text:
            yield None
            continue
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError) as e:    # also an integer of 5,000 digits, [[[[...
            raise SentvaeError(f"{name} line {lineno}: not JSON "
                               f"({getattr(e, 'msg', None) or type(e).__name__})") from None
        key = "z" if isinstance(obj, dict) and "z" in obj else "mu"
        if not isinstance(obj, dict) or key not in obj:
            raise SentvaeError(f"{name} line {lineno}: expected a JSON object with \"z\" or \"mu\"")
        z = obj[key]
        if z is None:
            yield None
            continue
        code = check_code(z, dim, f"{name} line {lineno}: \"{key}\"")
        if check is not None:
            check(code, f"{name} line {lineno}: \"{key}\"")
        yield (code, (f"{name} line {lineno}", obj.get("label"))) if labels else code


class Held:
    """stdout for in-place output: the lines answering blank input (a blank line, a null code)
    are held back until a line answering real input is written, so input that turns out blank
    throughout is refused with nothing printed, and line i still answers input line i. Runs of
    one held line are kept as counts: a million blank lines cost no memory."""

    def __init__(self):
        self.runs: list[list] = []            # [line, times], in order
        self.real = False                     # a line answering real input has been written

    def write(self, line: str, real: bool) -> None:
        if not (real or self.real):
            if self.runs and self.runs[-1][0] == line:
                self.runs[-1][1] += 1
            else:
                self.runs.append([line, 1])
            return
        for held, times in self.runs:
            for _ in range(times):
                sys.stdout.write(held + "\n")
        self.runs = []
        self.real = True
        sys.stdout.write(line + "\n")


def emit(line: str) -> None:
    sys.stdout.write(line + "\n")


def emit_json(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
