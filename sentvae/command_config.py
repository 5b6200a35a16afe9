"""The options of the commands that use a trained model, each declared once (sentvae/options.py).

    n: int = option(10, "how many sentences", Int(1), panel=None, flags=("-n",))

As for `train` (sentvae/config.py), the field is the declaration: the command line builds its flag
from it (cli_options.declared_option for one option, with_options for all of DecodeConfig), and the
Python API checks its arguments by building the same dataclass. So `sentvae sample -n 0` and
`sentvae.load(...).sample(n=0)` are refused with the same line, `-n: must be an integer in
[1, 2147483647], not 0`, before a checkpoint is read or anything written.

    DecodeConfig      the decoding flags of every command that turns codes into sentences
    GenerationConfig  sample, interpolate, reconstruct, encode, decode (and the Model methods)
    EvalConfig        eval (Model.evaluate, Model.score, sentvae.evaluate.evaluate)
    PlotConfig        plot
    ClustersConfig    clusters (sentvae.clusters.cluster_report)

eval's --max-len and the --encoding-errors of the commands that read text are the `train`
options themselves (TrainConfig.max_len, RunConfig.encoding_errors): one declaration each.

Where a bound is not a count's (C int) or a seed's: the decoder's arithmetic is float32, so a
temperature outside [1e-4, 1e4] turns logits into inf or 0/0 (torch then cannot sample), and
length ** length_penalty, length up to --max-len's 1e6, must stay a finite, non-zero float32.

No torch and no typer here: `sentvae --help` imports this module.
"""

from dataclasses import dataclass

from sentvae.config import LABELS, SVI_LR, _Config
from sentvae.errors import SentvaeError
from sentvae.options import BOOL, INT_LIMIT, SEED, SEED_LIMIT, Choice, Domain, Float, Int, declared, flag_of, option

DECODING = "Decoding"                      # the --help panel of the decoding flags
LATENT_MAP = "Latent map"                  # plot --latent's panel


@dataclass
class DecodeConfig(_Config):
    """How codes become sentences: greedy, ancestral sampling (temperature, top-k, top-p: giving
    one implies sampling) or beam search."""
    max_len: int = option(60, "pieces per sentence at most", Int(1, 1_000_000), panel=DECODING)
    sample: bool = option(False, "ancestral sampling instead of greedy (implied by --temperature/--top-k/--top-p)",
                          BOOL, panel=DECODING, flags=("--sample",))
    temperature: float | None = option(None, "sampling temperature", Float(1e-4, 1e4, optional=True),
                                       panel=DECODING, default_help="1")
    top_k: int | None = option(None, "sample among the k most likely pieces", Domain(int, 0, INT_LIMIT, optional=True),
                               panel=DECODING)
    top_p: float | None = option(None, "sample from the smallest set with probability >= p",
                                 Float(0.0, 1.0, lo_open=True, optional=True), panel=DECODING)
    beam: int = option(1, "beam search with this many beams (1: off)", Int(1), panel=DECODING)
    length_penalty: float = option(1.0, "beam: rank by log p / length ** this", Float(-5.0, 5.0), panel=DECODING)
    # the sampling stream's seed: the commands' --seed (GenerationConfig), or a later batch's
    # (stream_seed)
    seed: int = option(0, "seed of the sampling stream", SEED, panel=DECODING, cli=False)

    @property
    def sampling(self) -> bool:
        return self.sample or self.temperature is not None or self.top_k is not None or self.top_p is not None

    def check_rules(self):
        if self.beam > 1 and self.sampling:
            raise SentvaeError("--beam cannot be combined with sampling (--sample, --temperature, "
                               "--top-k, --top-p): beam search is deterministic")


@dataclass
class GenerationConfig(_Config):
    """The other options of the generation commands, each declared once for all of them."""
    n: int = option(10, "how many sentences", Int(1), panel=None, flags=("-n",))
    steps: int = option(8, "points on the path, endpoints included", Int(2), panel=None)
    method: str = option("lerp", "straight line or great circle", Choice("lerp", "slerp"), panel=None)
    posterior: str = option("mean", "code of a sentence: the posterior mean, or a sample from q(z|x)",
                            Choice("mean", "sample"), panel=None)
    seed: int = option(0, "random seed (prior codes, posterior samples, sampling)", SEED, panel=None)
    batch_size: int = option(256, "sentences decoded together", Int(1), panel=None)
    component: int | None = option(None, "draw z from this component of a mixture prior (--prior gmm), 0-based",
                                   Domain(int, 0, INT_LIMIT, optional=True), panel=None)
    category: int | None = option(None, "this value of a categorical latent (--latent-type categorical...), 0-based; "
                                  "a Gaussian part is drawn from p(z)", Domain(int, 0, INT_LIMIT, optional=True),
                                  panel=None)
    # A transfer-strength knob: how far a transfer moves the set attributes' label embeddings from
    # the sentence's own (q(c|x)'s reading) toward the asked value, past it above 1. The BLEU /
    # accuracy trade-off of one model is traced by it (docs/results/yelp.md).
    label_strength: float = option(1.0, "--label: move the set attributes' label codes S times the way to the asked "
                                   "value from the sentence's own (reconstruct: 0 reconstructs, 1 transfers; decode: the line's "
                                   "own) or from their average under p(c) (sample); above 1, past it",
                                   Float(0.0, 100.0), panel=LABELS, metavar="S")


@dataclass
class EvalConfig(_Config):
    """The options of `sentvae eval` other than --max-len (TrainConfig's)."""
    iw_samples: int = option(500, "importance samples K per sentence", Int(1), panel=None,
                             flags=("--iw-samples", "-k"))
    max_tokens: int = option(2000, "decoder tokens per call (bounds memory for any K)", Int(1), panel=None)
    seed: int = option(0, "random seed for z ~ q(z|x)", SEED, panel=None)
    # the same domains as train's --svi-steps/--svi-lr, but here refining at evaluation only
    svi_steps: int = option(0, "refine each sentence's posterior by N gradient steps on its own ELBO first "
                            "(semi-amortized inference; the change is the amortisation gap)", Int(0, 10_000),
                            panel=None)
    svi_lr: float = option(SVI_LR, "--svi-steps: the step size, per sentence (momentum 0.5, norm clipped at 5)",
                           Float(0.0, 1e3, lo_open=True), panel=None)


@dataclass
class PlotConfig(_Config):
    x: str = option("step", "training curves against optimizer steps, or epochs (runs with other batch sizes side "
                    "by side)", Choice("step", "epoch"), panel=None, flags=("--x",))
    max_sentences: int = option(2000, "encode at most this many (the first ones)", Int(3), panel=LATENT_MAP)


@dataclass
class ClustersConfig(_Config):
    top: int = option(5, "typical sentences shown per component", Int(0, 10_000), panel=None)


@dataclass
class ProbeConfig(_Config):
    """The numbers of `sentvae probe` (sentvae/probe_run.run checks the same)."""
    folds: int = option(10, "cross-validation folds (without --test)", Int(2, 1000), panel=None)
    inner_folds: int = option(5, "inner cross-validation folds that choose C", Int(2, 1000), panel=None)
    draws: int = option(5, "--few: random draws of each size", Int(1, 10_000), panel=None)
    seed: int = option(0, "random seed (folds, draws)", SEED, panel=None)


COMMAND_CONFIGS = (DecodeConfig, GenerationConfig, EvalConfig, PlotConfig, ClustersConfig, ProbeConfig)


def stream_seed(seed: int, offset: int) -> int:
    """The seed of the sampling stream of a later batch (offset: its first item, or its number):
    seed + offset, kept within --seed's domain (wrapping past its top)."""
    return (seed + offset) % (SEED_LIMIT + 1)


def given(cls, **values):
    """cls built from the values given (None: not given, the declared default), each checked."""
    return cls(**{k: v for k, v in values.items() if v is not None})


def check_option(cls, name: str, value):
    """One declared option of cls checked alone (converted), its flag named if it is refused: for
    an option whose class has rules between other options (TrainConfig's --max-len)."""
    f, opt = next((f, opt) for f, opt in declared(cls) if f.name == name)
    return opt.domain.check(flag_of(name, opt), value)
