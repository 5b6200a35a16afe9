"""The generation commands: sample, interpolate, reconstruct, encode, decode.

Registered on the one `sentvae` app (sentvae.cli). They share the decoding options below and
the pipeline manners of sentvae.streams: data on stdout, one item per line, blank lines in
place, stdin when no text is given. Heavy imports stay inside the commands.
"""

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from sentvae.cli import DEFAULT_CKPT, Checkpoint, Device, EncErr, EncodingErrors, _load, app
from sentvae.errors import SentvaeError


class Method(str, Enum):
    lerp = "lerp"
    slerp = "slerp"


# decoding options shared by every command that turns codes into sentences
MaxLen = Annotated[int, typer.Option(help="pieces per sentence at most", rich_help_panel="Decoding")]
Sample = Annotated[bool, typer.Option("--sample", help="ancestral sampling instead of greedy (implied by --temperature/--top-k/--top-p)", rich_help_panel="Decoding")]
Temperature = Annotated[Optional[float], typer.Option(help="sampling temperature [default: 1]", rich_help_panel="Decoding")]
TopK = Annotated[Optional[int], typer.Option(help="sample among the k most likely pieces", rich_help_panel="Decoding")]
TopP = Annotated[Optional[float], typer.Option(help="sample from the smallest set with probability >= p", rich_help_panel="Decoding")]
Beam = Annotated[int, typer.Option(help="beam search with this many beams (1: off)", rich_help_panel="Decoding")]
LengthPenalty = Annotated[float, typer.Option(help="beam: rank by log p / length ** this", rich_help_panel="Decoding")]
Seed = Annotated[int, typer.Option(help="random seed (prior codes, posterior samples, sampling)")]
BatchSize = Annotated[int, typer.Option(help="sentences decoded together")]
AsJson = Annotated[bool, typer.Option("--json", help="JSON lines instead of plain text")]
InputFile = Annotated[Optional[str], typer.Option("--input", "-i", help="read lines from this file (- for stdin)")]
Texts = Annotated[Optional[list[str]], typer.Argument(help="sentences; none: -i FILE or stdin")]


class Posterior(str, Enum):
    mean = "mean"
    sample = "sample"


PosteriorOpt = Annotated[Posterior, typer.Option(help="code of a sentence: the posterior mean, or a sample from q(z|x)")]


def _input_report(stats: dict, n_lines: int, source: str) -> None:
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


def _decode_cfg(max_len, sample_, temperature, top_k, top_p, beam, length_penalty, seed):
    from sentvae.decode import DecodeConfig

    sampling = sample_ or temperature is not None or top_k is not None or top_p is not None
    return DecodeConfig(max_len=max_len, sample=sampling, temperature=temperature or 1.0,
                        top_k=top_k or 0, top_p=1.0 if top_p is None else top_p, beam=beam,
                        length_penalty=length_penalty, seed=seed)


@app.command()
def sample(
    n: Annotated[int, typer.Option("-n", help="how many sentences")] = 10,
    checkpoint: Checkpoint = DEFAULT_CKPT,
    max_len: MaxLen = 60, sample_: Sample = False, temperature: Temperature = None, top_k: TopK = None,
    top_p: TopP = None, beam: Beam = 1, length_penalty: LengthPenalty = 1.0,
    seed: Seed = 0, batch_size: BatchSize = 256, device: Device = "auto", as_json: AsJson = False,
):
    """Sentences from the prior, z ~ N(0, I): one per line on stdout (greedy unless told)."""
    import torch
    from sentvae.decode import decode
    from sentvae.streams import emit, emit_json

    if n < 1:
        raise SentvaeError(f"-n: must be >= 1, not {n}")
    cfg = _decode_cfg(max_len, sample_, temperature, top_k, top_p, beam, length_penalty, seed)
    model, tok, dev = _load(checkpoint, device)
    gen = torch.Generator().manual_seed(seed)
    for start in range(0, n, batch_size):
        z = torch.randn(min(batch_size, n - start), model.cfg.latent, generator=gen).to(dev)
        cfg.seed = seed + start            # each batch its own sampling stream, reproducibly
        for text in tok.decode(decode(model, z, cfg)):
            emit_json({"text": text}) if as_json else emit(text)


@app.command()
def interpolate(
    a: Annotated[str, typer.Argument(help="first sentence")],
    b: Annotated[str, typer.Argument(help="second sentence")],
    steps: Annotated[int, typer.Option(help="points on the path, endpoints included")] = 8,
    method: Annotated[Method, typer.Option(help="straight line or great circle")] = Method.lerp,
    posterior: PosteriorOpt = Posterior.mean,
    checkpoint: Checkpoint = DEFAULT_CKPT,
    max_len: MaxLen = 60, sample_: Sample = False, temperature: Temperature = None, top_k: TopK = None,
    top_p: TopP = None, beam: Beam = 1, length_penalty: LengthPenalty = 1.0,
    seed: Seed = 0, device: Device = "auto", as_json: AsJson = False,
):
    """Decode points on the path from z(a) to z(b), endpoints included."""
    import torch
    from sentvae.decode import decode
    from sentvae.latent import codes, lerp, slerp
    from sentvae.streams import emit, emit_json

    if steps < 2:
        raise SentvaeError(f"--steps: must be >= 2 (the endpoints), not {steps}")
    for name, s_ in (("A", a), ("B", b)):
        if not s_.strip():
            raise SentvaeError(f"interpolate: sentence {name} is empty")
    cfg = _decode_cfg(max_len, sample_, temperature, top_k, top_p, beam, length_penalty, seed)
    model, tok, dev = _load(checkpoint, device)
    z_ab = codes(model, tok, [a, b], posterior.value, seed, dev)
    t = torch.linspace(0, 1, steps, device=dev)
    z = (slerp if method == Method.slerp else lerp)(z_ab[0], z_ab[1], t)
    for ti, text in zip(t.tolist(), tok.decode(decode(model, z, cfg))):
        emit_json({"t": round(ti, 6), "text": text}) if as_json else emit(text)


@app.command()
def reconstruct(
    texts: Texts = None,
    input_file: InputFile = None,
    bleu: Annotated[bool, typer.Option("--bleu", help="report sacrebleu corpus BLEU of reconstructions vs inputs")] = False,
    posterior: PosteriorOpt = Posterior.mean,
    checkpoint: Checkpoint = DEFAULT_CKPT,
    max_len: MaxLen = 60, sample_: Sample = False, temperature: Temperature = None, top_k: TopK = None,
    top_p: TopP = None, beam: Beam = 1, length_penalty: LengthPenalty = 1.0,
    seed: Seed = 0, batch_size: BatchSize = 256, device: Device = "auto", as_json: AsJson = False,
    encoding_errors: EncErr = EncodingErrors.strict,
):
    """Encode then decode each input line; one output line per input line, in order.

    A blank input line gives a blank output line (JSON: "reconstruction": null).
    """
    from sentvae.decode import decode
    from sentvae.latent import codes
    from sentvae.streams import batches, emit, emit_json, source_name, text_source

    cfg = _decode_cfg(max_len, sample_, temperature, top_k, top_p, beam, length_penalty, seed)
    lines = text_source(texts, input_file, encoding_errors.value, "reconstruct")
    model, tok, dev = _load(checkpoint, device)
    refs, hyps, n, stats = [], [], 0, {}
    for i, chunk in enumerate(batches(lines, batch_size)):
        cfg.seed = seed + i
        outs = _in_place(chunk, str.strip, lambda ts: tok.decode(
            decode(model, codes(model, tok, ts, posterior.value, seed + i, dev, stats), cfg)))
        for src, out in zip(chunk, outs):
            n += 1
            if as_json:
                emit_json({"text": src, "reconstruction": out})
            else:
                emit(out or "")
            if bleu and out is not None:
                refs.append(src)
                hyps.append(out)
    _input_report(stats, n, source_name(texts, input_file))
    if bleu:
        from sentvae import console
        from sentvae.latent import corpus_bleu

        score = corpus_bleu(hyps, refs)
        console.note(f"BLEU = {score['bleu']:.2f} on {len(refs)} sentences ({score['signature']})")
        if as_json:
            emit_json({"bleu": score["bleu"], "sentences": len(refs), "signature": score["signature"]})


@app.command()
def encode(
    texts: Texts = None,
    input_file: InputFile = None,
    checkpoint: Checkpoint = DEFAULT_CKPT,
    batch_size: BatchSize = 256, device: Device = "auto",
    encoding_errors: EncErr = EncodingErrors.strict,
):
    """Latent codes: one JSON object {"text", "mu", "logvar"} per input line (null for blanks)."""
    from sentvae.latent import encode_texts
    from sentvae.streams import batches, emit_json, source_name, text_source

    lines = text_source(texts, input_file, encoding_errors.value, "encode")
    model, tok, dev = _load(checkpoint, device)
    n, stats = 0, {}
    for chunk in batches(lines, batch_size):
        # .tolist() keeps the exact float32 values
        outs = _in_place(chunk, str.strip, lambda ts: zip(*(t.cpu().tolist() for t in encode_texts(
            model, tok, ts, device=dev, stats=stats))))
        for src, out in zip(chunk, outs):
            mu, logvar = out or (None, None)
            emit_json({"text": src, "mu": mu, "logvar": logvar})
            n += 1
    _input_report(stats, n, source_name(texts, input_file))


@app.command("decode")
def decode_(
    input_file: InputFile = None,
    checkpoint: Checkpoint = DEFAULT_CKPT,
    max_len: MaxLen = 60, sample_: Sample = False, temperature: Temperature = None, top_k: TopK = None,
    top_p: TopP = None, beam: Beam = 1, length_penalty: LengthPenalty = 1.0,
    seed: Seed = 0, batch_size: BatchSize = 256, device: Device = "auto", as_json: AsJson = False,
):
    """Sentences from JSON lines with "z" (or "mu"), e.g. from `sentvae encode`; one per line."""
    import torch
    from sentvae.decode import decode
    from sentvae.streams import batches, code_source, emit, emit_json

    cfg = _decode_cfg(max_len, sample_, temperature, top_k, top_p, beam, length_penalty, seed)
    model, tok, dev = _load(checkpoint, device)
    n = 0
    for i, chunk in enumerate(batches(code_source(input_file, model.cfg.latent), batch_size)):
        cfg.seed = seed + i
        outs = _in_place(chunk, lambda z: z is not None, lambda zs: tok.decode(
            decode(model, torch.tensor(zs, dtype=torch.float32, device=dev), cfg)))
        for out in outs:
            emit_json({"text": out}) if as_json else emit(out or "")
            n += 1
    if n == 0:
        raise SentvaeError("decode: the input is empty")
