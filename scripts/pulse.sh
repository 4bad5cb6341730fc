#!/usr/bin/env bash
# Real audio without a sound card: a private PulseAudio daemon with a null sink.
#
#   scripts/pulse.sh start    start it (prints the pid and the environment to export)
#   scripts/pulse.sh stop     stop it, by the pid it wrote
#   scripts/pulse.sh status   say whether it runs
#   scripts/pulse.sh env      print the export lines only:  eval "$(scripts/pulse.sh env)"
#
# The sink "vsink" runs at 16000 Hz, mono; its monitor source "vsink.monitor" records what is
# played into it, so a duplex stream on PortAudio's "pulse" device is a loopback (PLATFORM.md).
#
# Everything lives in a private directory, $RTSE_PULSE_DIR (default /tmp/realtime-tse-pulse-$UID),
# so that it never clashes with a desktop's PulseAudio or with another engineer's daemon:
#   $RTSE_PULSE_DIR/runtime/native   the socket      -> PULSE_SERVER=unix:<that path>
#   $RTSE_PULSE_DIR/runtime/pid      the daemon's pid
#   $RTSE_PULSE_DIR/state            PULSE_STATE_PATH (cookie-independent state)
#   $RTSE_PULSE_DIR/pulse.log        the daemon's log
# Clients (PortAudio through the ALSA "pulse" plugin, pactl, paplay) find the daemon through
# PULSE_SERVER (and PULSE_RUNTIME_PATH); export both before the client process starts, or set
# them in os.environ before PortAudio is initialised (tests/audio_fixtures.py does that).
set -euo pipefail

DIR="${RTSE_PULSE_DIR:-/tmp/realtime-tse-pulse-$(id -u)}"
RUNTIME="$DIR/runtime"
PIDFILE="$RUNTIME/pid"
SOCKET="$RUNTIME/native"
RATE="${RTSE_PULSE_RATE:-16000}"

env_lines() {
    echo "export PULSE_RUNTIME_PATH=$RUNTIME"
    echo "export PULSE_STATE_PATH=$DIR/state"
    echo "export PULSE_SERVER=unix:$SOCKET"
}

running_pid() {
    [[ -f "$PIDFILE" ]] || return 1
    local pid
    pid="$(tr -dc '0-9' < "$PIDFILE")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && { echo "$pid"; return 0; }
    return 1
}

cmd="${1:-}"
case "$cmd" in
start)
    command -v pulseaudio >/dev/null || {
        echo "pulseaudio not installed: apt-get install -y --no-install-recommends pulseaudio pulseaudio-utils libasound2-plugins libportaudio2" >&2
        exit 3; }
    if pid="$(running_pid)"; then
        echo "already running: pid $pid" >&2
        env_lines
        exit 0
    fi
    mkdir -p "$RUNTIME" "$DIR/state"
    chmod 700 "$DIR" "$RUNTIME"
    export PULSE_RUNTIME_PATH="$RUNTIME" PULSE_STATE_PATH="$DIR/state"
    unset PULSE_SERVER
    # Exactly PLATFORM.md's command line, plus a log file and a pid file in the private dir.
    pulseaudio -D --exit-idle-time=-1 -n \
        --load="module-null-sink sink_name=vsink rate=$RATE channels=1" \
        --load="module-native-protocol-unix" --load="module-always-sink" \
        --use-pid-file=true --log-target="file:$DIR/pulse.log" 2>>"$DIR/pulse.log" || {
        echo "pulseaudio failed to start; log:" >&2; tail -n 20 "$DIR/pulse.log" >&2; exit 1; }
    for _ in $(seq 100); do
        [[ -S "$SOCKET" ]] && running_pid >/dev/null && break
        sleep 0.05
    done
    pid="$(running_pid)" || { echo "pulseaudio did not come up; log:" >&2; tail -n 20 "$DIR/pulse.log" >&2; exit 1; }
    echo "pulseaudio started: pid $pid, sink vsink ($RATE Hz, mono), socket $SOCKET" >&2
    env_lines
    ;;
stop)
    if pid="$(running_pid)"; then
        kill "$pid"
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
        if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; fi
        echo "pulseaudio stopped: pid $pid" >&2
    else
        echo "not running (no live pid in $PIDFILE)" >&2
    fi
    rm -f "$PIDFILE"
    ;;
status)
    if pid="$(running_pid)"; then echo "running: pid $pid, socket $SOCKET"; else echo "not running"; exit 1; fi
    ;;
env)
    env_lines
    ;;
*)
    echo "usage: $0 start|stop|status|env   (RTSE_PULSE_DIR=$DIR)" >&2
    exit 2
    ;;
esac
