"""Figures: training curves from runs' metrics.jsonl, and a 2-D map of the latent space.

matplotlib is imported inside the drawing functions, with the headless Agg backend: the
figures are files (PNG, SVG or PDF by the output's extension), never windows.
"""

import json
import math
from pathlib import Path

from sentvae.atomic import output_problem, write_atomically
from sentvae.errors import SentvaeError

FORMATS = (".png", ".svg", ".pdf")
SIZE = (12.0, 7.5)          # inches; at DPI, 1200 x 750 pixels
DPI = 100


def check_output(path) -> Path:
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise SentvaeError(f"-o {path}: the extension picks the format: {', '.join(FORMATS)}")
    problem = output_problem(path)
    if problem:
        raise SentvaeError(f"-o {path}: {problem}")
    return path


def read_run(run_dir) -> dict:
    """A run folder's metrics.jsonl -> {"name", "train", "valid", "aggressive"} (lists of rows).

    A run resumed after a crash logs some steps twice; the later rows win."""
    run_dir = Path(run_dir)
    path = run_dir / "metrics.jsonl" if run_dir.is_dir() else run_dir
    if not path.is_file():
        raise SentvaeError(f"{run_dir}: no metrics.jsonl (give a folder written by `sentvae train`)")
    rows = {"train": [], "valid": [], "aggressive": []}
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            row = _metrics_row(raw, f"{path} line {lineno}")
            if row is None:
                continue
            split, step = row["split"], row["step"]
            series = rows.setdefault(split, [])
            while series and series[-1]["step"] >= step:      # re-logged after a resume
                series.pop()
            series.append(row)
    if not rows["train"] and not rows["valid"]:
        raise SentvaeError(f"{path}: no figures yet (the run has not logged a step)")
    name = (run_dir if run_dir.is_dir() else run_dir.parent).resolve().name
    return {"name": name, **rows}


# the figures drawn from each kind of row: required, and those read where present
NEEDED = {"train": ("elbo", "rec", "kl"), "valid": ("elbo", "rec", "kl")}
OPTIONAL = ("loss", "kl_weight", "lr", "tokens_per_s", "au", "latent", "mi", "lr_scale", "inner_steps")


def _metrics_row(raw: bytes, where: str) -> dict | None:
    """One line of metrics.jsonl -> its row (None for a blank line); one line naming the file
    and line for anything else than what `sentvae train` writes: bytes that are not UTF-8, not
    JSON (a line cut short), or a figure missing, not a number, or not finite."""
    def bad(what: str):
        raise SentvaeError(f"{where}: not a metrics line ({what})")

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        bad(f"not valid UTF-8, byte {e.start + 1}")
    if not text.strip():
        return None
    try:
        row = json.loads(text)
    except (ValueError, RecursionError) as e:     # a cut line; an integer of 5,000 digits; [[[[...
        bad(f"not JSON: {getattr(e, 'msg', None) or type(e).__name__}")
    if not isinstance(row, dict):
        bad("not a JSON object")
    if not isinstance(row.get("split"), str):
        bad("no 'split'")
    step = row.get("step")
    if not (isinstance(step, int) and not isinstance(step, bool) and step >= 0):
        bad(f"'step' is {step!r}, not a step number")
    epoch = row.get("epoch", 0)
    if not (isinstance(epoch, int) and not isinstance(epoch, bool) and epoch >= 0):
        bad(f"'epoch' is {epoch!r}, not an epoch number")
    for key in NEEDED.get(row["split"], ()):
        if key not in row:
            bad(f"no {key!r}")
    for key in (*NEEDED.get(row["split"], ()), *OPTIONAL):
        v = row.get(key, 0.0)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            bad(f"{key!r} is {v!r}, not a finite number")
    return row


def batches_per_epoch(train: list) -> float | None:
    """Optimizer steps per epoch, from the logged (step, epoch) pairs: each row with epoch e at
    step s says e <= s/n <= e + 1, so n lies in [max s/(e+1), min s/e]; None before epoch 1."""
    lo = max((r["step"] / (r["epoch"] + 1) for r in train if "epoch" in r), default=0.0)
    his = [r["step"] / r["epoch"] for r in train if r.get("epoch", 0) >= 1]
    if not his:
        return None
    return (lo + min(his)) / 2 if lo <= min(his) else min(his)


def _phases(train: list) -> tuple[float | None, float | None]:
    """(end of autoencoder pretraining, end of annealing) as steps, from the logged KL weight."""
    w = [(r["step"], r.get("kl_weight", 1.0)) for r in train]
    if not w:
        return None, None
    top = max(x for _, x in w)
    pre = next((s for s, x in w if x > 0), None) if w[0][1] == 0 else None
    start = pre or 0
    ramp = next((s for s, x in w if s >= start and x >= 0.999 * top), None)
    return pre, (ramp if ramp and ramp > start and top > 0 else None)


def lr_decays(valid: list[dict]) -> list[int]:
    """Steps of the validations after which the learning rate was cut: those that decided "decay",
    and those that decided "stop" where the run went on at a lower rate (a `--resume` with more
    decays allowed turns a stop into a decay; metrics.jsonl still says stop)."""
    # Not every lower rate: a cosine schedule lowers it at each validation, and those are no decays.
    cuts = []
    for r, after in zip(valid, valid[1:] + [None]):
        lower_after = after is not None and after.get("lr", 0) < r.get("lr", 0)
        if r.get("decision") == "decay" or (r.get("decision") == "stop" and lower_after):
            cuts.append(r["step"])
    return cuts


def _robust_limits(ax, points: list, floor: float | None = None) -> None:
    """Scale the y axis to the later 60% of training (its 95th percentile), so that early spikes
    (an untrained model, KL while pretraining) do not flatten what matters: they run off the top."""
    points = [(s, v) for s, v in points if v is not None and math.isfinite(v)]
    if len(points) < 5:
        return
    last = max(s for s, _ in points)
    late = sorted(v for s, v in points if s >= 0.4 * last) or sorted(v for _, v in points)
    lo, hi = min(v for _, v in points), late[math.ceil(0.95 * (len(late) - 1))]   # ceil: of 10 validations, the top one shows
    pad = 0.08 * (hi - lo or 1.0)
    ax.set_ylim(lo - pad if floor is None else floor, hi + 2 * pad)


MIN_VALID = 5     # validations a run needs for the -ELBO, reconstruction and KL axes to follow them


def axis_points(train: list, valid: list, key: str, k: float = 1.0) -> list:
    """The (x, value) points a run gives the y limits of the `key` panel: its validations where it
    has MIN_VALID or more. The train curve (one log interval, dropout on, a few batches) swings by
    tens of nats on PTB: it is context, and scaling to it flattens differences of a tenth of a nat
    between validation curves (a short last stage has 10 validations, not 20). Fewer validations
    than that: both curves."""
    rows = valid if len(valid) >= MIN_VALID else train + valid
    return [(r["step"] * k, r[key]) for r in rows]


def training_figure(runs: list[dict], path, x: str = "step") -> Path:
    """One figure, six panels against step (or x="epoch": runs with other batch sizes side by
    side); several runs overlaid, one colour each; written to path (its extension: the format)."""
    path = check_output(path)
    _save(draw_training(runs, x), path)
    return path


def draw_training(runs: list[dict], x: str = "step"):
    """The figure of training_figure, not yet written: -> a matplotlib Figure."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, axes = plt.subplots(2, 3, figsize=SIZE, dpi=DPI)
    ax_elbo, ax_rec, ax_kl, ax_au, ax_lr, ax_speed = axes.flat
    ax_w = ax_kl.twinx()
    colors = plt.get_cmap("tab10").colors
    spans = {"elbo": [], "rec": [], "kl": []}           # (step, value) of every point drawn
    for i, run in enumerate(runs):
        c = colors[i % len(colors)]
        tr, va = run["train"], run["valid"]
        k = 1.0
        if x == "epoch":
            n = batches_per_epoch(tr)
            if n is None:
                raise SentvaeError(f"plot --x epoch: {run['name']} has not finished an epoch yet; use --x step")
            k = 1.0 / n
        ts = [r["step"] * k for r in tr]
        vs = [r["step"] * k for r in va]
        for ax, key in ((ax_elbo, "elbo"), (ax_rec, "rec"), (ax_kl, "kl")):
            ax.plot(ts, [r[key] for r in tr], color=c, lw=0.8, alpha=0.45)
            ax.plot(vs, [r[key] for r in va], color=c, lw=1.6, marker="o", ms=3)
            spans[key] += axis_points(tr, va, key, k)
        has_latent = any(r["kl"] > 0 for r in tr + va)      # an LM baseline has no KL to weigh
        if has_latent:
            ax_w.plot(ts, [r.get("kl_weight", 1.0) for r in tr], color=c, lw=1.0, ls="--")
        ax_au.plot(vs, [r.get("au", float("nan")) for r in va], color=c, lw=1.6, marker="o", ms=3)
        ax_lr.plot(ts, [r.get("lr", float("nan")) for r in tr], color=c, lw=1.4)
        ax_speed.plot(ts, [r.get("tokens_per_s", float("nan")) for r in tr], color=c, lw=1.0)
        if va:                                   # the checkpoint best.pt holds
            best = min(va, key=lambda r: r["elbo"])
            ax_elbo.plot(best["step"] * k, best["elbo"], marker="*", ms=15, color=c, mec="black", mew=0.7, zorder=5)
        pre, ramp = _phases(tr) if has_latent else (None, None)
        for ax in axes.flat:
            if pre:
                ax.axvspan(0, pre * k, color=c, alpha=0.10, lw=0)
            if ramp:
                ax.axvspan((pre or 0) * k, ramp * k, color=c, alpha=0.04, lw=0, hatch="//")
            for step in lr_decays(va):
                ax.axvline(step * k, color=c, ls=":", lw=1.0)
            for r in run.get("aggressive", []):
                if not r.get("aggressive", True):
                    ax.axvline(r["step"] * k, color=c, ls="-.", lw=1.0)
    _robust_limits(ax_elbo, spans["elbo"])
    _robust_limits(ax_rec, spans["rec"])
    _robust_limits(ax_kl, spans["kl"], floor=0.0)
    ax_elbo.set_title("-ELBO (true bound), nats/sentence")
    ax_rec.set_title("reconstruction -E log p(x|z)")
    ax_kl.set_title("KL(q(z|x) || p(z)); KL weight dashed")
    ax_w.set_ylim(0, 1.05)
    ax_w.set_ylabel("KL weight")
    ax_au.set_title("active units (validation)")
    ax_lr.set_title("learning rate")
    if any(r.get("lr") for run in runs for r in run["train"]):
        ax_lr.set_yscale("log")
    ax_speed.set_title("training tokens/s")
    for ax in axes.flat:
        ax.set_xlabel(x)
        ax.grid(alpha=0.3)
    ax_au.set_ylim(bottom=0)
    run_handles = [Line2D([], [], color=colors[i % len(colors)], lw=2, label=run["name"]) for i, run in enumerate(runs)]
    style = [Line2D([], [], color="gray", lw=0.8, alpha=0.6, label="train (log interval)"),
             Line2D([], [], color="gray", lw=1.6, marker="o", ms=3, label="validation"),
             Line2D([], [], color="gray", marker="*", ms=12, ls="", mec="black", label="best checkpoint"),
             matplotlib.patches.Patch(color="gray", alpha=0.25, label="AE pretraining"),
             matplotlib.patches.Patch(facecolor="white", edgecolor="gray", hatch="//", label="KL annealing"),
             Line2D([], [], color="gray", ls=":", label="lr decay"),
             Line2D([], [], color="gray", ls="-.", label="aggressive phase ends")]
    fig.legend(handles=run_handles + style, loc="lower center", ncol=min(6, len(run_handles) + len(style)),
               fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def latent_figure(mu, values: list, label: str, path, title: str, path_points=None, ends=None) -> Path:
    """Posterior means (N, nz) projected on their two leading principal components, coloured by
    `values` (numbers: a colour bar; strings: one colour per category); path_points (S, nz), if
    given, drawn as an interpolation path with its two end sentences."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    path = check_output(path)
    X = np.asarray(mu, dtype=np.float64)
    if X.shape[0] < 3:
        raise SentvaeError("plot --latent: needs at least 3 sentences")
    mean = X.mean(axis=0)
    _, s, vt = np.linalg.svd(X - mean, full_matrices=False)
    pcs = vt[:2].T                                                       # (nz, 2)
    explained = s ** 2 / max((s ** 2).sum(), 1e-12)
    P = (X - mean) @ pcs
    fig, ax = plt.subplots(figsize=(8, 7), dpi=DPI)
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if numeric:
        sc = ax.scatter(P[:, 0], P[:, 1], c=values, cmap="viridis", s=9, alpha=0.8, lw=0)
        fig.colorbar(sc, ax=ax, label=label)
    else:
        cats = sorted({str(v) for v in values})
        if len(cats) > 20:
            raise SentvaeError(f"--color-by {label}: {len(cats)} distinct values; at most 20 categories can be told apart")
        cmap = plt.get_cmap("tab20" if len(cats) > 10 else "tab10")
        for k, cat in enumerate(cats):
            m = np.array([str(v) == cat for v in values])
            ax.scatter(P[m, 0], P[m, 1], color=cmap(k), s=9, alpha=0.8, lw=0, label=cat)
        ax.legend(title=label, fontsize=8, markerscale=2)
    if path_points is not None:
        Q = (np.asarray(path_points, dtype=np.float64) - mean) @ pcs
        ax.plot(Q[:, 0], Q[:, 1], color="crimson", lw=1.5, marker="o", ms=5, zorder=4)
        for (x, y), text, tag in zip((Q[0], Q[-1]), ends or ("", ""), ("A", "B")):
            short = text if len(text) <= 40 else text[:37] + "..."
            ax.annotate(f"{tag}: {short}", (x, y), xytext=(6, 6), textcoords="offset points", fontsize=9,
                        color="crimson", bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="crimson", alpha=0.85))
    ax.set_xlabel(f"PC 1 ({100 * explained[0]:.0f}% of variance)")
    ax.set_ylabel(f"PC 2 ({100 * explained[1]:.0f}% of variance)" if len(explained) > 1 else "PC 2")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, path)
    return path


def _save(fig, path: Path) -> None:
    """Write the figure atomically: a failure midway (a full disk) leaves a figure already there whole."""
    import matplotlib.pyplot as plt
    try:
        write_atomically(path, lambda f: fig.savefig(f, format=path.suffix.lower()[1:]))
    except OSError as e:
        raise SentvaeError(f"{path}: cannot write ({e.strerror})", 1) from None
    finally:
        plt.close(fig)
