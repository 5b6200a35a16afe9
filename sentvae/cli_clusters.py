"""`sentvae clusters`: what a discrete latent's components hold (sentvae/clusters.py).

Registered on the app by cli.py; torch is imported inside the command.
"""

from pathlib import Path
from typing import Annotated, Optional

import typer

from sentvae.cli_options import DEFAULT_CKPT, AsJson, Device, EncErr, TextField, declared_option, load
from sentvae.command_config import ClustersConfig, given
from sentvae.config import RunConfig
from sentvae.errors import SentvaeError


def clusters(
    checkpoint: Annotated[Path, typer.Argument(help="checkpoint file")] = DEFAULT_CKPT,
    data: Annotated[Optional[str], typer.Option("--data", "-d", help="sentences: text, .jsonl or .csv \\[default: the bundled data/test.txt]")] = None,
    label_field: Annotated[Optional[str], typer.Option(help="a field of .jsonl/.csv --data holding each sentence's label: adds homogeneity, completeness and NMI")] = None,
    top: declared_option(ClustersConfig, "top") = None,
    text_field: TextField = None,
    encoding_errors: EncErr = None,
    device: Device = None,
    as_json: AsJson = False,
):
    """Each component's share of the sentences and its most typical ones (highest q(c|x)); with
    labels, how the components agree with them. A model with a mixture prior (--prior gmm) or a
    categorical latent (--latent-type categorical...: its categories are the components)."""
    import json

    from sentvae import console
    from sentvae.clusters import cluster_report

    o = given(ClustersConfig, top=top)
    texts, labels, source = _read(data, label_field, text_field or RunConfig.text_field,
                                  encoding_errors or RunConfig.encoding_errors)
    model = load(checkpoint, device)
    stats = {}
    report = cluster_report(model, texts, labels, o.top, stats)
    console.input_warnings(stats.get("truncated", 0), stats.get("unk", 0), "100")
    report = {"checkpoint": str(checkpoint), "data": source, **report}
    console.clusters_table(report)
    if as_json or console.stdout_is_pipe():
        print(json.dumps({k: v for k, v in report.items() if k != "assigned"}))


def _read(data, label_field, text_field, errors):
    """-> (texts, labels or None, source name)."""
    from sentvae.data import bundled, iter_records, iter_texts

    source = data or bundled("test")
    if label_field is None:
        texts = [t for t in iter_texts(source, errors, text_field) if t.strip()]
        labels = None
    else:
        if Path(source).suffix.lower() not in (".jsonl", ".json", ".csv"):
            raise SentvaeError(f"--label-field {label_field}: labels need .jsonl or .csv --data, not {source}")
        texts, labels = [], []
        for lineno, row in iter_records(source, {text_field: "--text-field", label_field: "--label-field"}, errors):
            text, label = row[text_field], row[label_field]
            if isinstance(text, str) and text.strip():
                if label is None or label == "":
                    raise SentvaeError(f"{source} line {lineno}: no label in {label_field!r} (--label-field)")
                texts.append(text)
                labels.append(str(label))
    if not texts:
        raise SentvaeError(f"{source}: no text (the input is empty or blank)")
    return texts, labels, source
