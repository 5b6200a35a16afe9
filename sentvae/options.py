"""Options declared once: each is a dataclass field carrying its help, panel and domain.

    latent: int = option(32, "latent size nz", Int(1, 4096), panel=MODEL)

The field is the declaration. Its dataclass (ModelConfig, TrainConfig, ...) checks every value
against the domain when it is built, from whatever source (a flag, a recipe file, a keyword of
the Python API, a checkpoint), and the message names the flag the user would type. The command
line's flags are generated from the same fields (sentvae.cli_options.parameters), so an option
has one name, one default, one help line and one domain everywhere.

No torch and no typer here: the library's configs import this module.
"""

import math
import numbers
import os
import re
from dataclasses import dataclass, field, fields

from sentvae.errors import SentvaeError

INT_LIMIT = 2 ** 31 - 1        # the largest count an option takes: C ints and torch sizes hold it
SEED_LIMIT = 2 ** 32 - 1       # numpy's and torch's seeds both take [0, 2**32)


def flag(name: str) -> str:
    """The command-line flag of an option: latent_dim -> --latent-dim (a flag stays as it is: -n)."""
    return name if name.startswith("-") else "--" + name.replace("_", "-")


@dataclass(frozen=True)
class Domain:
    """The values an option accepts. Numbers must be finite; ints are real ints (not bools)."""
    kind: type                      # int, float, str or bool
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False           # (lo, ...] rather than [lo, ...]
    hi_open: bool = False
    choices: tuple = ()
    optional: bool = False          # None is accepted, meaning "not set"

    def describe(self) -> str:
        if self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        if self.kind is bool:
            return "true or false"
        if self.kind is str:
            return "a string"
        if self.kind is list:
            return "a file name or a list of them"
        if self.kind is tuple:
            bound = f" in [{_num(self.lo)}, {_num(self.hi)}]" if self.hi is not None else f" >= {_num(self.lo)}"
            return f"integers{bound}, separated by commas (1,2,4)"
        if self.kind is dict:
            return "a table"
        what = "an integer" if self.kind is int else "a finite number"
        if self.lo is not None and self.hi is not None:
            return f"{what} in {'(' if self.lo_open else '['}{_num(self.lo)}, {_num(self.hi)}{')' if self.hi_open else ']'}"
        if self.lo is not None:
            return f"{what} {'>' if self.lo_open else '>='} {_num(self.lo)}"
        if self.hi is not None:
            return f"{what} {'<' if self.hi_open else '<='} {_num(self.hi)}"
        return what

    def check(self, name: str, value):
        """value, converted (an int given for a float), or SentvaeError naming the flag."""
        if value is None:
            if self.optional:
                return None
            raise SentvaeError(f"{flag(name)}: must be {self.describe()}, not None")
        bad = SentvaeError(f"{flag(name)}: must be {self.describe()}, not {_show(value)}")
        if self.kind is bool:
            if not isinstance(value, bool):
                raise bad
            return value
        if self.kind is str:
            if isinstance(value, os.PathLike) and not self.choices:
                value = os.fspath(value)
            if not isinstance(value, str) or (self.choices and value not in self.choices):
                raise bad
            return value
        if self.kind is list:           # of strings (file names): one, or several
            values = [value] if isinstance(value, (str, os.PathLike)) else value
            if not isinstance(values, (list, tuple)) or not values:
                raise bad
            values = [os.fspath(v) if isinstance(v, os.PathLike) else v for v in values]
            if not all(isinstance(v, str) for v in values):
                raise bad
            return values
        if self.kind is tuple:          # of ints: "1,2,4" (a flag, a recipe) or a sequence (the API, a checkpoint)
            return self._int_tuple(value, bad)
        if self.kind is dict:           # plain data (a checkpoint's label vocabulary); its owner checks inside
            if not isinstance(value, dict):
                raise bad
            return value
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise bad
        if self.kind is int:
            if not isinstance(value, numbers.Integral):
                raise bad
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise bad
        if self.lo is not None and (value < self.lo or (self.lo_open and value == self.lo)):
            raise bad
        if self.hi is not None and (value > self.hi or (self.hi_open and value == self.hi)):
            raise bad
        return value

    def _int_tuple(self, value, bad: SentvaeError) -> tuple:
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",")]
            if not all(re.fullmatch(r"[+-]?[0-9]+", p) for p in parts):
                raise bad
            value = [int(p) for p in parts]
        if not isinstance(value, (list, tuple)) or not value or \
                not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value):
            raise bad
        value = tuple(int(v) for v in value)
        if (self.lo is not None and min(value) < self.lo) or (self.hi is not None and max(value) > self.hi):
            raise bad
        return value


def _num(x) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def Int(lo: int | None = 0, hi: int | None = INT_LIMIT) -> Domain:
    return Domain(int, lo, hi)


def Float(lo: float | None = None, hi: float | None = None, lo_open: bool = False, hi_open: bool = False,
          optional: bool = False) -> Domain:
    return Domain(float, lo, hi, lo_open, hi_open, optional=optional)


def Choice(*values: str, optional: bool = False) -> Domain:
    return Domain(str, choices=tuple(values), optional=optional)


def IntList(lo: int = 1, hi: int | None = INT_LIMIT, optional: bool = False) -> Domain:
    """A non-empty list of integers in [lo, hi], written 1,2,4 on the command line (a tuple in configs)."""
    return Domain(tuple, lo, hi, optional=optional)


BOOL = Domain(bool)
TEXT = Domain(str)
SEED = Int(0, SEED_LIMIT)


@dataclass(frozen=True)
class Opt:
    help: str
    domain: Domain
    panel: str | None               # the --help panel; None: the command's plain "Options"
    flags: tuple = ()               # the command line's spellings; () = (flag(name),)
    cli: bool = True                # False: the field is set by the program, never by a flag
    tags: tuple = ()                # roles other code asks about (e.g. "decoder_shape")
    default_help: str = ""          # how --help shows the default, where its value would mislead
    metavar: str = ""               # how --help shows the value ("" : from its type)


def option(default, help: str, domain: Domain, *, panel: str | None, flags: tuple = (), cli: bool = True,
           tags: tuple = (), default_help: str = "", metavar: str = ""):
    """A dataclass field that declares an option (see the module docstring)."""
    return field(default=default, metadata={"option": Opt(help, domain, panel, flags, cli, tags, default_help, metavar)})


def declared(cls) -> list:
    """(field, Opt) for each declared option of a config class, in declaration order."""
    return [(f, f.metadata["option"]) for f in fields(cls) if "option" in f.metadata]


def domain_of(cls, name: str) -> Domain:
    """The domain of one declared option of a config class."""
    return next(opt.domain for f, opt in declared(cls) if f.name == name)


def tagged(cls, tag: str) -> tuple:
    """The names of a config class's options that carry `tag`."""
    return tuple(f.name for f, opt in declared(cls) if tag in opt.tags)


def flag_of(name: str, opt: Opt) -> str:
    """The flag that messages name: the first declared spelling (-n), else flag(name)."""
    return opt.flags[0].split("/")[0] if opt.flags else flag(name)


def check_declared(obj) -> None:
    """Check (and convert) every declared option of a config object against its domain."""
    for f, opt in declared(type(obj)):
        object.__setattr__(obj, f.name, opt.domain.check(flag_of(f.name, opt), getattr(obj, f.name)))


def require(cond: bool, name: str, what: str) -> None:
    """A rule between options: SentvaeError naming the flag `name` when cond is false."""
    if not cond:
        raise SentvaeError(f"{flag(name)}: {what}")
