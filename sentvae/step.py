"""One optimisation step, and where a step sits in the run (the KL weight, the total).

`train_step` is shared by the training loop and the speed benchmark (bench/train_speed.py),
so what is measured is what trains.
"""

import functools

import torch

from sentvae.config import TrainConfig
from sentvae.controlled import generator_loss
from sentvae.objective import build_objective, kl_weight, word_dropout
from sentvae.svi import Refiner


def build_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW (decoupled weight decay), or plain SGD (weight decay as an L2 term): the optimizer of
    the published PTB recipes (He et al. 2019, Li et al. 2019: lr 1.0, no momentum, clip 5), which
    keeps no moments that a restart from the best weights on a decay would throw away."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def train_step(model, opt, batch, weight: float, cfg: TrainConfig, scaler=None, only: list | None = None,
               step: int = 0) -> dict:
    """One update on one batch: word dropout, forward, the objective (--objective, annealed), backward,
    clip, update. Returns the batch's figures as tensors (read them later: no host sync here).

    With cfg.precision bf16/fp16 the forward runs under autocast (the loss itself is summed in
    float32); fp16 needs `scaler` (a torch.amp.GradScaler) against gradient underflow.
    only: update just these parameters (the others' gradients are dropped, and the optimizer skips a
    parameter without one) — for aggressive training's encoder-only and decoder-only steps.
    step: the update's index (an objective's own schedule follows it: the Gumbel temperature)."""
    objective = build_objective(cfg, getattr(model, "module", model).cfg, step)
    x = batch.tokens
    dec_inp = word_dropout(x[:, :-1], cfg.word_dropout)
    # --svi-steps: the posterior refined on each sentence's annealed ELBO, the loss backpropagated through it
    refiner = Refiner(cfg.svi_steps, cfg.svi_lr, cfg.beta * weight, through=True) if cfg.svi_steps else None
    amp = functools.partial(torch.autocast, x.device.type, dtype=_AMP[cfg.precision], enabled=cfg.precision != "fp32")
    with amp():
        terms = model(batch, dec_inp, samples=objective.samples, draw=objective.draw, svi=refiner,
                      relax=objective.relax)
    loss, figs = objective.loss(terms, weight)
    if cfg.attr_weight or cfg.indep_weight or cfg.sleep_weight:     # Hu et al. 2017's terms (labels)
        with amp():
            more, extra = generator_loss(getattr(model, "module", model), terms, batch, cfg)
        loss, figs = loss + more, {**figs, **extra}
    opt.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
    else:
        loss.backward()
    if only is not None:
        keep = {id(p) for p in only}
        for p in model.parameters():
            if id(p) not in keep:
                p.grad = None
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    if scaler is not None:
        scaler.step(opt)
        scaler.update()
    else:
        opt.step()
    return figs


_AMP = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def schedule_weight(step: int, cfg: TrainConfig, total: int | None) -> float:
    """The KL weight of update `step`: 0 while pretraining as an autoencoder, then the
    annealing schedule restarted from the end of pretraining."""
    if step < cfg.pretrain_steps:
        return 0.0
    return kl_weight(step - cfg.pretrain_steps, cfg, total - cfg.pretrain_steps if total else total)


def total_steps(cfg: TrainConfig, batches_per_epoch: int) -> int | None:
    """Steps the run will take, if known in advance (needed by cyclical annealing)."""
    limits = []
    if cfg.epochs > 0:
        limits.append(cfg.epochs * batches_per_epoch)
    if cfg.max_steps > 0:
        limits.append(cfg.max_steps)
    return min(limits) if limits else None
