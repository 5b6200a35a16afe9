"""`sentvae classify`: a labelled model's q(c|x) of each input line (sentvae/labelled.py).

Registered on the app by cli.py; streams like `encode` (sentvae/streams.py): one JSON line per
input line, in order, a blank line answered in place (its label and probabilities null).
"""

import json

from sentvae.cli_options import DEFAULT_CKPT, BatchSize, Checkpoint, Device, EncErr, InputFile, Texts, load
from sentvae.command_config import GenerationConfig, given
from sentvae.config import RunConfig
from sentvae.errors import SentvaeError


def classify(
    texts: Texts = None,
    input_file: InputFile = None,
    checkpoint: Checkpoint = DEFAULT_CKPT,
    batch_size: BatchSize = None, device: Device = None,
    encoding_errors: EncErr = None,
):
    """A labelled model's classifier q(c|x): one JSON object per input line with the text, its most
    likely label per attribute and every value's probability ({"text", "label": {NAME: VALUE},
    "probabilities": {NAME: {VALUE: p}}}; null for blank lines)."""
    from sentvae.cli_generate import _in_place, _input_report
    from sentvae.streams import Held, batches, source_name, text_source

    o = given(GenerationConfig, batch_size=batch_size)
    lines = text_source(texts, input_file, encoding_errors or RunConfig.encoding_errors, "classify")
    model = load(checkpoint, device)
    if model.labels is None:
        raise SentvaeError(f"classify: {checkpoint} has no labels (train it with --label-field, "
                           "--label-first-token or PATH@NAME=VALUE data)")
    stats, held = {}, Held()
    for chunk in batches(lines, o.batch_size):
        outs = _in_place(chunk, str.strip, lambda ts: model.classify(ts, stats=stats))
        for src, out in zip(chunk, outs):
            held.write(json.dumps({"text": src, **(out or {"label": None, "probabilities": None})}), out is not None)
    _input_report(stats, source_name(texts, input_file))
