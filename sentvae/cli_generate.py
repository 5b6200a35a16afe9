"""The generation commands: sample, interpolate, reconstruct, encode, decode.

Thin over sentvae.api.Model. Their options are declared in sentvae/command_config.py (the
decoding flags, DecodeConfig's, by @with_options) and checked before a checkpoint is read or a
line written; they share the pipeline manners of sentvae.streams: data on stdout, one item per line, blank lines in place,
stdin when no text is given. cli.py registers them (COMMANDS); nothing here imports cli.py.
Heavy imports stay inside the commands.
"""

import json
from typing import Annotated

import typer

from sentvae.cli_options import (DEFAULT_CKPT, AsJson, BatchSize, Checkpoint, Device, EncErr, InputFile, Label,
                                 PosteriorOpt, Seed, Texts, declared_option, load, with_options)
from sentvae.command_config import DecodeConfig, GenerationConfig, given, stream_seed
from sentvae.config import RunConfig
from sentvae.errors import SentvaeError


def _input_report(stats: dict, source: str) -> None:
    """After streaming text: refuse input that held no text; warn about what was altered."""
    from sentvae import console

    if "unk" not in stats:          # no non-blank line reached the encoder
        raise SentvaeError(f"{source}: no text (the input is empty or blank)")
    console.input_warnings(stats["truncated"], stats["unk"], "100")


def _in_place(chunk: list, present, compute) -> list:
    """compute() over the present items of a chunk; None where an item is absent (a blank line,
    a null code), so output i always answers input i."""
    keep = [j for j, item in enumerate(chunk) if present(item)]
    outs = [None] * len(chunk)
    if keep:
        for j, out in zip(keep, compute([chunk[j] for j in keep])):
            outs[j] = out
    return outs


def _decoding(options: dict) -> dict:
    """The decoding options given (DecodeConfig's flags), checked now: before the model loads."""
    from sentvae.api import decode_config
    opts = {k: v for k, v in options.items() if v is not None}
    decode_config(**opts)
    return opts


@with_options(DecodeConfig)
def sample(
    n: declared_option(GenerationConfig, "n") = None,
    checkpoint: Checkpoint = DEFAULT_CKPT,
    seed: Seed = None, batch_size: BatchSize = None, device: Device = None, as_json: AsJson = False,
    component: declared_option(GenerationConfig, "component") = None,
    category: declared_option(GenerationConfig, "category") = None,
    label: Label = None,
    label_strength: declared_option(GenerationConfig, "label_strength") = None,
    **decoding,
):
    """Sentences from the prior, z ~ p(z): one per line on stdout (greedy unless told). A labelled
    model's attributes not set by --label are drawn from p(c)."""
    from sentvae.streams import emit, emit_json

    o = given(GenerationConfig, n=n, seed=seed, batch_size=batch_size, component=component, category=category,
              label_strength=label_strength)
    opts = _decoding(decoding)
    model = load(checkpoint, device)
    for text in model.iter_sample(o.n, o.seed, o.batch_size, component=o.component, category=o.category,
                                  label=label, label_strength=o.label_strength, **opts):
        emit_json({"text": text}) if as_json else emit(text)


@with_options(DecodeConfig)
def interpolate(
    a: Annotated[str, typer.Argument(help="first sentence")],
    b: Annotated[str, typer.Argument(help="second sentence")],
    steps: declared_option(GenerationConfig, "steps") = None,
    method: declared_option(GenerationConfig, "method") = None,
    posterior: PosteriorOpt = None,
    checkpoint: Checkpoint = DEFAULT_CKPT,
    seed: Seed = None, device: Device = None, as_json: AsJson = False,
    label: Label = None,
    label_strength: declared_option(GenerationConfig, "label_strength") = None,
    **decoding,
):
    """Decode points on the path from z(a) to z(b), endpoints included. A labelled model's labels
    move from A's (q(c|x)'s most likely) to B's with z, but for those --label holds
    (--label-strength S: S times the way from the path's own mix)."""
    from sentvae.streams import emit, emit_json

    o = given(GenerationConfig, steps=steps, method=method, posterior=posterior, seed=seed,
              label_strength=label_strength)
    for name, s_ in (("A", a), ("B", b)):
        if not s_.strip():
            raise SentvaeError(f"interpolate: sentence {name} is empty")
    opts = _decoding(decoding)
    model = load(checkpoint, device)
    texts = model.interpolate(a, b, o.steps, o.method, o.posterior, o.seed, label=label,
                              label_strength=o.label_strength, **opts)
    for i, text in enumerate(texts):
        emit_json({"t": round(i / (o.steps - 1), 6), "text": text}) if as_json else emit(text)


@with_options(DecodeConfig)
def reconstruct(
    texts: Texts = None,
    input_file: InputFile = None,
    bleu: Annotated[bool, typer.Option("--bleu" , help="report sacrebleu corpus BLEU of reconstructions vs inputs")] = False,
    posterior: PosteriorOpt = None,
    checkpoint: Checkpoint = DEFAULT_CKPT,
    seed: Seed = None, batch_size: BatchSize = None, device: Device = None, as_json: AsJson = False,
    encoding_errors: EncErr = None,
    label: Label = None,
    label_strength: declared_option(GenerationConfig, "label_strength") = None,
    **decoding,
):
    """Encode then decode each input line; one output line per input line, in order (a blank
    input line gives a blank output line; JSON: "reconstruction": null). A labelled model decodes
    with q(c|x)'s most likely labels, but for those --label sets: transfer."""
    from sentvae.streams import Held, batches, source_name, text_source

    o = given(GenerationConfig, posterior=posterior, seed=seed, batch_size=batch_size, label_strength=label_strength)
    opts = _decoding(decoding)
    lines = text_source(texts, input_file, encoding_errors or RunConfig.encoding_errors, "reconstruct")
    model = load(checkpoint, device)
    _check_labels(model, label, o.label_strength)
    refs, hyps, stats, held = [], [], {}, Held()
    for i, chunk in enumerate(batches(lines, o.batch_size)):
        outs = _in_place(chunk, str.strip, lambda ts: model.reconstruct(ts, o.posterior, o.seed, stats,
                                                                        i * o.batch_size, stream_seed(o.seed, i),
                                                                        label=label,
                                                                        label_strength=o.label_strength,
                                                                        **opts))
        for src, out in zip(chunk, outs):
            held.write(json.dumps({"text": src, "reconstruction": out}) if as_json else out or "", out is not None)
            if bleu and out is not None:
                refs.append(src)
                hyps.append(out)
    _input_report(stats, source_name(texts, input_file))
    if bleu:
        from sentvae import console
        from sentvae.latent import corpus_bleu

        score = corpus_bleu(hyps, refs)
        console.note(f"BLEU = {score['bleu']:.2f} on {len(refs)} sentences ({score['signature']})")
        if as_json:
            held.write(json.dumps({"bleu": score["bleu"], "sentences": len(refs), "signature": score["signature"]}),
                       True)


def encode(
    texts: Texts = None,
    input_file: InputFile = None,
    checkpoint: Checkpoint = DEFAULT_CKPT,
    batch_size: BatchSize = None, device: Device = None,
    encoding_errors: EncErr = None,
):
    """Latent codes: one JSON object per input line with the text and its posterior's parameters
    ({"text", "mu", "logvar"} for the Gaussian; null for blank lines), and a labelled model's most
    likely labels ("label": {NAME: VALUE}), which `decode` reads back."""
    from sentvae.streams import Held, batches, source_name, text_source

    o = given(GenerationConfig, batch_size=batch_size)
    lines = text_source(texts, input_file, encoding_errors or RunConfig.encoding_errors, "encode")
    model = load(checkpoint, device)
    stats, held = {}, Held()
    blank = dict.fromkeys(model.posterior_params, None)
    if model.labels is not None:
        blank["label"] = None
    for chunk in batches(lines, o.batch_size):
        outs = _in_place(chunk, str.strip, lambda ts: _param_rows(*model.infer(ts, stats=stats)))
        for src, out in zip(chunk, outs):
            held.write(json.dumps({"text": src, **(out or blank)}), out is not None)
    _input_report(stats, source_name(texts, input_file))


def _param_rows(posterior, labels=None) -> list[dict]:
    """A posterior's parameters as one dict per sentence; .tolist() keeps the exact float32 values.
    labels: a labelled model's q(c|x) per sentence (Model.infer): its most likely labels are added."""
    params = {k: v.cpu().tolist() for k, v in posterior.params().items()}
    rows = [dict(zip(params, row)) for row in zip(*params.values())]
    for row, described in zip(rows, labels or ()):
        row["label"] = described["label"]
    return rows


def _check_labels(model, label, strength: float = 1.0) -> None:
    """--label (and --label-strength) checked against the model now, before any input is read."""
    from sentvae.label_codes import check_strength, request
    check_strength(strength, request(label, model.labels, model.source), model.labels, model.source)


@with_options(DecodeConfig)
def decode(
    input_file: InputFile = None,
    checkpoint: Checkpoint = DEFAULT_CKPT,
    seed: Seed = None, batch_size: BatchSize = None, device: Device = None, as_json: AsJson = False,
    label: Label = None,
    label_strength: declared_option(GenerationConfig, "label_strength") = None,
    **decoding,
):
    """Sentences from JSON lines with "z" (or "mu"), e.g. from `sentvae encode`; one per line. A
    labelled model decodes with --label, else the line's own "label" (as `encode` writes it), else
    labels drawn from p(c); --label-strength moves a set label from the line's own value, as
    `reconstruct`'s does from the sentence's."""
    from sentvae.streams import Held, batches, code_source

    o = given(GenerationConfig, seed=seed, batch_size=batch_size, label_strength=label_strength)
    opts = _decoding(decoding)
    model = load(checkpoint, device)
    _check_labels(model, label, o.label_strength)
    held = Held()
    codes = code_source(input_file, model.latent, labels=model.labels is not None, check=model.check_code)
    for i, chunk in enumerate(batches(codes, o.batch_size)):
        outs = _in_place(chunk, lambda z: z is not None,
                         lambda zs: _decode_codes(model, zs, label, o.label_strength, **opts,
                                                  seed=stream_seed(o.seed, i)))
        for out in outs:
            held.write(json.dumps({"text": out}) if as_json else out or "", out is not None)
    if not held.real:
        name = "<stdin>" if input_file in (None, "-") else input_file
        raise SentvaeError(f"{name}: no code to decode (the input is empty, or blank lines and nulls only)")


def _decode_codes(model, items: list, label, label_strength: float, **decoding) -> list[str]:
    """Codes from code_source (a labelled model's: (z, (where, the line's "label"))) -> sentences."""
    if model.labels is None:
        return model.decode(items, label, label_strength=label_strength, **decoding)
    return model.decode([z for z, _ in items], label, code_labels=[row for _, row in items],
                        label_strength=label_strength, **decoding)


COMMANDS = [sample, interpolate, reconstruct, encode, decode]
