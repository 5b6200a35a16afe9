"""One self-describing checkpoint file; atomic writes; safe loading.

A checkpoint is a dict of plain data and tensors:
    format "sentvae", version, model_config, train_config, tokenizer (SentencePiece
    model bytes), model (state dict), info (step, figures), and for resuming
    train_state (optimizer, data position, RNG states, best validation figure).
It is written to a temporary file in the same folder, flushed, fsynced and renamed
over the target, so `last.pt` and `best.pt` are always whole. It is read with
torch.load(weights_only=True): a checkpoint can never run code.
"""

import pickle
import zipfile
from pathlib import Path

import torch

from sentvae.atomic import write_atomically
from sentvae.config import ModelConfig
from sentvae.errors import SentvaeError

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


def load_checkpoint(path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.exists():
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
        raise SentvaeError(f"{path}: not a sentvae checkpoint, or truncated/corrupt ({_first_line(e)})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise SentvaeError(f"{path}: not a sentvae checkpoint")
    version = ckpt.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise SentvaeError(f"{path}: checkpoint format version {version} is newer than this sentvae "
                           f"reads ({VERSION}); upgrade sentvae")
    for key in ("model_config", "tokenizer", "model"):
        if key not in ckpt:
            raise SentvaeError(f"{path}: sentvae checkpoint is missing {key!r}")
    return ckpt


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:120] if text else type(e).__name__


def load_model(path, device="cpu"):
    """-> (model in eval mode on device, tokenizer, checkpoint dict)."""
    from sentvae.model import build_model
    from sentvae.tokenizer import Tokenizer

    ckpt = load_checkpoint(path)
    cfg = ModelConfig.from_dict(ckpt["model_config"])
    tok = Tokenizer(ckpt["tokenizer"], source=f"{path} (tokenizer)")
    if tok.vocab_size != cfg.vocab_size:
        raise SentvaeError(f"{path}: its tokenizer has {tok.vocab_size} pieces but the model "
                           f"expects {cfg.vocab_size}")
    model = build_model(cfg)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise SentvaeError(f"{path}: weights do not match the model config "
                           f"({str(e).splitlines()[0][:120]})") from None
    return model.to(device).eval(), tok, ckpt
