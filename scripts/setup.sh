#!/usr/bin/env bash
# Install what realtime-tse needs into ./.venv (idempotent; fast when everything is there).
#   scripts/setup.sh          runtime: PortAudio, Python packages
#   scripts/setup.sh --test   also test tools: PulseAudio (null sink for real audio), PipeWire with
#                             WirePlumber, pipewire-pulse, its JACK library and dbus (the tests'
#                             private PipeWire: JACK path, jack guard, virtual mic), pytest extras
# System packages are installed with apt-get when run as root; otherwise the command is printed.
# Torch: a torch already importable in the venv is kept (e.g. your own CUDA build). Otherwise a
# machine with an NVIDIA driver gets PyPI's default (CUDA) build and a CPU-only machine the CPU build
# (the local wheel when pip's find-links has one, else PyTorch's CPU index), never a multi-GB CUDA
# download it cannot use.
set -euo pipefail
cd "$(dirname "$0")/.."
WITH_TEST=0
[ "${1:-}" = "--test" ] && WITH_TEST=1
PY=${PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}

apt_pkgs=(libportaudio2)
[ $WITH_TEST = 1 ] && apt_pkgs+=(pulseaudio pulseaudio-utils libasound2-plugins xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxkbcommon-x11-0 libxcb-cursor0 flite espeak-ng)
# PipeWire beside PulseAudio (they coexist; neither is started here): the tests start their own
[ $WITH_TEST = 1 ] && apt_pkgs+=(pipewire wireplumber pipewire-pulse pipewire-jack pipewire-bin dbus)
missing=()
if command -v dpkg-query >/dev/null; then
  for p in "${apt_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: apt-get install ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: please install system packages: sudo apt-get install ${missing[*]}" >&2
  fi
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
VPY=.venv/bin/python
if ! $VPY -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null && nvidia-smi >/dev/null 2>&1; then
    $VPY -m pip install -q "torch==$TORCH_VERSION"
  elif ls "${PIP_FIND_LINKS:-/nonexistent}"/torch-"$TORCH_VERSION"*cpu*.whl >/dev/null 2>&1; then
    $VPY -m pip install -q "torch==$TORCH_VERSION"
  else
    $VPY -m pip install -q "torch==$TORCH_VERSION" --index-url https://download.pytorch.org/whl/cpu
  fi
fi
extras=""
[ $WITH_TEST = 1 ] && extras="[test]"
stamp=".venv/.installed$extras"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  $VPY -m pip install -q -e ".$extras" 2>&1 | grep -v "^WARNING: Location" || true
  $VPY -c "import realtime_tse.models, realtime_tse.train" && touch "$stamp"
fi
