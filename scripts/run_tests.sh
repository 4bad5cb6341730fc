#!/usr/bin/env bash
# Set up (scripts/setup.sh --test) and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
export QT_QPA_PLATFORM=${QT_QPA_PLATFORM:-offscreen}
# One OpenMP thread for the test process and every process it starts (tests/conftest.py also sets
# torch to one thread, but only sets this variable when it is unset): on a shared 2-core machine
# torch's spinning OpenMP threads made tests many times slower. The tests check values, not speed.
export OMP_NUM_THREADS=1
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
