"""The training loop: step-driven, validation every N steps, atomic checkpoints, exact resume.

Data order is a pure function of (seed, epoch), so resuming needs only the position
(epoch, batch) plus the optimizer and RNG states, all of which last.pt holds. Figures are
kept as tensors and read back only every `log_every` steps: no host sync per step.
"""

import json
import math
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sentvae import aggressive, schedule
from sentvae import distributed as dist
from sentvae.checkpoint import load_checkpoint, remove_stale_temporaries, save_checkpoint
from sentvae.config import ModelConfig, TrainConfig
from sentvae.data import Corpus, collate, make_batches, padding_fraction
from sentvae.errors import SentvaeError, TrainingInterrupted
from sentvae.evaluate import evaluate, evaluate_elbo
from sentvae.model import build_model
from sentvae.objective import elbo_loss, kl_weight, word_dropout
from sentvae.tokenizer import Tokenizer


@dataclass
class Position:
    step: int = 0          # optimizer updates done
    epoch: int = 0
    batch: int = 0         # next batch index within the epoch
    best: float = math.inf # best validation -ELBO per sentence
    elapsed: float = 0.0   # training seconds over all runs
    aggressive_done: bool = False   # He et al. 2019: the aggressive phase has ended
    best_mi: float = -math.inf      # best validation MI seen while aggressive
    lr_scale: float = 1.0           # plateau schedule: the product of the decays so far
    decays: int = 0                 # plateau schedule: decays so far
    bad: int = 0                    # validations since the last improvement (after settling)
    sched_best: float = math.inf    # best -ELBO of the regular validations (the schedule's)
    stop: str = ""                  # why an early stop ended the run ("" while it goes on)


@dataclass
class TrainResult:
    position: Position
    last: dict = field(default_factory=dict)    # final validation figures
    best: dict = field(default_factory=dict)
    stopped: str = ""                           # why training ended
    model: object = None                        # the trained SentenceVAE (this process's copy)


def train_step(model, opt, x: torch.Tensor, lengths: torch.Tensor, weight: float, cfg: TrainConfig,
               scaler=None, only: list | None = None) -> dict:
    """One update on one batch: word dropout, forward, the annealed ELBO, backward, clip, AdamW.
    Returns the batch's figures as tensors (read them later: no host sync here).

    With cfg.precision bf16/fp16 the forward runs under autocast (the loss itself is summed in
    float32); fp16 needs `scaler` (a torch.amp.GradScaler) against gradient underflow.
    only: update just these parameters (the others' gradients are dropped, and AdamW skips a
    parameter without one) — for aggressive training's encoder-only and decoder-only steps."""
    dec_inp = word_dropout(x[:, :-1], cfg.word_dropout)
    with torch.autocast(x.device.type, dtype=_AMP[cfg.precision], enabled=cfg.precision != "fp32"):
        log_px_z, mu, logvar, bow_nll = model(x, lengths, dec_inp)
    loss, figs = elbo_loss(log_px_z.float(), mu.float(), logvar.float(), weight, cfg, bow_nll.float())
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


class _StopRequested(Exception):
    pass


class _StopFlag:
    """SIGINT/SIGTERM ask the loop to stop at the next step boundary, so that the saved
    state is consistent; a second Ctrl-C interrupts at once without saving (the weights
    may be half-updated then), leaving the previous last.pt as it was."""

    def __init__(self):
        self.requested = False

    def __call__(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True


@contextmanager
def _graceful_stop():
    flag = _StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    old = {s: signal.signal(s, flag) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def resume_configs(out_dir) -> tuple[ModelConfig, dict, Tokenizer]:
    """What a resumed run must reuse from last.pt: model config, saved train config, tokenizer."""
    path = Path(out_dir) / "last.pt"
    ckpt = load_checkpoint(path)
    if "train_state" not in ckpt:
        raise SentvaeError(f"{path}: holds no training state to resume from")
    return (ModelConfig.from_dict(ckpt["model_config"]), ckpt["train_config"],
            Tokenizer(ckpt["tokenizer"], source=str(path)))


def train(model_cfg: ModelConfig, cfg: TrainConfig, tokenizer: Tokenizer, train_data: Corpus,
          valid_data: Corpus, out_dir, device="cpu", resume: bool = False, on_event=None) -> TrainResult:
    out = Path(out_dir)
    device = torch.device(device)
    rank, world = dist.rank_world()
    lead = rank == 0                          # only rank 0 validates, writes and reports
    emit = (on_event if lead else None) or (lambda kind, info: None)
    if cfg.precision == "fp16" and device.type != "cuda":
        raise SentvaeError("--precision fp16: needs a CUDA device; use bf16 on CPU")
    torch.manual_seed(cfg.seed)               # the same initial weights on every rank
    raw = build_model(model_cfg).to(device)
    model = raw
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(
            raw, device_ids=[device.index] if device.type == "cuda" else None)
    opt = torch.optim.AdamW(raw.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" else None
    pos = Position()
    lengths = train_data.lengths

    def epoch_batches(epoch: int):
        # every rank builds the same list and takes every world-th batch of an equal share
        b = make_batches(lengths, cfg.max_tokens, cfg.seed, epoch)
        return b[rank:len(b) - len(b) % world:world]

    n_batches = len(epoch_batches(0))         # the same every epoch
    if n_batches == 0:
        raise SentvaeError(f"--data: too little data for {world} processes at --max-tokens {cfg.max_tokens}")
    total = total_steps(cfg, n_batches)
    if cfg.kl_anneal == "cyclical" and total is None:
        raise SentvaeError("--kl-anneal cyclical: needs --epochs or --max-steps to place its cycles")
    if cfg.lr_schedule == "cosine" and total is None:
        raise SentvaeError("--lr-schedule cosine: needs --epochs or --max-steps to know where it ends")
    settled_from = schedule.settled_from(cfg, total)

    if resume:
        ckpt = load_checkpoint(out / "last.pt")
        st = ckpt["train_state"]
        if st["sentences"] != len(train_data):
            raise SentvaeError(f"--resume: {out / 'last.pt'} was trained on {st['sentences']} sentences, "
                               f"this data has {len(train_data)}; resume with the same --data")
        raw.load_state_dict(ckpt["model"])
        opt.load_state_dict(st["optimizer"])
        for g in opt.param_groups:            # a changed --weight-decay takes effect (and --lr,
            g["weight_decay"] = cfg.weight_decay   # set before every step from the schedule)
        pos = Position(**st["position"])
        torch.set_rng_state(st["rng"])
        if device.type == "cuda" and st.get("cuda_rng"):
            torch.cuda.set_rng_state_all(st["cuda_rng"])
    if world > 1:
        # noise differs between ranks (else word dropout would repeat itself across shards)
        torch.manual_seed(cfg.seed * 100_003 + pos.step * 1009 + rank)
    metrics = None
    if lead:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SentvaeError(f"{out}: cannot create the output folder ({e.strerror})", 1) from None
        remove_stale_temporaries(out)
        metrics_path = out / "metrics.jsonl"
        try:
            metrics = open(metrics_path, "a" if resume else "w", encoding="utf-8")
        except OSError as e:
            raise SentvaeError(f"{metrics_path}: cannot write ({e.strerror})", 1) from None

    def log(row):
        if metrics is not None:
            metrics.write(json.dumps(row) + "\n")
            metrics.flush()

    def payload(with_state: bool, figures: dict) -> dict:
        p = {"model_config": model_cfg.to_dict(), "train_config": cfg.to_dict(),
             "tokenizer": tokenizer.proto,
             "model": {k: v.detach().cpu() for k, v in raw.state_dict().items()},
             "info": {"step": pos.step, "epoch": pos.epoch, "valid": figures,
                      "best_valid_elbo": pos.best, "parameters": raw.num_parameters(),
                      "processes": world,
                      "train_sentences": len(train_data), "train_seconds": pos.elapsed}}
        if with_state:
            p["train_state"] = {
                "optimizer": opt.state_dict(), "position": vars(pos).copy(),
                "rng": torch.get_rng_state(), "sentences": len(train_data),
                "cuda_rng": torch.cuda.get_rng_state_all() if device.type == "cuda" else []}
        return p

    result = TrainResult(pos, model=raw)
    eval_tokens = max(cfg.max_tokens, 4000)      # validation needs no gradients: bigger batches

    def settled() -> bool:
        # the KL weight is final and the aggressive phase over: -ELBO should now only fall
        return pos.step >= settled_from and (not cfg.aggressive or pos.aggressive_done)

    def restart_from_best():
        """Plateau decay with --decay-restart: back to the best weights, fresh AdamW moments."""
        if lead:
            raw.load_state_dict(load_checkpoint(out / "best.pt")["model"])
        dist.broadcast_module(raw)
        opt.state.clear()

    def validate_and_save(regular: bool = True):
        """Validate, update best.pt, let the schedule decide, save last.pt. Only regular
        validations (every --eval-every steps) feed the schedule: the extra one made when a
        --time-budget ends a run must not, or a resumed run would decay where one run did not."""
        decision = schedule.CONTINUE
        if lead:
            figures = evaluate_elbo(raw, valid_data, max_tokens=eval_tokens,
                                    device=device, seed=cfg.seed)
            if not math.isfinite(figures["elbo"]):
                raise SentvaeError(f"non-finite validation ELBO at step {pos.step}; kept the last good "
                                   f"checkpoint {out / 'last.pt'}", 1)
            figures = {"step": pos.step, **figures, "lr": opt.param_groups[0]["lr"]}
            improved = figures["elbo"] < pos.best
            if improved:
                pos.best = figures["elbo"]
                result.best = figures
            if regular:
                gain = figures["elbo"] < pos.sched_best
                pos.sched_best = min(pos.sched_best, figures["elbo"])
                decision = schedule.on_validation(gain, pos, cfg, settled())
            if decision == schedule.STOP:
                pos.stop = schedule.stop_reason(cfg, pos)
            if improved:      # best.pt first: a decay right after restarts from it
                save_checkpoint(out / "best.pt", payload(False, figures))
        # every rank takes rank 0's decision
        code, pos.lr_scale, decays, bad = dist.broadcast_floats(
            [("continue", "decay", "stop").index(decision), pos.lr_scale, pos.decays, pos.bad], device)
        decision, pos.decays, pos.bad = ("continue", "decay", "stop")[int(code)], int(decays), int(bad)
        if decision == schedule.DECAY and cfg.decay_restart:
            restart_from_best()
        if decision == schedule.STOP:
            pos.stop = pos.stop or "early stop"
            result.stopped = pos.stop
        if lead:
            save_checkpoint(out / "last.pt", payload(True, figures))
            result.last = figures
            row = {**figures, "best": improved, "decision": decision, "lr_scale": pos.lr_scale}
            log({"split": "valid", **row})
            emit("valid", row)
        dist.barrier()

    def check_aggressive_phase():
        """He et al. 2019: the aggressive phase ends once validation MI falls below its best."""
        if not cfg.aggressive or pos.aggressive_done:
            return
        # same weights and data on every rank: the same decision everywhere
        mi = evaluate(raw, valid_data, iw_samples=1, max_tokens=eval_tokens, device=device, seed=cfg.seed).mi
        pos.aggressive_done = mi < pos.best_mi
        pos.best_mi = max(pos.best_mi, mi)
        log({"split": "aggressive", "epoch": pos.epoch, "step": pos.step, "mi": mi,
             "aggressive": not pos.aggressive_done})

    emit("start", {"steps": total, "step": pos.step, "batches_per_epoch": n_batches,
                   "padding": padding_fraction(make_batches(lengths, cfg.max_tokens, cfg.seed, 0), lengths),
                   "sentences": len(train_data), "parameters": raw.num_parameters(),
                   "device": str(device) + (f" x {world} processes" if world > 1 else "")})
    model.train()
    acc = {k: torch.zeros((), device=device) for k in ("loss", "elbo", "rec", "kl")}
    acc_steps, acc_tokens, t_log = 0, 0, time.perf_counter()
    inner = 0                                  # aggressive: encoder-only updates since the last log
    run_start = time.perf_counter()
    elapsed0 = pos.elapsed
    last_validated = -1

    def flush_log():
        nonlocal acc_steps, acc_tokens, t_log
        figs = dist.mean_over_ranks({k: float(v) / max(acc_steps, 1) for k, v in acc.items()}, device)
        if not all(math.isfinite(v) for v in figs.values()):
            raise SentvaeError(f"non-finite loss by step {pos.step} (lower --lr or check the data); "
                               f"kept the last good checkpoint {out / 'last.pt'}", 1)
        now = time.perf_counter()
        nonlocal inner
        if cfg.aggressive:
            figs["inner_steps"] = inner / max(acc_steps, 1)
            inner = 0
        row = {"split": "train", "step": pos.step, "epoch": pos.epoch, **figs,
               "kl_weight": cfg.beta * schedule_weight(max(pos.step - 1, 0), cfg, total),
               "lr": opt.param_groups[0]["lr"],
               "tokens_per_s": world * acc_tokens / max(now - t_log, 1e-9)}
        log(row)
        emit("log", row)
        for v in acc.values():
            v.zero_()
        acc_steps, acc_tokens, t_log = 0, 0, now

    def finished() -> str:
        if pos.stop:
            return pos.stop
        if total is not None and pos.step >= total:
            return "max steps" if cfg.max_steps and pos.step >= cfg.max_steps else "epochs"
        # the clock may differ between ranks: stop when any rank's budget is spent
        if cfg.time_budget and dist.any_rank(time.perf_counter() - run_start >= cfg.time_budget, device):
            return "time budget"
        return ""

    result.stopped = finished()  # a resumed run may have nothing left to do
    enc_dec = aggressive.split_parameters(raw) if cfg.aggressive else None   # once, not per step
    with _graceful_stop() as stop:
        try:
            while not result.stopped:
                batches = epoch_batches(pos.epoch)
                while pos.batch < len(batches) and not result.stopped:
                    if dist.any_rank(stop.requested, device):
                        raise _StopRequested
                    idx = batches[pos.batch]
                    x, lens = collate(train_data, idx)
                    if device.type == "cuda":          # pinned pages: an asynchronous copy
                        x, lens = x.pin_memory(), lens.pin_memory()
                    x = x.to(device, non_blocking=True)
                    lens = lens.to(device, non_blocking=True)
                    if cfg.pretrain_steps and pos.step == cfg.pretrain_steps:
                        # Li et al. 2019: the encoder is now a good autoencoder's; start the
                        # decoder afresh (and forget its optimizer moments) so it must use z
                        # from a fixed seed: every DDP rank must draw the same new decoder
                        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                            torch.manual_seed(cfg.seed + cfg.pretrain_steps)
                            for p in raw.reset_decoder():
                                opt.state.pop(p, None)
                    w = schedule_weight(pos.step, cfg, total)
                    lr = schedule.learning_rate(pos.step, cfg, total, pos.lr_scale)
                    for g in opt.param_groups:
                        g["lr"] = lr
                    if cfg.aggressive and not pos.aggressive_done:
                        enc, dec = enc_dec

                        def encoder_update(b):
                            xb, lb = collate(train_data, b)
                            return train_step(model, opt, xb.to(device), lb.to(device), w, cfg, scaler, enc)["loss"]

                        inner += aggressive.inner_loop(encoder_update, batches, cfg.seed, pos.step, device)
                        figs = train_step(model, opt, x, lens, w, cfg, scaler, dec)
                    else:
                        figs = train_step(model, opt, x, lens, w, cfg, scaler)
                    for k, v in figs.items():
                        acc[k] += v
                    acc_steps += 1
                    acc_tokens += int(train_data.lengths[idx].sum()) + len(idx)  # host side: no sync
                    pos.step += 1
                    pos.batch += 1
                    pos.elapsed = elapsed0 + time.perf_counter() - run_start
                    emit("step", {"step": pos.step})
                    result.stopped = finished()
                    if pos.step % cfg.log_every == 0:
                        flush_log()
                    if cfg.aggressive_every and pos.step % cfg.aggressive_every == 0:
                        check_aggressive_phase()          # before saving: a resume sees the decision
                    if pos.step % cfg.eval_every == 0:
                        validate_and_save()
                        last_validated = pos.step
                if pos.batch >= len(batches):
                    if not cfg.aggressive_every:
                        check_aggressive_phase()
                    pos.epoch += 1
                    pos.batch = 0
                    result.stopped = result.stopped or finished()
        except _StopRequested:
            # stopped between two steps: weights, optimizer and position agree
            if acc_steps:
                flush_log()
            if lead:
                save_checkpoint(out / "last.pt", payload(True, result.last))
                metrics.close()
            raise TrainingInterrupted(pos.step, out / "last.pt") from None
        except BaseException:
            if metrics is not None:
                metrics.close()
            raise
    if acc_steps:
        flush_log()
    if last_validated != pos.step:
        validate_and_save(regular=False)
    if metrics is not None:
        metrics.close()
    emit("end", {"stopped": result.stopped, "step": pos.step})
    return result
