"""One self-describing checkpoint file; atomic writes; safe loading.

A checkpoint is a dict of plain data and tensors:
    format "sentvae", version, model_config, train_config, tokenizer (SentencePiece
    model bytes), model (state dict), info (step, figures), and for resuming
    train_state (optimizer, data position, RNG states, best validation figure).
It is written to a temporary file in the same folder, flushed, fsynced and renamed
over the target, so `last.pt` and `best.pt` are always whole. It is read with
torch.load(weights_only=True): a checkpoint can never run code. Every part is then checked
for the types and keys that sentvae reads from it (`check_parts`), the configs' from their
dataclasses' fields, so that a malformed file is one line naming it and the part at fault.
"""

import dataclasses
import math
import pickle
import types
import typing
import zipfile
from pathlib import Path

import torch

from sentvae.atomic import write_atomically
from sentvae.config import ModelConfig, TrainConfig
from sentvae.errors import SentvaeError, first_line
from sentvae.trainstate import Position

FORMAT = "sentvae"
VERSION = 1
# where a new training run keeps the run it replaces until its first checkpoint (rundir.py)
SET_ASIDE = ".replaced"


def save_checkpoint(path, payload: dict) -> None:
    path = Path(path)
    payload = {"format": FORMAT, "version": VERSION, **payload}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SentvaeError(f"{path.parent}: cannot create the output folder ({e.strerror})", 1) from None
    try:
        write_atomically(path, lambda f: torch.save(payload, f))
    except OSError as e:
        raise SentvaeError(f"{path}: cannot write checkpoint ({e.strerror}); "
                           "the previous file, if any, is unchanged", 1) from None

def remove_stale_temporaries(folder) -> int:
    """Delete temporary files left by a writer that was killed mid-write (SIGKILL, power
    loss). They are never a checkpoint; the files they were meant to replace are intact."""
    n = 0
    for tmp in Path(folder).glob(".*.pt.tmp*"):
        try:
            tmp.unlink()
            n += 1
        except OSError:
            pass
    return n


def load_checkpoint(path, map_location="cpu", flag: str = "-c") -> dict:
    """A checkpoint file's dict, or one line naming the file (and `flag`, the option that gave it,
    where it is not -c) and what is wrong with it."""
    path = Path(path)
    if not path.exists():
        if flag != "-c":
            raise SentvaeError(f"{flag} {path}: checkpoint not found")
        if (path.parent / SET_ASIDE / path.name).exists():
            raise SentvaeError(f"{path}: not found: a `sentvae train` set it aside in {path.parent / SET_ASIDE} "
                               "until its first checkpoint, or was killed before (then the next "
                               f"`sentvae train --out {path.parent}` puts it back)")
        raise SentvaeError(f"{path}: checkpoint not found (train one with `sentvae train`, "
                           "or choose one with -c PATH)")
    if path.is_dir():
        raise SentvaeError(f"{path}: is a directory, expected a checkpoint file")
    if path.stat().st_size == 0:
        raise SentvaeError(f"{path}: empty file, not a sentvae checkpoint")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "GLOBAL" in str(e) or "global" in str(e):
            # the file asks to build Python objects: code we refuse to run
            raise SentvaeError(f"{path}: refused, it holds Python objects that a sentvae checkpoint "
                               "never has (it could run code)") from None
        raise SentvaeError(f"{path}: not a sentvae checkpoint (not a readable torch file)") from None
    except (KeyError, TypeError, AttributeError):
        # what the unpickler raises on foreign bytes (a text file: KeyError), with nothing to tell
        raise SentvaeError(f"{path}: not a sentvae checkpoint (not a torch file)") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, IndexError) as e:
        raise SentvaeError(f"{path}: not a sentvae checkpoint, or truncated/corrupt ({first_line(e)})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise SentvaeError(f"{path}: not a sentvae checkpoint")
    version = ckpt.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise SentvaeError(f"{path}: checkpoint format version {version} is newer than this sentvae "
                           f"reads ({VERSION}); upgrade sentvae")
    for key in ("model_config", "tokenizer", "model"):
        if key not in ckpt:
            raise SentvaeError(f"{path}: sentvae checkpoint is missing {key!r}")
    check_parts(ckpt, path)
    return ckpt


# --- the parts, checked for what is read from them
VALID_FIGURES = ("step", "elbo", "rec", "kl", "au", "latent", "ppl_elbo")   # info["valid"]: shown, resumed from
INFO_NUMBERS = ("step", "epoch", "best_valid_elbo", "parameters", "processes", "train_sentences",
                "train_seconds")


def check_parts(ckpt: dict, path) -> None:
    """Refuse (one line naming the file and the part) a checkpoint whose parts are not what
    sentvae writes: configs whose keys or value types are not their dataclass's, a tokenizer
    that is not bytes, weights that are not named tensors, figures that are not numbers, a
    training state that cannot be resumed from."""
    def bad(part: str, what: str):
        raise SentvaeError(f"{path}: malformed checkpoint: {part} {what}")

    _check_fields(ckpt["model_config"], ModelConfig, "model_config", bad)
    try:
        ModelConfig.from_dict(ckpt["model_config"])      # its values, as for a new model
    except (SentvaeError, TypeError) as e:
        bad("model_config", f"is not a valid model ({e})")
    if "train_config" in ckpt:
        _check_fields(ckpt["train_config"], TrainConfig, "train_config", bad)
    if not isinstance(ckpt["tokenizer"], bytes):
        bad("tokenizer", f"is {_kind(ckpt['tokenizer'])}, not the tokenizer's bytes")
    weights = ckpt["model"]
    if not isinstance(weights, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                 for k, v in weights.items()):
        bad("model", "is not a dict of named tensors (the weights)")
    info = ckpt.get("info", {})
    if not isinstance(info, dict):
        bad("info", f"is {_kind(info)}, not a dict")
    for k in INFO_NUMBERS:
        if k in info and not _is_number(info[k]):
            bad(f"info[{k!r}]", f"is {_kind(info[k])}, not a number")
    valid = info.get("valid", {})
    if not isinstance(valid, dict):
        bad("info['valid']", f"is {_kind(valid)}, not a dict")
    if valid:                                 # empty when saved (Ctrl-C) before any validation
        for k in VALID_FIGURES:
            if k not in valid or not _is_number(valid[k]) or not math.isfinite(valid[k]):
                bad(f"info['valid'][{k!r}]", "is missing" if k not in valid else f"is {_kind(valid[k])}, "
                    "not a finite number")
    if "train_state" in ckpt:
        if "train_config" not in ckpt:
            bad("train_config", "is missing (a resumable checkpoint always has it)")
        _check_train_state(ckpt["train_state"], "valid" in info, bad)


def _check_train_state(st, has_valid: bool, bad) -> None:
    """What --resume reads: the optimizer's state, the position, the RNG state, the data size."""
    if not isinstance(st, dict):
        bad("train_state", f"is {_kind(st)}, not a dict")
    for key in ("optimizer", "position", "rng", "sentences"):
        if key not in st:
            bad("train_state", f"is missing {key!r}")
    opt = st["optimizer"]
    if not (isinstance(opt, dict) and isinstance(opt.get("state"), dict) and isinstance(opt.get("param_groups"), list)
            and all(isinstance(g, dict) for g in opt["param_groups"])):
        bad("train_state['optimizer']", "is not an optimizer's state (state, param_groups)")
    _check_fields(st["position"], Position, "train_state['position']", bad)
    rng = st["rng"]
    if not (isinstance(rng, torch.Tensor) and rng.dtype == torch.uint8 and rng.dim() == 1):
        bad("train_state['rng']", "is not a random generator's state (a byte tensor)")
    if not (isinstance(st["sentences"], int) and not isinstance(st["sentences"], bool)):
        bad("train_state['sentences']", f"is {_kind(st['sentences'])}, not an integer")
    cuda = st.get("cuda_rng", [])
    if not (isinstance(cuda, (list, tuple)) and all(isinstance(t, torch.Tensor) and t.dtype == torch.uint8
                                                    for t in cuda)):
        bad("train_state['cuda_rng']", "is not a list of random generator states")
    if not has_valid:
        bad("info", "has no 'valid' figures (a resumable checkpoint always has them)")


def _check_fields(d, cls, part: str, bad) -> None:
    """d: a dict of cls's fields (a dataclass), each of its declared type; unknown keys and
    missing required ones refused. Types are read from the dataclass, so new fields are checked too."""
    if not isinstance(d, dict):
        bad(part, f"is {_kind(d)}, not a dict")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(k for k in d if k not in names)
    if unknown:
        bad(part, f"has unknown key(s) {', '.join(map(repr, unknown))} (from a newer sentvae?)")
    hints = typing.get_type_hints(cls)
    for name, f in names.items():
        if name not in d:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                bad(part, f"is missing {name!r}")
            continue
        if not _is_type(d[name], hints.get(name, typing.Any)):
            bad(f"{part}[{name!r}]", f"is {_kind(d[name])}, not {_type_name(hints[name])}")


def _is_type(value, tp) -> bool:
    """value is of the annotated type tp (a type this check does not know passes: the config's
    own checks then judge it)."""
    origin = typing.get_origin(tp)
    if tp is typing.Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_is_type(value, a) for a in typing.get_args(tp))
    if origin is typing.Literal:
        return value in typing.get_args(tp)
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return _is_number(value)
    if tp is str:
        return isinstance(value, str)
    if tp in (list, tuple) or origin in (list, tuple):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return isinstance(value, (list, tuple)) and (
            origin is not list or not args or all(_is_type(v, args[0]) for v in value))
    if tp is dict or origin is dict:
        return isinstance(value, dict)
    if dataclasses.is_dataclass(tp):
        return isinstance(value, dict)
    return True


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _kind(v) -> str:
    """A short description of a value for a message: its type, and the value if it is short."""
    text = repr(v)
    return f"{type(v).__name__} {text}" if len(text) <= 30 else f"a {type(v).__name__}"


def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def load_model(path, device="cpu"):
    """-> (model in eval mode on device, tokenizer, checkpoint dict)."""
    from sentvae.model import build_model
    from sentvae.tokenizer import Tokenizer

    ckpt = load_checkpoint(path)
    cfg = ModelConfig.from_dict(ckpt["model_config"], source=str(path))
    tok = Tokenizer(ckpt["tokenizer"], source=f"{path} (tokenizer)")
    if tok.vocab_size != cfg.vocab_size:
        raise SentvaeError(f"{path}: its tokenizer has {tok.vocab_size} pieces but the model "
                           f"expects {cfg.vocab_size}")
    model = build_model(cfg)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise SentvaeError(f"{path}: weights do not match the model config "
                           f"({first_line(e)})") from None
    return model.to(device).eval(), tok, ckpt
