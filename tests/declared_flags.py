"""Which declared option (sentvae/options.py) each command-line flag of each command is.

Derived from the two sides independently: the click command behind `sentvae` (every command
registered) and the declarations (sentvae.config.CONFIGS, sentvae.command_config.COMMAND_CONFIGS).
A flag is a declaration when it is spelled as the declaration's flag and its help, without the
"[default: ...]" that --help adds, is the declaration's help. So the list of options and their
domains that tests/test_option_domains.py drives follows from the code: a new option, or a new
command, is covered without a test being edited. tests/test_options.py checks that every flag
taking a number or a choice is exactly one declaration this way, and every declaration a flag.
"""

from enum import Enum
from typing import Literal, get_origin

from sentvae.command_config import COMMAND_CONFIGS
from sentvae.config import CONFIGS
from sentvae.options import declared, flag_of

DECLARATIONS = [(cls, f, opt) for cls in (*CONFIGS, *COMMAND_CONFIGS) for f, opt in declared(cls) if opt.cli]


def commands() -> dict:
    """{command name: its click command}, every command registered."""
    from sentvae.cli import build_command
    root = build_command()
    return dict(root.commands)


def takes_a_value_with_a_domain(param) -> bool:
    """An option whose value is a number or one of a few words (not a file, a field name, a device
    or an on/off flag: those are checked where they are used)."""
    if param.param_type_name != "option" or getattr(param, "is_flag", False):
        return False
    kind = param.type_descriptor.annotation          # typer's own click: the Python type it converts to
    return kind in (int, float) or get_origin(kind) is Literal or (isinstance(kind, type) and issubclass(kind, Enum))


def _own_help(param) -> str:
    return (param.help or "").split(" \\[default:")[0].strip()


def declarations_of(param) -> list:
    """The declarations (cls, field, Opt) that a click option is."""
    spellings = set(param.opts) | set(param.secondary_opts)
    return [(cls, f, opt) for cls, f, opt in DECLARATIONS
            if flag_of(f.name, opt) in spellings and opt.help == _own_help(param)]


def declared_flags() -> list:
    """(command name, the flag as messages name it, Domain) for every declared option of every
    command, in the order of `sentvae --help`."""
    rows = []
    for name, cmd in commands().items():
        for param in cmd.params:
            found = declarations_of(param)
            if len(found) == 1:
                _, f, opt = found[0]
                rows.append((name, flag_of(f.name, opt), opt.domain))
    return rows
