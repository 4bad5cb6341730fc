#!/usr/bin/env bash
# Prepare what scripts/train_gpu.sh carries to a GPU machine that has no network:
#   gpu_kit/wheels/  wheels of the packages such a machine may lack (pyroomacoustics, soundfile and
#                    their own dependencies), for its Python (default 3.12) on manylinux x86_64;
#   gpu_kit/speech/  a speech subset: N_SPEAKERS speakers x N_UTT utterances of speechocean762
#                    (FLAC copied as is; default 96 x 3, about 25 MiB), one folder per speaker.
# gpu_kit/ is ignored by git; together it stays under the 64 MiB a device call carries.
#
#   bash scripts/make_gpu_kit.sh [KIT_DIR]     env: PY_VERSION=3.12 SPEECH=../shared/data/speechocean762
#                                                   N_SPEAKERS=96 N_UTT=3
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KIT=${1:-$ROOT/gpu_kit}
PY_VERSION=${PY_VERSION:-3.12}
SPEECH=${SPEECH:-$ROOT/../shared/data/speechocean762}
PIP=${PIP:-$ROOT/.venv/bin/pip}
mkdir -p "$KIT/wheels"
# numpy, scipy, torch are on the target already: only what it lacks, with pinned versions (those
# this project is tested with); --no-deps keeps numpy/scipy wheels (50 MiB) out of the kit.
"$PIP" download -q --no-deps --only-binary=:all: --implementation cp --python-version "$PY_VERSION" \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
    -d "$KIT/wheels" pyroomacoustics==0.10.1 soundfile==0.14.0 soxr cffi pycparser Cython typing_extensions
"$ROOT/.venv/bin/python" - "$SPEECH" "$KIT/speech" "${N_SPEAKERS:-96}" "${N_UTT:-3}" <<'PY'
"""Copy N_UTT utterances of N_SPEAKERS speakers, evenly spaced over the sorted speaker folders."""
import shutil
import sys
from pathlib import Path

src, dst, n_spk, n_utt = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
speakers = sorted(p for p in src.iterdir() if p.is_dir())
if len(speakers) < n_spk:
    sys.exit(f"{src}: {len(speakers)} speaker folders, fewer than the {n_spk} asked for")
chosen = [speakers[round(i * len(speakers) / n_spk)] for i in range(n_spk)]
for spk in chosen:
    (dst / spk.name).mkdir(parents=True, exist_ok=True)
    for f in sorted(spk.glob("*.flac"))[:n_utt]:
        if not (dst / spk.name / f.name).exists():
            shutil.copyfile(f, dst / spk.name / f.name)
PY
du -sh "$KIT/wheels" "$KIT/speech"
