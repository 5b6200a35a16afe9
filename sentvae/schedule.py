"""The learning-rate schedule and early stopping: `learning_rate(step, ...)` and `on_validation`.

Two pure pieces the training loop calls, nanoGPT's `get_lr` style:

- `learning_rate(step, cfg, total, scale)`: the rate of update `step`. A linear warm-up over
  --warmup-steps, then `none` (constant), `plateau` (the base rate times `scale`, which only
  validation lowers) or `cosine` (from --lr down to --min-lr at the last step).
- `on_validation(improved, state, cfg, settled)`: after each validation, decide whether to go
  on, decay the rate (plateau: x --lr-decay once validation -ELBO has not improved for
  --patience validations; after --max-decays decays the next plateau stops the run), or stop
  (--early-stop N validations without improvement, any schedule). `gains(elbo, state, cfg,
  settled)` says what an improvement is: a fall below the best by more than --min-improvement.
- `reopen(state, cfg)`: on --resume of a run the schedule stopped, the decision the resumed
  options take instead (a raised --max-decays decays and goes on, as it would have there).

Validations that fall while the KL weight is still moving (autoencoder pretraining, annealing,
the aggressive phase) never count towards a plateau: the -ELBO rises there by design, as the
KL term is let back in, and a decay then would only slow the run down.

The schedule's state (scale, decays, validations without improvement) lives in the training
position and so in last.pt: `--resume` continues it exactly.
"""

import math

from sentvae.config import TrainConfig


def learning_rate(step: int, cfg: TrainConfig, total: int | None, scale: float = 1.0) -> float:
    """Learning rate of the update with 0-based index `step`."""
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    if cfg.lr_schedule == "cosine":
        if not total:
            raise ValueError("cosine needs the total number of steps")
        span = max(1, total - cfg.warmup_steps)
        progress = min(1.0, max(0, step - cfg.warmup_steps) / span)
        return warm * (cfg.min_lr + (cfg.lr - cfg.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress)))
    return warm * cfg.lr * scale


def settled_from(cfg: TrainConfig, total: int | None) -> float:
    """First step at which the KL weight has reached its final value for good (pretraining
    and annealing over); a validation before it does not count towards a plateau."""
    start = cfg.pretrain_steps
    if cfg.kl_anneal in ("linear", "logistic"):
        return start + cfg.anneal_steps
    if cfg.kl_anneal == "cyclical":
        if not total:
            return math.inf
        period = (total - start) / cfg.cycles
        return start + period * (cfg.cycles - 1 + cfg.cycle_ratio)   # the last cycle's ramp done
    return start


CONTINUE, DECAY, STOP = "continue", "decay", "stop"


def gains(elbo: float, state, cfg: TrainConfig, settled: bool) -> bool:
    """Whether a validation -ELBO counts as an improvement for the schedule: below the mark
    (`state.sched_best`) by more than --min-improvement. Only a settled gain moves the mark, so
    a crawl of 0.005 nats a validation counts once it has added up; best.pt is the trainer's
    business and follows every improvement."""
    gain = elbo < state.sched_best - cfg.min_improvement
    if settled and gain:
        state.sched_best = elbo
    return gain


def on_validation(improved: bool, state, cfg: TrainConfig, settled: bool) -> str:
    """Update `state` (.lr_scale, .decays, .bad) after a validation -> CONTINUE, DECAY or STOP.

    improved: the validation -ELBO is the best so far. settled: the KL weight is final."""
    if improved:
        state.bad = 0
        return CONTINUE
    if not settled:
        return CONTINUE
    state.bad += 1
    return decide(state, cfg)


def decide(state, cfg: TrainConfig) -> str:
    """What `state.bad` validations without improvement (settled) call for under cfg."""
    if cfg.lr_schedule == "plateau" and state.bad >= cfg.patience:
        if state.decays >= cfg.max_decays:
            return STOP
        state.decays += 1
        state.lr_scale *= cfg.lr_decay
        state.bad = 0
        return DECAY
    if cfg.early_stop and state.bad >= cfg.early_stop:
        return STOP
    return CONTINUE


def reopen(state, cfg: TrainConfig) -> str:
    """A run its schedule stopped, resumed with options that would not have stopped it there (a
    higher --max-decays, a later or no --early-stop, another schedule): -> the decision they take at
    that last validation (DECAY or CONTINUE), the stop cleared; STOP (kept) if they stop it too.
    The same decision a run with those options from the start would have taken there."""
    if not state.stop:
        return CONTINUE
    decision = decide(state, cfg)
    if decision != STOP:
        state.stop = ""
    return decision


def stop_reason(cfg: TrainConfig, state) -> str:
    if cfg.lr_schedule == "plateau" and state.decays >= cfg.max_decays and state.bad >= cfg.patience:
        return f"converged: no improvement after {state.decays} learning-rate decays"
    return f"early stop: no improvement in {state.bad} validations"
