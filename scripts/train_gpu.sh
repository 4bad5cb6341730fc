#!/usr/bin/env bash
# One command to train on a machine with one CUDA GPU, many cores and no network:
#
#   bash scripts/train_gpu.sh OUT_DIR [MINUTES]          (MINUTES: wall-clock budget, default 8)
#
# What it needs: Python with torch, numpy, scipy, safetensors and tqdm (PYTHON, default python3), and
# the kit made beforehand on a connected machine by `bash scripts/make_gpu_kit.sh` (gpu_kit/: wheels
# of pyroomacoustics, soundfile, soxr and their dependencies for Python 3.12, and a speech subset). Missing
# packages are installed from those wheels, offline, into WORK/site (nothing system-wide); the project
# runs from WORK/pkg (links to this repository in the installed layout).
# What it does: simulates the D1 RIR bank on all cores (in WORK, not OUT), trains the paper-causal
# preset (train/configs/paper_causal_gpu.toml, bfloat16 autocast) until the budget, counted from this
# script's start, is spent, and writes into OUT_DIR: last.safetensors (resumable, ~13 MiB),
# best.safetensors, log.csv, config.json and train_gpu.log (everything this script printed).
# Without a GPU it falls back to the CPU recipe (lite-lstm, train/configs/lite_lstm_d1.toml) and a
# 500-RIR bank, so the same command can be tried anywhere.
# Environment: KIT (default ./gpu_kit), WORK (default $TMPDIR/rtse-gpu), PYTHON, N_RIRS (D1 bank
# size; default 4000 on a GPU), EVAL=1 (then tse-eval on best.safetensors -> OUT_DIR/eval.json).
set -euo pipefail
T0=$(date +%s)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:?usage: scripts/train_gpu.sh OUT_DIR [MINUTES]}
MINUTES=${2:-8}
KIT=${KIT:-$ROOT/gpu_kit}
WORK=${WORK:-${TMPDIR:-/tmp}/rtse-gpu}
PY=${PYTHON:-python3}
mkdir -p "$OUT" "$WORK/site"
OUT=$(cd "$OUT" && pwd)
exec > >(tee -a "$OUT/train_gpu.log") 2>&1
echo "train_gpu.sh: $(date -u +%FT%TZ), budget $MINUTES min, out $OUT"

"$PY" -c "import torch, numpy, scipy, safetensors, tqdm" || {
    echo "train_gpu.sh: $PY lacks torch / numpy / scipy / safetensors / tqdm"; exit 2; }
# packages the machine lacks, from the kit's wheels (module name : wheel name)
missing=()
for pair in pyroomacoustics:pyroomacoustics soundfile:soundfile soxr:soxr cffi:cffi pycparser:pycparser \
            Cython:cython typing_extensions:typing_extensions; do
    mod=${pair%%:*}
    PYTHONPATH="$WORK/site" "$PY" -c "import $mod" 2>/dev/null || missing+=("${pair##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    wheels=()
    for w in "${missing[@]}"; do
        f=$(ls "$KIT/wheels/${w}"-*.whl 2>/dev/null | head -1) || true
        [ -n "$f" ] || { echo "train_gpu.sh: no $w wheel in $KIT/wheels (run scripts/make_gpu_kit.sh)"; exit 2; }
        wheels+=("$f")
    done
    echo "installing from the kit (offline): ${missing[*]}"
    "$PY" -m pip install -q --no-index --no-deps --target "$WORK/site" "${wheels[@]}"
fi
# the package as installed (pyproject.toml's package-dir), by links: realtime_tse/ with the
# repository's models/ and train/ inside, so that realtime_tse.train runs without installing
PKG="$WORK/pkg/realtime_tse"
rm -rf "$WORK/pkg" && mkdir -p "$PKG"
for p in "$ROOT"/realtime_tse/* "$ROOT/models" "$ROOT/train"; do ln -s "$p" "$PKG/"; done
export PYTHONPATH="$WORK/site:$WORK/pkg${PYTHONPATH:+:$PYTHONPATH}"
[ -d "$KIT/speech" ] || { echo "train_gpu.sh: no speech subset in $KIT/speech (run scripts/make_gpu_kit.sh)"; exit 2; }

CORES=$("$PY" -c "import os; print(len(os.sched_getaffinity(0)))")   # (nproc follows OMP_NUM_THREADS)
if "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    "$PY" -c "import torch; print('GPU:', torch.cuda.get_device_name(0), '| torch', torch.__version__)"
    recipe=(--train-config "$ROOT/train/configs/paper_causal_gpu.toml")
    N_RIRS=${N_RIRS:-4000}
else
    echo "no CUDA GPU: falling back to the CPU recipe (lite-lstm) and a small RIR bank"
    recipe=()
    N_RIRS=${N_RIRS:-500}
fi
left=$("$PY" -c "import sys, time; print(f'{max(0.0, float(sys.argv[1]) - (time.time() - int(sys.argv[2])) / 60):.2f}')" \
       "$MINUTES" "$T0")
echo "$N_RIRS RIRs on $CORES cores; $left min of the budget left for RIRs and training"
"$PY" -m realtime_tse.train.cli d1 --speech "$KIT/speech" --out "$OUT" "${recipe[@]}" --bank "$WORK/bank-d1-$N_RIRS" \
    --n-rirs "$N_RIRS" --workers "$CORES" --minutes "$left"
if [ "${EVAL:-0}" = 1 ] && [ -f "$OUT/best.safetensors" ]; then
    "$PY" -c "import sys; from realtime_tse.train.cli import eval_main; sys.exit(eval_main(sys.argv[1:]))" \
        "$OUT/best.safetensors" --scenario d1 --speech "$KIT/speech" --bank "$WORK/bank-d1-$N_RIRS" \
        --n-rirs "$N_RIRS" --workers "$CORES" --json "$OUT/eval.json"
fi
echo "files in $OUT:"
big=0
for f in "$OUT"/*; do
    size=$(stat -c %s "$f")
    awk -v n="$(basename "$f")" -v s="$size" 'BEGIN { printf "  %-24s %6.1f MiB\n", n, s / 1048576 }'
    [ "$size" -lt $((16 * 1048576)) ] || big=1
done
[ $big = 0 ] || echo "train_gpu.sh: warning: a file is 16 MiB or more"
echo "train_gpu.sh: done in $(( $(date +%s) - T0 )) s"
