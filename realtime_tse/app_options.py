"""The options of the app, ``realtime-tse`` with no command: one definition for both of its entry
points, the console script (:func:`realtime_tse.cli.main.build_parser` adds them before its
commands) and the window's module (``python -m realtime_tse.gui.launch``), so that both accept
and list the same options.

The app opens the window, or without a display (or with ``--headless``) streams the input through
the live engine into a file. Most options mean the same in both; a few apply to one of them
(:data:`WINDOW_ONLY`, :data:`WITHOUT_WINDOW_ONLY`), and :func:`unused_options` names those given
to the other, so that it can say it does not use them.

Nothing here imports more than argparse: ``realtime-tse --help`` stays fast.
"""
from __future__ import annotations

import argparse

from . import __version__
from .live_config import DEFAULT_BLOCK_MS

__all__ = ["PROG", "APP_DESCRIPTION", "add_model_options", "add_app_options", "unused_options",
           "WINDOW_ONLY", "WITHOUT_WINDOW_ONLY"]

PROG = "realtime-tse"   # the program's name in its messages
APP_DESCRIPTION = ("Distance-based target speech extraction: hear the talker at a chosen distance "
                   "from the microphone. With no command: the desktop app (or, without a display, "
                   "a headless run of the demo).")

# option destinations -> how they are written on the command line
WINDOW_ONLY = {"settings": "--settings"}
WITHOUT_WINDOW_ONLY = {"threads": "--threads", "seconds": "--seconds", "output": "-o/--output"}


def add_model_options(p: argparse.ArgumentParser, threads_help: str | None = None) -> None:
    """Add ``--model``, ``--device`` and ``--threads`` (the model to load, where it runs, its CPU
    threads) to ``p``; ``threads_help`` replaces the generic help of ``--threads``."""
    p.add_argument("--model", metavar="CKPT", default=None,
                   help="checkpoint (.safetensors); default: the shipped model "
                        "(or $REALTIME_TSE_MODEL)")
    p.add_argument("--device", default="auto", help="torch device: auto (default), cpu, cuda")
    p.add_argument("--threads", type=int, default=None,
                   help=threads_help or "torch CPU threads (default: half the cores, at most 4; "
                                        "1 for live)")


def add_app_options(p: argparse.ArgumentParser) -> None:
    """Add every option of the app (``realtime-tse`` with no command) to ``p``.

    Destinations: ``model``, ``device``, ``threads``, ``headless``, ``seconds``, ``distance``,
    ``input_file`` / ``demo`` (one of them), ``output_device`` / ``no_output`` (one of them),
    ``output``, ``block_ms`` (None: the window's remembered block, else
    :data:`realtime_tse.live_config.DEFAULT_BLOCK_MS`), ``settings``; and ``--version``.
    """
    add_model_options(p, threads_help="without the window: torch CPU threads (default 1)")
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    p.add_argument("--headless", action="store_true",
                   help="never open the window: stream the input through the engine into a file")
    p.add_argument("--seconds", type=float, default=None,
                   help="without the window: how long to stream (default: the input's length)")
    p.add_argument("--distance", type=float, default=None,
                   help="query distance to start at, metres (default: the window's last, else 1)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--input-file", default=None, metavar="F",
                     help="an audio file as input (looped) instead of the demo or a microphone")
    src.add_argument("--demo", action="store_true",
                     help="the shipped demo as input (without the window it is the default)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--output-device", default=None, metavar="Y",
                     help="playback device: index or name, or 'null' for none (default: the "
                          "window's last choice; without the window the default device, if any)")
    out.add_argument("--no-output", action="store_true", help="no playback")
    p.add_argument("-o", "--output", default=None, metavar="OUT.wav",
                   help="without the window: where to write the extraction (.wav or .flac; "
                        "default: a new file in the recordings folder)")
    p.add_argument("--block-ms", type=float, default=None,
                   help=f"block length in ms (default: the window's last, else "
                        f"{DEFAULT_BLOCK_MS:g})")
    p.add_argument("--settings", default=None, metavar="INI",
                   help="the window: its settings file (default: the user's Qt settings)")


def unused_options(args: argparse.Namespace, window: bool) -> list[str]:
    """The options given in ``args`` (parsed by a parser with :func:`add_app_options`) that a run
    with the window (``window`` True) or without it does not use, as they are written on the
    command line (e.g. ``["--seconds", "-o/--output"]``); empty when there are none."""
    ignored = WITHOUT_WINDOW_ONLY if window else WINDOW_ONLY
    return [flag for dest, flag in ignored.items() if getattr(args, dest, None) is not None]
