"""What a run's checkpoints hold and how a run comes back from last.pt.

best.pt and last.pt hold the weights, both configs, the tokenizer and the run's figures
(`contents`); last.pt adds what an exact resume needs (`train_state`): the optimizer, the position
in the data and the schedule, and the RNG states. `restore` puts all of it back, so a resumed
run takes the same steps one uninterrupted run would have taken.
"""

from pathlib import Path

import torch

from sentvae.checkpoint import load_checkpoint
from sentvae.config import ModelConfig, TrainConfig
from sentvae.errors import SentvaeError, first_line
from sentvae.tokenizer import Tokenizer
from sentvae.trainstate import Position


def resume_configs(out_dir) -> tuple[ModelConfig, dict, Tokenizer]:
    """What a resumed run must reuse from last.pt: model config, saved train config, tokenizer."""
    path = Path(out_dir) / "last.pt"
    ckpt = load_checkpoint(path)
    if "train_state" not in ckpt:
        raise SentvaeError(f"{path}: holds no training state to resume from")
    return (ModelConfig.from_dict(ckpt["model_config"], source=str(path)), ckpt["train_config"],
            Tokenizer(ckpt["tokenizer"], source=str(path)))


def contents(model, model_cfg: ModelConfig, cfg: TrainConfig, tokenizer: Tokenizer, pos: Position,
             figures: dict, sentences: int, processes: int) -> dict:
    """A checkpoint's payload: the weights (on the CPU), configs, tokenizer and the figures of
    the validation it was saved at."""
    return {"model_config": model_cfg.to_dict(), "train_config": cfg.to_dict(),
            "tokenizer": tokenizer.proto,
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "info": {"step": pos.step, "epoch": pos.epoch, "valid": figures,
                     "best_valid_elbo": pos.best, "parameters": model.num_parameters(),
                     "processes": processes, "train_sentences": sentences, "train_seconds": pos.elapsed}}


def train_state(opt, pos: Position, sentences: int, device: torch.device) -> dict:
    """What last.pt adds for an exact resume."""
    return {"optimizer": opt.state_dict(), "position": vars(pos).copy(),
            "rng": torch.get_rng_state(), "sentences": sentences,
            "cuda_rng": torch.cuda.get_rng_state_all() if device.type == "cuda" else []}


def restore(path: Path, model, opt, cfg: TrainConfig, sentences: int, device: torch.device) -> tuple[Position, dict]:
    """Continue exactly from last.pt at path: its weights into model, its optimizer state into opt
    (with this call's --weight-decay and --momentum), its RNG states; -> its position, and the
    validation figures it was saved with if a validation at that very step saved it ({} if not:
    a run stopped between validations must validate again)."""
    ckpt = load_checkpoint(path)
    st = ckpt["train_state"]
    if st["sentences"] != sentences:
        raise SentvaeError(f"--resume: {path} was trained on {st['sentences']} sentences, "
                           f"this data has {sentences}; resume with the same --data")
    load_states(path, model, opt, ckpt["model"], st["optimizer"])
    for g in opt.param_groups:     # a changed --weight-decay/--momentum takes effect (and --lr,
        g["weight_decay"] = cfg.weight_decay   # which the schedule sets every step)
        if "momentum" in g:
            g["momentum"] = cfg.momentum
    pos = Position(**st["position"])
    try:
        torch.set_rng_state(st["rng"])
        if device.type == "cuda" and st.get("cuda_rng"):
            torch.cuda.set_rng_state_all(st["cuda_rng"])
    except RuntimeError as e:
        raise SentvaeError(f"{path}: malformed checkpoint: train_state['rng'] ({first_line(e)})") from None
    figures = ckpt["info"]["valid"]
    return pos, figures if figures.get("step") == pos.step else {}


def load_states(path, model, opt, weights: dict, optimizer: dict) -> None:
    """The weights and optimizer state of a resumed run; one line naming the file if they do
    not fit the model its config describes."""
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise SentvaeError(f"{path}: weights do not match the model config ({first_line(e)})") from None
    try:
        opt.load_state_dict(optimizer)
    except (ValueError, KeyError, TypeError, RuntimeError) as e:
        raise SentvaeError(f"{path}: malformed checkpoint: train_state['optimizer'] does not fit the "
                           f"model ({first_line(e)})") from None
