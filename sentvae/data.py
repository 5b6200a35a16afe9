"""Reading text: lines of a file or stdin (checked, one line naming the file and line where they
cannot be read), JSONL/CSV records and their fields, Hugging Face datasets, the bundled corpus.
Turning the text into token-id corpora and batches: sentvae/corpus.py.
"""

import csv
import json
import logging
import os
import sys
from pathlib import Path

from sentvae.errors import SentvaeError

BUNDLED = Path(__file__).resolve().parent.parent / "data"


def bundled(split: str, suffix: str = ".txt") -> str:
    """The bundled corpus's split: .txt (sentences), or .jsonl (sentences with their labels)."""
    path = BUNDLED / f"{split}{suffix}"
    if not path.is_file():
        raise SentvaeError(f"no --data given and the bundled corpus ({path}) is missing")
    return str(path)


def check_path(path: str) -> None:
    if path == "-":
        return
    p = Path(path)
    if not p.exists():
        raise SentvaeError(f"{path}: no such file")
    if p.is_dir():
        raise SentvaeError(f"{path}: is a directory, expected a text file (one sentence per line)")


def iter_lines(path: str, encoding_errors: str = "strict", keep_blank: bool = False, encoding: str = "utf-8",
               lenient: bool = True):
    """Yield (line number, text) for each non-blank line (each line with keep_blank);
    '-' reads stdin. Decodes line by line so that a bad byte is reported with its file and line.
    encoding: UTF-8 for the corpora; labelled sets come in older ones too (MR is Latin-1).
    lenient: the command has --encoding-errors, which the message then offers.
    """
    check_path(path)
    name = "<stdin>" if path == "-" else path
    try:
        stream = sys.stdin.buffer if path == "-" else open(path, "rb")
    except OSError as e:                   # no permission, a FIFO gone, ...
        raise SentvaeError(f"{name}: cannot read ({e.strerror})") from None
    try:
        for lineno, raw in _read(stream, name):
            try:
                text = raw.decode(encoding, errors=encoding_errors)
            except UnicodeDecodeError as e:
                if encoding != "utf-8":
                    raise SentvaeError(f"{name} line {lineno}: not valid {encoding} (byte {e.start + 1})") from None
                raise SentvaeError(f"{name} line {lineno}: not valid UTF-8 (byte {e.start + 1})"
                                   + ("; pass --encoding-errors replace to go on" if lenient else "")) from None
            if "\x00" in text:
                raise SentvaeError(f"{name} line {lineno}: contains a NUL byte (a binary file?)")
            text = text.strip()
            if text or keep_blank:
                yield lineno, text
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


def _read(stream, name: str):
    """(line number, bytes) of each line; a read that fails midway (an I/O error, a device
    gone) is one line naming the file and line, exit 1."""
    lineno = 0
    while True:
        try:
            raw = stream.readline()
        except OSError as e:
            raise SentvaeError(f"{name} line {lineno + 1}: cannot read ({e.strerror})", 1) from None
        if not raw:
            return
        lineno += 1
        yield lineno, raw


def iter_records(path: str, fields: dict[str, str], encoding_errors: str = "strict"):
    """Rows of a JSON Lines (.jsonl/.json) or CSV source: (line number, {field: value}) for the
    fields asked for (field -> the flag that named it, for the error when one is missing)."""
    name = "<stdin>" if path == "-" else path
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".json"):
        for lineno, line in iter_lines(path, encoding_errors):
            try:
                row = json.loads(line)
            except (ValueError, RecursionError) as e:   # also an integer of 5,000 digits, [[[[...
                raise SentvaeError(f"{name} line {lineno}: not JSON "
                                   f"({getattr(e, 'msg', None) or type(e).__name__})") from None
            if not isinstance(row, dict):
                raise SentvaeError(f"{name} line {lineno}: not a JSON object")
            for field, flag in fields.items():
                if field not in row:
                    raise SentvaeError(f"{name} line {lineno}: no field {field!r} ({flag})")
            yield lineno, {field: row[field] for field in fields}
    elif suffix == ".csv":
        lines = (text for _, text in iter_lines(path, encoding_errors, keep_blank=True))
        reader = csv.DictReader(lines)
        for field, flag in fields.items():
            if reader.fieldnames is None or field not in reader.fieldnames:
                raise SentvaeError(f"{name}: no column {field!r} ({flag}); "
                                   f"columns: {', '.join(reader.fieldnames or [])}")
        for lineno, row in enumerate(reader, 2):
            yield lineno, {field: row.get(field) or "" for field in fields}
    else:
        raise SentvaeError(f"{name}: fields need a .jsonl or .csv file")


def iter_texts(path: str, encoding_errors: str = "strict", text_field: str = "text", max_bytes: int | None = None):
    """Sentences of one source: plain text (one per line), JSON Lines (.jsonl/.json, the
    `text_field` of each object), CSV (.csv, the `text_field` column) or hf:NAME[:CONFIG].
    max_bytes: a longer sentence is refused, naming its line (for training a tokenizer)."""
    for where, text in _located_texts(path, encoding_errors, text_field):
        if max_bytes is not None and len(text) > max_bytes // 4 and len(text.encode("utf-8")) > max_bytes:
            raise SentvaeError(f"{where}: a sentence of {len(text.encode('utf-8')):,} bytes, longer than a "
                               f"tokenizer can be trained on ({max_bytes:,}); split the line into sentences")
        yield text


def _located_texts(path: str, encoding_errors: str, text_field: str):
    """(where, text) of each sentence; where names its file and line (or row)."""
    if path.startswith("hf:"):
        for i, text in enumerate(hub_dataset(path, text_field)[text_field]):
            yield f"{path} row {i + 1}", text
        return
    if Path(path).suffix.lower() in (".jsonl", ".json", ".csv"):
        for lineno, row in iter_records(path, {text_field: "--text-field"}, encoding_errors):
            text = row[text_field]
            if not isinstance(text, str):
                raise SentvaeError(f"{path} line {lineno}: no string field {text_field!r} (--text-field)")
            if text.strip():
                yield f"{path} line {lineno}", text.strip()
        return
    name = "<stdin>" if path == "-" else path
    for lineno, text in iter_lines(path, encoding_errors):
        yield f"{name} line {lineno}", text


def read_texts(paths: list[str], encoding_errors: str = "strict", text_field: str = "text",
               max_bytes: int | None = None):
    for path in paths:
        yield from iter_texts(path, encoding_errors, text_field, max_bytes)


def hub_dataset(spec: str, text_field: str, split: str = "train"):
    """hf:NAME[:CONFIG] from the Hugging Face Hub (or its local cache). Fails in seconds,
    with one line, where the Hub cannot be reached, instead of retrying for half a minute."""
    name, _, config = spec[3:].partition(":")
    if not name:
        raise SentvaeError(f"--data {spec}: expected hf:NAME or hf:NAME:CONFIG")
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    if not offline:
        import socket
        try:
            socket.create_connection(("huggingface.co", 443), timeout=3).close()
        except OSError as e:
            raise SentvaeError(f"--data {spec}: the Hugging Face Hub is unreachable ({e.strerror or e}); "
                               "use local files (text, .jsonl or .csv)") from None
    datasets = quiet_datasets(offline_default=False)
    try:
        ds = datasets.load_dataset(name, config or None, split=split)
    except Exception as e:  # noqa: BLE001 - any failure of the Hub or the loader is the user's to see
        msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        where = "offline (HF_HUB_OFFLINE=1) and not in the local cache" if offline else msg
        raise SentvaeError(f"--data {spec}: cannot load it: {where}") from None
    if text_field not in ds.column_names:
        raise SentvaeError(f"--data {spec}: no column {text_field!r} (--text-field); "
                           f"columns: {', '.join(ds.column_names)}")
    return ds.select_columns([text_field])


def quiet_datasets(offline_default: bool = True):
    # For local files never let datasets wait on the Hub; it reads these at import time only.
    if offline_default and "datasets" not in sys.modules:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    import datasets
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    logging.getLogger("datasets").setLevel(logging.ERROR)
    return datasets
