"""Command-line option types shared by the command modules (cli.py, cli_generate.py).

Only typer and the standard library here: `sentvae --help` must import no torch.
"""

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

DEFAULT_OUT = Path("checkpoints")
DEFAULT_CKPT = DEFAULT_OUT / "best.pt"


class ModelType(str, Enum):
    unigram = "unigram"
    bpe = "bpe"
    word = "word"
    char = "char"


class Arch(str, Enum):
    lstm = "lstm"
    transformer = "transformer"


class Precision(str, Enum):
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


class Anneal(str, Enum):
    none = "none"
    linear = "linear"
    logistic = "logistic"
    cyclical = "cyclical"


class LRSchedule(str, Enum):
    none = "none"
    plateau = "plateau"
    cosine = "cosine"


class Optimizer(str, Enum):
    adamw = "adamw"
    sgd = "sgd"


class TrainOnly(str, Enum):
    all = "all"
    encoder = "encoder"


class FreeBitsOver(str, Enum):
    batch = "batch"
    sentence = "sentence"


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


def load(checkpoint: Path, device: str):
    """The checkpoint as a sentvae.api.Model (imports torch: call it inside a command)."""
    from sentvae.api import load as load_model
    return load_model(checkpoint, device)
