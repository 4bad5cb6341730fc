"""Shared test set-up: Qt offscreen, the PulseAudio null-sink, private-PipeWire and tone-file
fixtures, and the shared-data path."""
import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# One intra-op thread for the tests and the processes they start: on a 2-core machine with any
# other load, torch's default of 2 OpenMP threads spins on its barriers and made one streaming test
# take 385 s instead of under a second (a fresh-clone run beside a training job; PLATFORM.md saw
# 40x on `scan`). The tests check values, not speed; speed lives in benchmarks/.
os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch  # noqa: E402

torch.set_num_threads(1)

from tests.audio_fixtures import pipewire_server, pulse_null_sink  # noqa: E402,F401
from tests.tone_fixtures import tone_file  # noqa: E402,F401

REPO = Path(__file__).resolve().parents[1]
SHARED_SPEECH = REPO.parent / "shared" / "data" / "speechocean762"


@pytest.fixture(scope="session")
def shared_speech():
    """../shared/data/speechocean762, or skip (the project must pass without ../shared)."""
    if not SHARED_SPEECH.is_dir():
        pytest.skip("needs ../shared/data/speechocean762 (not part of the repository)")
    return SHARED_SPEECH
