"""Command-line option types shared by the command modules (cli.py, cli_generate.py, ...), and the
flags generated from the declared options (sentvae/options.py): `with_options` for a whole config
class, `declared_option` for one option in a command's own signature.

Only typer and the standard library here: `sentvae --help` must import no torch.
"""

import inspect
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from sentvae.command_config import GenerationConfig
from sentvae.config import PANELS, RunConfig
from sentvae.options import declared

DEFAULT_OUT = Path("checkpoints")
DEFAULT_CKPT = DEFAULT_OUT / "best.pt"


Checkpoint = Annotated[Path, typer.Option("--checkpoint", "-c", help="checkpoint to use", show_default=True)]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar or table")]
AsJson = Annotated[bool, typer.Option("--json", help="JSON lines instead of plain text")]
InputFile = Annotated[Optional[str], typer.Option("--input", "-i", help="read lines from this file (- for stdin)")]
Texts = Annotated[Optional[list[str]], typer.Argument(help="sentences; none: -i FILE or stdin")]
# a labelled model's labels (sentvae/label_codes.py)
LABELS = "Labels"
Label = Annotated[Optional[list[str]], typer.Option("--label", metavar="NAME=VALUE", rich_help_panel=LABELS,
                                                    help="a labelled model: decode with this value of the attribute NAME (repeatable)")]
LabelFirstToken = Annotated[Optional[str], typer.Option(metavar="NAME", rich_help_panel=LABELS,
                                                        help="a labelled model's data: text files hold 'VALUE sentence' lines, the first token NAME's value")]
Encoding = Annotated[str, typer.Option(rich_help_panel=LABELS, help="the text encoding of labelled --data (latin-1 for MR)")]


def load(checkpoint: Path, device: str | None):
    """The checkpoint as a sentvae.api.Model on `device` (None: --device's default); imports
    torch: call it inside a command."""
    from sentvae.api import load as load_model
    return load_model(checkpoint, device or RunConfig.device)


# --- flags generated from the declared options (sentvae/options.py, config.py, command_config.py)
def _annotated(f, opt, panel):
    """The typer annotation of one declared option: its flags, help with the default, panel and
    choices. Its default is None, so a command sees whether it was given."""
    d = opt.domain
    kind = Literal[d.choices] if d.choices else {list: list[str], tuple: str}.get(d.kind, d.kind)   # tuple: 1,2,4
    shown = opt.default_help or ("" if d.kind is bool and "/" not in "".join(opt.flags) or f.default is None
                                 else f.default)
    help_ = opt.help + (f" \\[default: {shown}]" if shown != "" else "")
    info = typer.Option(*(opt.flags or ()), help=help_, rich_help_panel=panel, show_default=False,
                        metavar=opt.metavar or None)
    return Annotated[Optional[kind], info]


def declared_option(cls, name: str, panel: str | None = "declared"):
    """The annotation of one declared option of a config class, for a command's signature:
    `n: declared_option(GenerationConfig, "n") = None`. panel: where this command's --help lists
    it, if not in the declared panel (a `train` option taken by eval: not in train's panels)."""
    return next(_annotated(f, opt, opt.panel if panel == "declared" else panel)
                for f, opt in declared(cls) if f.name == name)


# options declared in sentvae/config.py and command_config.py that several commands take (the
# decoding flags come with @with_options(DecodeConfig)); every default is None: not given
EncErr = declared_option(RunConfig, "encoding_errors", panel=None)       # the train options' own
TextField = declared_option(RunConfig, "text_field", panel=None)
Device = declared_option(RunConfig, "device", panel=None)
Seed = declared_option(GenerationConfig, "seed")
BatchSize = declared_option(GenerationConfig, "batch_size")
PosteriorOpt = declared_option(GenerationConfig, "posterior")


def parameters(*classes, names: tuple | None = None) -> list[inspect.Parameter]:
    """One keyword parameter per declared option of the config classes (those with a flag; only
    `names`, if given), annotated for typer (_annotated). Grouped by panel, in the order of
    config.PANELS."""
    params = []
    for cls in classes:
        for f, opt in declared(cls):
            if not opt.cli or (names is not None and f.name not in names):
                continue
            params.append((PANELS.index(opt.panel) if opt.panel in PANELS else len(PANELS),
                           inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                             annotation=_annotated(f, opt, opt.panel))))
    return [p for _, p in sorted(params, key=lambda item: item[0])]


def with_options(*classes, names: tuple | None = None):
    """Decorate a command `fn(..., **options)`: typer sees the declared options of `classes` as
    its flags, and `fn` gets them in **options (None where not given)."""
    def wrap(fn):
        sig = inspect.signature(fn)
        own = [p for p in sig.parameters.values() if p.kind != inspect.Parameter.VAR_KEYWORD]
        first = [p for p in own if p.kind != inspect.Parameter.KEYWORD_ONLY]     # --help lists these first,
        last = [p for p in own if p.kind == inspect.Parameter.KEYWORD_ONLY]      # and these after the options
        fn.__signature__ = sig.replace(parameters=first + parameters(*classes, names=names) + last)
        return fn
    return wrap
