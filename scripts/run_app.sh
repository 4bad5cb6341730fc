#!/usr/bin/env bash
# Set up (scripts/setup.sh) and start the desktop app on the shipped model and demo input.
# With no display ($DISPLAY / $WAYLAND_DISPLAY unset and QT_QPA_PLATFORM not set) it runs the same
# job headless: the demo streamed through the engine, detected talker distances printed, the
# extracted audio written to a file. Extra arguments go to `realtime-tse`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/realtime-tse "$@"
