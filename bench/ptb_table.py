"""Print the PTB results table (docs/results/ptb.md) from what `bench/ptb.sh ROW` left in $RUNS/ptb-ROW/.

    RUNS=runs .venv/bin/python bench/ptb_table.py [--ran | --pair ROW_A ROW_B [EVAL]]

Per row: IW-NLL (K = 500) and PPL on the paired subset (every 10th test sentence) and, where
run (FULL=1), on the whole test set (while only some of its ten parts have finished: those, named,
with how many sentences they hold, and paired on them); -ELBO, KL, MI, AU on the whole test set; and for each VAE
its paired difference from the LM of the same architecture, mean over sentences with a 95%
interval (normal approximation over sentences: the sentence-sampling error, which is far
larger than the Monte Carlo one). A VAE is compared with the best LM of its architecture (the
lowest exact NLL on the whole test set among the LM rows evaluated so far), named in the cell
when there is more than one. A row not yet run is marked so (`--ran`: left out); $RUNS/ptb-ROW/note.txt,
if present, is appended to the row's name.

`--pair ROW_A ROW_B [EVAL]` prints row A's paired difference from row B on EVAL (default
eval-k500), for two rows the table does not pair (two VAEs).

A row whose folder is not in $RUNS (a run on another machine, gone with it) is read from what
bench/ptb.sh keeps of it in bench/results/ptb-ROW/ (summaries, per-sentence figures and time.txt:
no text, no checkpoints), committed, so that a later run can still be paired with it."""

import json
import math
import os
import sys
from pathlib import Path

from ptb_merge import PARTS, part_indices, read_lines
from sentvae.evaluate import summarize

ROOT = Path(__file__).resolve().parent.parent
RUNS = Path(os.environ.get("RUNS", ROOT / "runs"))
RESULTS = ROOT / "bench" / "results"     # what bench/ptb.sh keeps of each run (no checkpoints): committed
ROWS = [("LSTM-LM", "lstm-lm", "lstm", True),     # (name, key, architecture, is an LM)
        ("LSTM-LM, SGD (the published code's optimizer)", "lstm-lm-sgd", "lstm", True),
        ("LSTM-VAE (Bowman: anneal + word dropout 0.4)", "lstm-vae", "lstm", False),
        ("+ cyclical annealing (4 cycles)", "lstm-vae-cyclical", "lstm", False),
        ("+ AE pretraining + free bits 0.25/dim", "lstm-vae-pretrain-freebits", "lstm", False),
        ("the same, allowed 6 decays of the rate (its first 4: the row above's, resumed from a copy of its folder)",
         "lstm-vae-pretrain-freebits-d6", "lstm", False),
        ("the 6-decay recipe run again from scratch (bf16, one thread): another draw of its plateau schedule",
         "lstm-vae-pretrain-freebits-d6-rerun", "lstm", False),
        ("the 6-decay row, then its floor lowered to 7 nats in all (0.21875/dim), AdamW from 6.25e-5, 2 decays "
         "(--init-from; training: this stage's, on top of the 6-decay row's)", "lstm-vae-pretrain-freebits-fb7", "lstm", False),
        ("the 6-decay rerun, then the same 7-nat floor (--init-from; the start of SA-VAE's evaluation refinement)",
         "lstm-vae-pretrain-freebits-fb7-rerun", "lstm", False),
        ("the 6-decay row, then no floor (the true ELBO), AdamW from 6.25e-5 (--init-from)",
         "lstm-vae-pretrain-freebits-elbo-lo", "lstm", False),
        ("the same from 2.5e-4", "lstm-vae-pretrain-freebits-elbo-hi", "lstm", False),
        ("the 6-decay row, then only its encoder trained on, the true ELBO (--init-from, --train-only encoder: "
         "the decoder, so p(x), kept)", "lstm-vae-pretrain-freebits-enc", "lstm", False),
        ("+ aggressive encoder training", "lstm-vae-aggressive", "lstm", False),
        ("the converged + AE pretraining + free bits run, continued with the floor lowered to 5 nats in all "
         "(0.15625/dim, Li et al.'s lambda = 5)", "lstm-vae-fb5", "lstm", False),
        ("+ AE pretraining + free bits 7 nats in all (0.21875/dim), up to 6 decays", "lstm-vae-fb7", "lstm", False),
        ("AE pretraining + per-sentence free bits, SGD (the published code's recipe)", "lstm-vae-sgd", "lstm", False),
        ("VAE started from the SGD LM (--init-decoder), per-sentence free bits, SGD 0.25", "lstm-vae-lm-init", "lstm", False),
        ("VAE started from the SGD LM (--init-decoder), per-sentence free bits, AdamW 3e-4", "lstm-vae-lm-init-adamw", "lstm", False),
        ("LSTM-LM, AdamW to its first plateau (stage 1 of the next row)", "lstm-lm-adamw1", "lstm", True),
        ("LSTM-LM, AdamW to its first plateau, then SGD from lr 0.5 with 4 decays (--init-from; training: this stage's, "
         "on top of stage 1's)", "lstm-lm-adamw-sgd",
         "lstm", True),
        ("LSTM-VAE, AE pretraining + free bits 0.25/dim, AdamW to its first plateau (stage 1 of the next row)",
         "lstm-vae-adamw1", "lstm", False),
        ("LSTM-VAE, the same, then SGD from lr 0.5 with 4 decays (--init-from; training: this stage's, on top of "
         "stage 1's)", "lstm-vae-adamw-sgd", "lstm", False),
        ("the 6-decay recipe with an IAF posterior (2 flow steps), free bits on the whole latent's KL",
         "lstm-vae-iaf", "lstm", False),
        ("the 6-decay recipe with a mixture prior (10 components, DEM-VAE's dispersion 0.8)", "lstm-vae-gmm", "lstm", False),
        ("the 6-decay rerun, then the K = 5 IWAE bound (--init-from)", "lstm-vae-iwae", "lstm", False),
        ("the 6-decay rerun, then SA-VAE: 5 refinement steps, the true ELBO (--init-from)", "lstm-vae-savae", "lstm", False),
        ("Bowman's recipe, vMF posterior (kappa 35)", "lstm-vae-vmf", "lstm", False),
        ("Bowman's recipe, dilated CNN decoder, receptive field 15", "lstm-vae-cnn", "lstm", False),
        ("the same, receptive field 31", "lstm-vae-cnn31", "lstm", False),
        ("Bowman's recipe, a categorical latent (K = 10) alone, exact enumeration", "lstm-cat-exact", "lstm", False),
        ("the same, Gumbel-softmax", "lstm-cat-gumbel", "lstm", False),
        ("the same, REINFORCE with a baseline", "lstm-cat-reinforce", "lstm", False),
        ("Transformer-LM", "transformer-lm", "transformer", True),
        ("Transformer-LM, 12 epochs, cosine", "transformer-lm-cosine", "transformer", True),
        ("Transformer-VAE, AE pretraining + free bits 0.25/dim, 12 epochs, cosine", "transformer-vae-cosine",
         "transformer", False),
        ("Transformer-VAE, the same in 14 epochs (the decoder's 12 after its reset: the LM's)",
         "transformer-vae-cosine14", "transformer", False),
        ("Transformer-VAE, the same with free bits 5 nats in all (0.15625/dim, Li et al.'s lambda = 5), 14 epochs",
         "transformer-vae-fb5-cosine14", "transformer", False),
        ("Transformer-VAE, the same with free bits 3 nats in all (0.09375/dim), 14 epochs",
         "transformer-vae-fb3-cosine14", "transformer", False),
        ("the 3-nat row, then only its encoder trained on, the true ELBO (--init-from, --train-only encoder: "
         "the decoder, so p(x), kept)", "transformer-vae-fb3-enc", "transformer", False),
        ("the 3-nat row, then no floor (the true ELBO), AdamW from 5e-5 (--init-from; training: this stage's, "
         "on top of the 3-nat row's)", "transformer-vae-fb3-elbo", "transformer", False),
        ("the 3-nat row's recipe with word dropout 0.15", "transformer-vae-fb3-wd", "transformer", False),
        ("the 3-nat row's recipe with dropout 0.4 (the LM's: 0.3)", "transformer-vae-fb3-d4", "transformer", False)]


def run_dir(key: str) -> Path:
    """$RUNS/ptb-KEY where that run is on this machine, else what bench/ptb.sh kept of it in
    bench/results/ptb-KEY/: one or the other for a whole row, never figures of two runs mixed."""
    live = RUNS / f"ptb-{key}"
    return live if live.is_dir() else RESULTS / f"ptb-{key}"


def run_file(key: str, name: str) -> Path | None:
    """The row's file NAME, or NAME.gz where only that is there (bench/results keeps the
    per-sentence figures compressed); None when neither is."""
    path = run_dir(key) / name
    packed = path.with_name(name + ".gz")
    return path if path.is_file() else packed if packed.is_file() else None


def read(key: str, name: str):
    try:
        return json.loads(run_file(key, f"{name}.json").read_text())
    except (AttributeError, OSError, ValueError):            # not run (or not finished) yet
        return None


def rows_of(key: str, name: str) -> list[dict] | None:
    if run_file(key, f"{name}.sentences.jsonl") is None:
        return None
    return [json.loads(x) for x in read_lines(run_dir(key) / f"{name}.sentences.jsonl")]


def per_sentence(key: str, name: str) -> dict | None:
    """{index: IW-NLL} of each sentence in an evaluation (its file's order: the data's line - 1)."""
    rows = rows_of(key, name)
    return None if rows is None else {r["index"]: r["iw_nll"] for r in rows}


def finished_parts(key: str) -> tuple[list[int], list[dict], set]:
    """The parts of a FULL=1 evaluation finished so far, their rows, each with its index in the
    whole test set (so that they pair with an LM's eval-test), and their K: for a table before
    all ten are in."""
    n_lines = len(rows_of(key, "eval-test") or [])
    done, rows, K = [], [], set()
    for r in range(PARTS):
        summary = read(key, f"eval-k500-full-part{r}")      # written once the part is whole
        part = rows_of(key, f"eval-k500-full-part{r}") if summary else None
        if part is None or not n_lines:
            continue
        K.add(summary["iw_samples"])
        indices = part_indices(r, n_lines)
        if len(indices) != len(part):
            raise SystemExit(f"ptb_table: ptb-{key}/eval-k500-full-part{r} has {len(part)} sentences, not {len(indices)}")
        done.append(r)
        rows += [{**row, "index": i} for i, row in zip(indices, part)]
    return done, rows, K


def paired(a: dict | None, b: dict | None) -> str:
    """mean(a - b) over the sentences of a, matched by index, with a 95% interval over sentences."""
    if a is None or b is None or len(a) < 2 or not a.keys() <= b.keys():
        return "-"
    d = [x - b[i] for i, x in a.items()]
    m = sum(d) / len(d)
    sd = math.sqrt(sum((x - m) ** 2 for x in d) / (len(d) - 1))
    h = 1.96 * sd / math.sqrt(len(d))
    return f"{m:+.2f} [{m - h:+.2f}, {m + h:+.2f}]"

# what a row's command needs beyond its recipe
EXTRA = {"lstm-vae-lm-init": " --init-decoder $RUNS/ptb-lstm-lm-sgd/best.pt",
         "lstm-vae-lm-init-adamw": " --init-decoder $RUNS/ptb-lstm-lm-sgd/best.pt",
         "lstm-lm-adamw-sgd": " --init-from $RUNS/ptb-lstm-lm-adamw1/best.pt",
         "lstm-vae-adamw-sgd": " --init-from $RUNS/ptb-lstm-vae-adamw1/best.pt",
         "lstm-vae-pretrain-freebits-d6": " --precision bf16",
         "lstm-vae-pretrain-freebits-d6-rerun": " --precision bf16",
         **{f"lstm-vae-pretrain-freebits-{k}": " --init-from $RUNS/ptb-lstm-vae-pretrain-freebits-d6/best.pt"
            for k in ("fb7", "elbo-lo", "elbo-hi", "enc")},
         "lstm-vae-pretrain-freebits-fb7-rerun": " --init-from $RUNS/ptb-lstm-vae-pretrain-freebits-d6-rerun/best.pt",
         **{k: " --init-from $RUNS/ptb-lstm-vae-pretrain-freebits-d6-rerun/best.pt --precision bf16"
            for k in ("lstm-vae-iwae", "lstm-vae-savae")},
         **{k: " --precision bf16" for k in ("lstm-vae-iaf", "lstm-vae-gmm", "lstm-vae-vmf", "lstm-vae-cnn",
                                             "lstm-vae-cnn31", "lstm-cat-exact", "lstm-cat-gumbel", "lstm-cat-reinforce")},
         **{f"transformer-vae-fb3-{k}": " --init-from $RUNS/ptb-transformer-vae-fb3-cosine14/best.pt"
            for k in ("enc", "elbo")}}


def nll_cell(r) -> str:
    if r is None:
        return "-"
    exact = r["iw_samples"] == 1 and r["kl"] == 0
    return f"{r['iw_nll']:.2f}" + (" (exact)" if exact else f" ± {r['iw_nll_se']:.3f}") + f" / {r['ppl']:.2f}"


def partial_cell(done: list[int], rows: list[dict], K: set, n_lines: int) -> str:
    """The full-test cell of a FULL=1 evaluation with only some of its parts finished."""
    if len(K) != 1:
        raise SystemExit(f"ptb_table: the finished parts differ in K: {sorted(K)}")
    K = K.pop()
    s = {**summarize({k: [r[k] for r in rows] for k in ("words", "elbo", "iw_nll", "ess", "kl")}, K), "iw_samples": K}
    return f"parts {' '.join(map(str, done))} only ({len(rows):,} of {n_lines:,} sentences): {nll_cell(s)}"


def training_time(key: str) -> str:
    """From time.txt once the row has finished; else the time so far, from last.pt."""
    try:
        # time.txt: "7924 s training, 1 thread(s), 2 cores: AMD EPYC" (bench/ptb.sh)
        # or "135 s training, 1 GPU: NVIDIA H200"
        secs, rest = run_file(key, "time.txt").read_text().split(" s training, ", 1)
        if rest.startswith("1 GPU: "):
            return f"{int(secs) / 60:.1f} min, one {rest[len('1 GPU: '):].strip()} GPU"
        threads, machine = rest.split(" thread(s), ", 1)
        cores, cpu = machine.strip().replace("(R)", "").split(" cores: ", 1)
        return f"{int(secs) / 60:.0f} min, {threads} thread{'s' * (threads != '1')} of a {cores}-core {cpu}"
    except (AttributeError, OSError, ValueError):
        pass
    try:
        import torch
        info = torch.load(RUNS / f"ptb-{key}" / "last.pt", weights_only=True, map_location="cpu")["info"]
    except (OSError, KeyError, RuntimeError):
        return "not finished"
    return f"not finished: {info['train_seconds'] / 60:.0f} min so far, epoch {info['epoch']}"


def best_lm(arch: str) -> str | None:
    """The key of the LM row of `arch` with the lowest exact NLL on the whole test set."""
    done = [(r["iw_nll"], key) for _, key, a, is_lm in ROWS
            if is_lm and a == arch and (r := read(key, "eval-test")) is not None]
    return min(done)[1] if done else None


def row(name: str, key: str, arch: str, is_lm: bool) -> str:
    full = read(key, "eval-test")
    note = run_file(key, "note.txt")
    if note is not None:
        name += f" (**{note.read_text().strip()}**)"
    if full is None:
        finished = run_file(key, "time.txt") is not None    # trained, kept from the test set (its note says why)
        ran = finished or (RUNS / f"ptb-{key}" / "last.pt").is_file() or note is not None   # a note: it ran (and says how far)
        state = "not evaluated" if finished else "not evaluated (unfinished)" if ran else "not run"
        return (f"| {name} | {state} | | | | | | | | "
                f"{training_time(key) if ran else ''} | `bench/ptb.sh {key}{EXTRA.get(key, '')}` |")
    sub, whole = read(key, "eval-k500"), (full if is_lm else read(key, "eval-k500-full"))
    d_sub = d_full = "-"
    whole_cell = None
    lm = best_lm(arch)
    if not is_lm and lm is not None:
        d_sub = paired(per_sentence(key, "eval-k500"), per_sentence(lm, "eval-k500"))
        d_full = paired(per_sentence(key, "eval-k500-full"), per_sentence(lm, "eval-test"))
        if whole is None and (parts := finished_parts(key))[0]:
            done, rows, K = parts
            whole_cell = partial_cell(done, rows, K, len(per_sentence(key, "eval-test")))
            d_full = paired({r["index"]: r["iw_nll"] for r in rows}, per_sentence(lm, "eval-test"))
        if sum(a == arch and is_lm for _, _, a, is_lm in ROWS) > 1:
            d_sub, d_full = (d if d == "-" else f"{d} vs {lm}" for d in (d_sub, d_full))
    took = training_time(key)
    return (f"| {name} | {whole_cell or nll_cell(whole)} | {d_full} | {nll_cell(sub)} | {d_sub} | {full['elbo']:.2f} "
            f"| {full['kl']:.2f} | {full['mi']:.2f} | {full['au']} | {took} | `bench/ptb.sh {key}{EXTRA.get(key, '')}` |")


def pair(a: str, b: str, name: str) -> str:
    """Row A's paired difference from row B (any two rows, e.g. two VAEs) on the sentences of
    their evaluation NAME (both of the same file: eval-test, eval-k500, eval-k500-full)."""
    cell = paired(per_sentence(a, name), per_sentence(b, name))
    if cell == "-":
        raise ValueError(f"ptb_table --pair: ptb-{a} and ptb-{b} do not both have {name}.sentences.jsonl "
                         "on the same sentences")
    return f"{a} - {b}, {name}: {cell} nats a sentence (mean, 95% interval over sentences)"


if __name__ == "__main__":
    if sys.argv[1:2] == ["--pair"]:     # bench/ptb_table.py --pair ROW_A ROW_B [EVAL]
        args = sys.argv[2:] + ["eval-k500"] * (len(sys.argv) == 4)
        try:
            if len(args) != 3:
                raise ValueError("usage: bench/ptb_table.py --pair ROW_A ROW_B [EVAL]   (EVAL: eval-k500 unless given)")
            print(pair(*args))
        except ValueError as e:
            print(e, file=sys.stderr)
            sys.exit(2)
        sys.exit(0)
    ran_only = "--ran" in sys.argv[1:]
    print("| model | NLL / PPL, full test (K = 500) | vs best LM, full (nats, 95%) | NLL / PPL, subset (K = 500) "
          "| vs best LM, subset | -ELBO (full) | KL | MI | AU | training | command |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in ROWS:
        if not ran_only or run_dir(r[1]).is_dir():
            print(row(*r))
