#!/usr/bin/env bash
# One row of the PTB results (docs/results/ptb.md): train configs/ptb-ROW.toml (or, for a row that
# did not make the final table, configs/experiments/ptb-ROW.toml) to convergence (resumable), then
# evaluate its best checkpoint on PTB test. Run from the repository root after `make install`:
#   bench/ptb.sh lstm-vae-pretrain-freebits [extra train flags]
# Environment:
#   RUNS=DIR        where runs live (default runs/; put it outside the checkout to keep runs
#                   across fresh clones)
#   THREADS=N       torch threads (THREADS=1 runs two rows side by side on a 2-core machine)
#   EVAL_MAX_TOKENS=N  decoder tokens per evaluation call (eval --max-tokens; default 2000: on a
#                   GPU, 50000 makes fewer, fuller calls; the figures do not depend on it)
#   SENTVAE, PYTHON  the sentvae command and the python that has torch (default: .venv's)
#   BUDGET=SECONDS  train at most this long in this call (--time-budget); call again to go on:
#                   an unfinished run is resumed exactly from its last.pt
#   FULL=1          also IW-NLL with K = 500 on the whole test set, in ten resumable parts
#                   (~12 min each at 1 CPU thread; ~2 h a VAE row in all); with FULL=1,
#                   PARTS="r ..." does only those parts (and skips the other evaluations): a second
#                   call beside the first, e.g. FULL=1 PARTS="0 9 8 7 6 5 4 3 2" (a part one call
#                   runs, the other skips); PARTS without FULL=1 is refused (exit 2)
#                   PARTS=none (without FULL): train only, no evaluation: to choose between rows on
#                   validation before any of them sees the test set
# Writes $RUNS/ptb-ROW/: train.log, time.txt (once training has finished), and for each
# evaluation E.json (summary) and E.sentences.jsonl (one line per sentence, for paired tests):
#   eval-test:      the whole test set (3,761 sentences), K = 1: -ELBO, KL, MI, AU (an LM: exact NLL)
#   eval-k500:      K = 500 on every 10th test sentence (377), paired across rows
#   eval-k500-full: K = 500 on the whole test set (FULL=1; an LM's eval-test is already exact)
# An evaluation already made of the current best.pt is not made again. Every call copies the
# summaries, per-sentence files (gzipped: E.sentences.jsonl.gz) and time.txt (no text, no
# checkpoints) to bench/results/ptb-ROW/, to be committed: what bench/ptb_table.py reads of a row
# once its machine, and $RUNS, are gone.
set -euo pipefail
# SIGTERM (`timeout`, `kill -- -PGID`) waits for the command it meets to end: a trainer saving
# last.pt, through the pipe below, is let finish before this script exits
trap 'exit 143' TERM
row=${1:?usage: bench/ptb.sh ROW   (ROW: a configs/ptb-ROW.toml or configs/experiments/ptb-ROW.toml)}
# PARTS names parts of the FULL=1 evaluation, or (none) no evaluation at all: alone, or none with
# FULL=1, it would leave a call doing something else than it was asked (a silent no-op, or a part "none")
case ${PARTS:-}/${FULL:-} in
    none/?*) echo "bench/ptb.sh: PARTS=none trains only and FULL=1 evaluates the whole test set: give one of them" >&2; exit 2 ;;
    none/* | /*) ;;
    */) echo "bench/ptb.sh: PARTS=\"$PARTS\" names parts of the whole-test evaluation: give FULL=1 with it" >&2; exit 2 ;;
    *) for r in $PARTS; do
           case $r in [0-9]) ;; *) echo "bench/ptb.sh: PARTS: '$r' is not a part (0-9)" >&2; exit 2 ;; esac
       done ;;
esac
cfg=configs/ptb-$row.toml
[ -f "$cfg" ] || cfg=configs/experiments/ptb-$row.toml
[ -f "$cfg" ] || { echo "bench/ptb.sh: no recipe configs/ptb-$row.toml (nor configs/experiments/ptb-$row.toml)" >&2; exit 2; }
ptb=${PTB:-../shared/data/ptb}
runs=${RUNS:-runs}
out=$runs/ptb-$row
sentvae=${SENTVAE:-.venv/bin/sentvae}
python=${PYTHON:-.venv/bin/python}
export OMP_NUM_THREADS=${THREADS:-${OMP_NUM_THREADS:-2}}
mkdir -p "$out"
subset=$runs/ptb.test.every10.txt
# files several rows share: written whole under another name, then renamed (rows run side by side)
awk 'NR % 10 == 1' "$ptb/ptb.test.txt" > "$subset.$$" && mv -f "$subset.$$" "$subset"

if [ ! -f "$out/time.txt" ]; then
    resume=()
    [ -f "$out/last.pt" ] && resume=(--resume)
    budget=()
    [ -n "${BUDGET:-}" ] && budget=(--time-budget "$BUDGET")
    # grep and tee ignore SIGTERM and SIGINT: a signal to the whole process group (Ctrl-C, `kill --
    # -PGID`, `timeout`) then stops the trainer alone, which saves last.pt and says so through them;
    # were they to die first, its last lines would meet a closed pipe and end it before it saved
    "$sentvae" train --config "$cfg" --out "$out" "${resume[@]}" "${budget[@]}" "${@:2}" 2>&1 \
        | (trap '' TERM INT; exec grep --line-buffered -v '^\s*$') | (trap '' TERM INT; exec tee -a "$out/train.log")
    if tail -1 "$out/train.log" | grep -q '^done (time budget)'; then
        echo "bench/ptb.sh: $row not finished (time budget); run it again to resume" >&2
        exit 0
    fi
    read -r secs device < <("$python" -c "import sys, torch; i = torch.load(sys.argv[1], weights_only=True)['info']; print(round(i['train_seconds']), i.get('device', 'cpu'))" "$out/last.pt")
    [ -n "${secs:-}" ] || { echo "bench/ptb.sh: cannot read $out/last.pt with $python (PYTHON: one that has torch)" >&2; exit 1; }
    if [[ $device == cuda* ]]; then
        echo "$secs s training, 1 GPU: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)" > "$out/time.txt"
    else
        echo "$secs s training, $OMP_NUM_THREADS thread(s), $(nproc --all) cores: $(lscpu | sed -n 's/^Model name: *//p')" > "$out/time.txt"
    fi
fi
evaluate() {   # NAME DATA K   (NAME.json appears only once the evaluation is whole)
    [ "$out/$1.json" -nt "$out/best.pt" ] && return   # done already, of this best.pt: a call again only keeps
    local start=$SECONDS
    "$sentvae" eval -c "$out/best.pt" --data "$2" -k "$3" --json -q ${EVAL_MAX_TOKENS:+--max-tokens "$EVAL_MAX_TOKENS"} \
        --per-sentence "$out/$1.sentences.jsonl" > "$out/$1.json.tmp"
    mv "$out/$1.json.tmp" "$out/$1.json"
    echo "$1: $((SECONDS - start)) s" >> "$out/eval-times.txt"
}
if [ -z "${PARTS:-}" ]; then
    evaluate eval-test "$ptb/ptb.test.txt" 1
    evaluate eval-k500 "$subset" 500
fi
if [ -n "${FULL:-}" ] && ! grep -q '"no_latent": true' <("$sentvae" info --json "$out/best.pt"); then
    # K = 500 on the whole test set in ten parts (test lines with number % 10 == r), each
    # written when whole, so a call cut short keeps the parts it finished and the next call
    # goes on; PARTS="2 4 6" makes a call do only those (two calls side by side at THREADS=1).
    # Part 1 is the paired subset, already evaluated with the same file, K and seed (taken
    # whichever call gets here first, PARTS or not).
    if [ -f "$out/eval-k500.json" ] && [ ! -f "$out/eval-k500-full-part1.json" ]; then
        cp "$out/eval-k500.sentences.jsonl" "$out/eval-k500-full-part1.sentences.jsonl"
        cp "$out/eval-k500.json" "$out/eval-k500-full-part1.json"
    fi
    for r in ${PARTS:-2 3 4 5 6 7 8 9 0}; do
        [ -f "$out/eval-k500-full-part$r.json" ] && continue
        exec {claim}> "$out/eval-k500-full-part$r.lock"   # a part another call is running is skipped
        if flock -n "$claim"; then
            awk -v r="$r" 'NR % 10 == r' "$ptb/ptb.test.txt" > "$runs/ptb.test.part$r.txt.$$"
            mv -f "$runs/ptb.test.part$r.txt.$$" "$runs/ptb.test.part$r.txt"
            evaluate "eval-k500-full-part$r" "$runs/ptb.test.part$r.txt" 500
        fi
        exec {claim}>&-
    done
    if ls "$out"/eval-k500-full-part{0..9}.json > /dev/null 2>&1; then
        "$python" bench/ptb_merge.py "$out" eval-k500-full "$ptb/ptb.test.txt" > /dev/null
    fi
fi
# Keep what a later machine needs to show this row and pair with it (summaries, per-sentence
# figures, time.txt: no text, no checkpoints) in bench/results/ptb-ROW/, to be committed: $RUNS
# lives on this machine's disk and goes with it. bench/ptb_table.py reads it where $RUNS has no run.
keep=bench/results/ptb-$row
mkdir -p "$keep"
for f in "$out"/time.txt "$out"/eval-times.txt "$out"/note.txt "$out"/eval-*.json "$out"/eval-*.sentences.jsonl; do
    [ -f "$f" ] || continue
    case $f in *-part[0-9].*) [ -f "$out/eval-k500-full.json" ] && continue ;; esac   # merged: parts not needed
    case $f in
        *.jsonl) gzip -9 -n -c "$f" > "$keep/$(basename "$f").gz"; rm -f "$keep/$(basename "$f")" ;;   # 1/3 the size
        *) cp "$f" "$keep/" ;;
    esac
done
[ -f "$out/eval-k500-full.json" ] && rm -f "$keep"/eval-k500-full-part[0-9].*
for f in "$out/time.txt" "$out"/eval-*.json; do [ -f "$f" ] && cat "$f"; done   # what there is: PARTS=none has no evaluations
exit 0
