#!/usr/bin/env bash
# Several PTB rows side by side on one GPU within one call of a lent machine (a session's device
# time is minutes: one LSTM VAE row trains in ~6 min on an H200 shared three ways,
# docs/results/ptb.md#on-a-gpu), each through bench/ptb.sh: trained (resumable), then evaluated with
# the whole test set at K = 500 in its ten resumable parts. Run from the repository root:
#   DEADLINE=540 BUDGET=420 bench/gpu_rows.sh lstm-cat-exact lstm-vae-cnn31 \
#       "lstm-vae-iwae --init-from .ckpt/d6-best.pt"
# Each argument is a row and its extra train flags (quoted together). Environment:
#   DEADLINE=S   every row's work ends by S seconds from now (default 540): training and the
#                evaluation parts it reached are kept, a part cut short is done again next time
#   BUDGET=S     training time per row in this call (default DEADLINE - 120, so evaluation starts)
#   RUNS=DIR     where the runs live (default runs/gpu, ignored by git: a lent machine keeps it
#                between calls while it stays warm, and starts bare after)
#   the PTB files: the recipes read ../shared/data/ptb/; where that is missing (a lent machine) they
#                are copied there from .ptb/ (ignored by git: copy them there before the call)
#   OUT=DIR      what comes back: each row's bench/results/ptb-ROW/ (the figures bench/ptb.sh keeps),
#                its train.log, metrics.jsonl, time.txt and best.pt (and last.pt with CHECKPOINTS=all,
#                to resume it elsewhere), and the GPU's utilisation every 10 s (gpu-util.txt)
# On a machine without .venv (the lent one has python3 with torch): a .venv/bin shim runs python3.
# Exit status: 0 when every row ended or reached DEADLINE, 1 when one failed (its bench.out says why).
set -uo pipefail
usage='usage: bench/gpu_rows.sh ROW [ROW ...]   (a ROW may carry its train flags: "ROW --flag x")'
[ $# -gt 0 ] || { echo "$usage" >&2; exit 2; }
for spec in "$@"; do
    read -r -a words <<< "$spec"
    [ ${#words[@]} -gt 0 ] || { echo "bench/gpu_rows.sh: an empty ROW; $usage" >&2; exit 2; }
    [ -f "configs/ptb-${words[0]}.toml" ] || [ -f "configs/experiments/ptb-${words[0]}.toml" ] \
        || { echo "bench/gpu_rows.sh: no recipe configs/ptb-${words[0]}.toml" >&2; exit 2; }
done
deadline=${DEADLINE:-540}
budget=${BUDGET:-$((deadline > 240 ? deadline - 120 : deadline / 2))}
export RUNS=${RUNS:-runs/gpu} EVAL_MAX_TOKENS=${EVAL_MAX_TOKENS:-50000} THREADS=${THREADS:-1} FULL=1
out=${OUT:?OUT: the folder to bring the results back in}
if [ ! -f ../shared/data/ptb/ptb.train.txt ]; then
    [ -f .ptb/ptb.train.txt ] || { echo "bench/gpu_rows.sh: no PTB files in ../shared/data/ptb nor .ptb/" >&2; exit 2; }
    mkdir -p ../shared/data/ptb && cp .ptb/ptb.*.txt ../shared/data/ptb/   # the recipes name this path
fi
if [ ! -x .venv/bin/sentvae ]; then
    mkdir -p .venv/bin && ln -sf "$(command -v python3)" .venv/bin/python
    printf '#!/bin/sh\nexec python3 -m sentvae "$@"\n' > .venv/bin/sentvae && chmod +x .venv/bin/sentvae
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
mkdir -p "$RUNS" "$out"
( while sleep 10; do nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader; done \
    > "$out/gpu-util.txt" 2>&1 ) &
watcher=$!
trap 'kill "$watcher" 2> /dev/null' EXIT
pids=()
for spec in "$@"; do
    read -r -a words <<< "$spec"
    row=${words[0]}
    ( BUDGET=$budget timeout "$deadline" bash bench/ptb.sh "$row" "${words[@]:1}" > "$RUNS/$row.out" 2>&1
      echo "exit $?" >> "$RUNS/$row.out" ) &
    pids+=($!)
done
failed=0
for p in "${pids[@]}"; do wait "$p"; done
for spec in "$@"; do
    read -r -a words <<< "$spec"
    row=${words[0]} run=$RUNS/ptb-${words[0]}
    mkdir -p "$out/$row"
    cp "$RUNS/$row.out" "$out/$row/bench.out"
    for f in train.log metrics.jsonl time.txt eval-times.txt best.pt; do [ -f "$run/$f" ] && cp "$run/$f" "$out/$row/"; done
    [ "${CHECKPOINTS:-}" = all ] && [ -f "$run/last.pt" ] && cp "$run/last.pt" "$out/$row/"
    [ -d "bench/results/ptb-$row" ] && cp -r "bench/results/ptb-$row" "$out/$row/results"
    echo "== $row: $(grep -E '^(step|done)' "$run/train.log" 2>/dev/null | tail -1)"
    status=$(tail -n 1 "$out/$row/bench.out")
    echo "$status"
    case $status in "exit 0" | "exit 124") ;; *) failed=1 ;; esac   # 124: stopped at DEADLINE
done
exit $failed
