"""Command-line option types shared by the command modules (cli.py, cli_generate.py).

Only typer and the standard library here: `sentvae --help` must import no torch.
"""

import inspect
from enum import Enum
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from sentvae.config import PANELS
from sentvae.options import declared

DEFAULT_OUT = Path("checkpoints")
DEFAULT_CKPT = DEFAULT_OUT / "best.pt"


class ModelType(str, Enum):
    unigram = "unigram"
    bpe = "bpe"
    word = "word"
    char = "char"


class EncodingErrors(str, Enum):
    strict = "strict"
    replace = "replace"


class Method(str, Enum):
    lerp = "lerp"
    slerp = "slerp"


class Posterior(str, Enum):
    mean = "mean"
    sample = "sample"


Checkpoint = Annotated[Path, typer.Option("--checkpoint", "-c", help="checkpoint to use", show_default=True)]
Device = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N")]
EncErr = Annotated[EncodingErrors, typer.Option(help="on invalid UTF-8: stop (strict) or use U+FFFD")]
TextField = Annotated[str, typer.Option(help="the field holding the text in .jsonl/.csv/hf: data")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar or table")]

# decoding options shared by every command that turns codes into sentences
DECODING = "Decoding"
MaxLen = Annotated[int, typer.Option(help="pieces per sentence at most", rich_help_panel=DECODING)]
Sample = Annotated[bool, typer.Option("--sample", help="ancestral sampling instead of greedy (implied by --temperature/--top-k/--top-p)", rich_help_panel=DECODING)]
Temperature = Annotated[Optional[float], typer.Option(help="sampling temperature \\[default: 1]", rich_help_panel=DECODING)]
TopK = Annotated[Optional[int], typer.Option(help="sample among the k most likely pieces", rich_help_panel=DECODING)]
TopP = Annotated[Optional[float], typer.Option(help="sample from the smallest set with probability >= p", rich_help_panel=DECODING)]
Beam = Annotated[int, typer.Option(help="beam search with this many beams (1: off)", rich_help_panel=DECODING)]
LengthPenalty = Annotated[float, typer.Option(help="beam: rank by log p / length ** this", rich_help_panel=DECODING)]
Seed = Annotated[int, typer.Option(help="random seed (prior codes, posterior samples, sampling)")]
BatchSize = Annotated[int, typer.Option(help="sentences decoded together")]
AsJson = Annotated[bool, typer.Option("--json", help="JSON lines instead of plain text")]
InputFile = Annotated[Optional[str], typer.Option("--input", "-i", help="read lines from this file (- for stdin)")]
Texts = Annotated[Optional[list[str]], typer.Argument(help="sentences; none: -i FILE or stdin")]
PosteriorOpt = Annotated[Posterior, typer.Option(help="code of a sentence: the posterior mean, or a sample from q(z|x)")]
# a labelled model's labels (sentvae/label_codes.py)
LABELS = "Labels"
Label = Annotated[Optional[list[str]], typer.Option("--label", metavar="NAME=VALUE", rich_help_panel=LABELS,
                                                    help="a labelled model: decode with this value of the attribute NAME (repeatable)")]
LabelFirstToken = Annotated[Optional[str], typer.Option(metavar="NAME", rich_help_panel=LABELS,
                                                        help="a labelled model's data: text files hold 'VALUE sentence' lines, the first token NAME's value")]
Encoding = Annotated[str, typer.Option(rich_help_panel=LABELS, help="the text encoding of labelled --data (latin-1 for MR)")]


def load(checkpoint: Path, device: str):
    """The checkpoint as a sentvae.api.Model (imports torch: call it inside a command)."""
    from sentvae.api import load as load_model
    return load_model(checkpoint, device)


# --- flags generated from the declared options (sentvae/options.py, sentvae/config.py)
def parameters(*classes, names: tuple | None = None) -> list[inspect.Parameter]:
    """One keyword parameter per declared option of the config classes (those with a flag; only
    `names`, if given), annotated for typer: its flags, help with the default, panel and choices.
    Every default is None, so a command sees which options were given. Grouped by panel, in the
    order of config.PANELS."""
    params = []
    for cls in classes:
        for f, opt in declared(cls):
            if not opt.cli or (names is not None and f.name not in names):
                continue
            d = opt.domain
            kind = Literal[d.choices] if d.choices else {list: list[str]}.get(d.kind, d.kind)
            shown = opt.default_help or ("" if d.kind is bool and "/" not in "".join(opt.flags) or f.default is None
                                         else f.default)
            help_ = opt.help + (f" \\[default: {shown}]" if shown != "" else "")
            info = typer.Option(*(opt.flags or ()), help=help_, rich_help_panel=opt.panel, show_default=False,
                                metavar=opt.metavar or None)
            params.append((PANELS.index(opt.panel) if opt.panel in PANELS else len(PANELS),
                           inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                             annotation=Annotated[Optional[kind], info])))
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
