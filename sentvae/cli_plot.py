"""`sentvae plot`: training curves of one or more runs, or a map of the latent space.

Registered on the app by cli.py; matplotlib and torch are imported inside the command.
"""

from pathlib import Path
from typing import Annotated, Optional

import typer

from sentvae.cli_options import Device, EncErr, TextField, declared_option, load
from sentvae.command_config import LATENT_MAP, PlotConfig, given
from sentvae.config import RunConfig
from sentvae.errors import SentvaeError


def plot(
    runs: Annotated[Optional[list[Path]], typer.Argument(help="run folders written by `sentvae train` \\[default: checkpoints]")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="the figure: .png, .svg or .pdf \\[default: curves.png, or latent.png with --latent]")] = None,
    x: declared_option(PlotConfig, "x") = None,
    latent: Annotated[bool, typer.Option("--latent", help="map encoded sentences instead: posterior means on their two leading principal components", rich_help_panel=LATENT_MAP)] = False,
    checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", "-c", help="the model \\[default: RUN/best.pt]", rich_help_panel=LATENT_MAP)] = None,
    data: Annotated[Optional[str], typer.Option("--data", "-d", help="sentences: text, .jsonl or .csv \\[default: the bundled data/test.txt]", rich_help_panel=LATENT_MAP)] = None,
    color_by: Annotated[str, typer.Option(help="colour by 'length' (words), or a field of .jsonl/.csv --data", rich_help_panel=LATENT_MAP)] = "length",
    path: Annotated[Optional[list[str]], typer.Option("--path", help="give twice: draw the interpolation path between these two sentences", rich_help_panel=LATENT_MAP)] = None,
    max_sentences: declared_option(PlotConfig, "max_sentences") = None,
    text_field: TextField = None,
    encoding_errors: EncErr = None,
    device: Device = None,
):
    """Draw training curves (-ELBO, rec, KL and KL weight, active units, lr, tokens/s against
    step or epoch; several runs overlaid), or with --latent a 2-D map of the latent space."""
    from sentvae import console
    from sentvae import plot as figures

    o = given(PlotConfig, x=x, max_sentences=max_sentences)      # each checked, --latent or not
    encoding_errors = encoding_errors or RunConfig.encoding_errors
    runs = runs or [Path("checkpoints")]
    if not latent:
        out = figures.check_output(output or Path("curves.png"))
        drawn = figures.training_figure([figures.read_run(r) for r in runs], out, o.x)
        console.note(f"wrote {drawn}: training curves of {', '.join(str(r) for r in runs)}")
        return
    if len(runs) != 1:
        raise SentvaeError("plot --latent: give one run folder (or -c CHECKPOINT)")
    if path is not None and len(path) != 2:
        raise SentvaeError(f"--path: give it exactly twice (two sentences), not {len(path)} time(s)")
    for i, sentence in enumerate(path or [], 1):
        if not sentence.strip():
            raise SentvaeError(f"--path: sentence {i} is empty")
    out = figures.check_output(output or Path("latent.png"))
    ckpt = checkpoint or runs[0] / "best.pt"
    texts, values, source = _sentences(data, color_by, text_field or RunConfig.text_field, encoding_errors,
                                       o.max_sentences)
    model = load(ckpt, device)
    stats = {}
    mu = model.encode(texts, stats=stats).mean()
    console.input_warnings(stats.get("truncated", 0), stats.get("unk", 0), "100")
    points = None
    if path is not None:
        import torch
        from sentvae.latent import lerp
        z_ab = model.codes(path)
        points = lerp(z_ab[0], z_ab[1], torch.linspace(0, 1, 8, device=z_ab.device)).cpu()
    label = "words" if color_by == "length" else color_by
    name = f"{Path(ckpt).resolve().parent.name}/{Path(ckpt).name}"
    figures.latent_figure(mu.cpu().numpy(), values, label, out, f"{name}: posterior means of {len(texts):,} "
                          f"sentences of {Path(source).name}", points, path)
    console.note(f"wrote {out}: {len(texts):,} sentences of {source}, coloured by {label}")


def _sentences(data, color_by, text_field, errors, limit):
    """-> (texts, colour values, source name): the first `limit` non-blank sentences."""
    from sentvae.data import bundled, iter_records, iter_texts

    source = data or bundled("test")
    suffix = Path(source).suffix.lower()
    if color_by == "length":
        texts = []
        for t in iter_texts(source, errors, text_field):
            if t.strip():
                texts.append(t)
                if len(texts) == limit:
                    break
        if len(texts) < 3:
            raise SentvaeError(f"{source}: fewer than 3 sentences to map")
        return texts, [len(t.split()) for t in texts], source
    if suffix not in (".jsonl", ".json", ".csv"):
        raise SentvaeError(f"--color-by {color_by}: a field needs .jsonl or .csv --data, not {source}")
    texts, values = [], []
    for _, row in iter_records(source, {text_field: "--text-field", color_by: "--color-by"}, errors):
        text, value = row[text_field], row[color_by]
        if isinstance(text, str) and text.strip():
            if suffix == ".csv":
                try:
                    value = float(value)
                except ValueError:
                    pass
            texts.append(text)
            values.append(value)
            if len(texts) == limit:
                break
    if len(texts) < 3:
        raise SentvaeError(f"{source}: fewer than 3 sentences to map")
    return texts, values, source

