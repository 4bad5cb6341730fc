"""Shared test set-up: Qt offscreen, the PulseAudio null-sink fixture, and the shared-data path."""
import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from tests.audio_fixtures import pulse_null_sink  # noqa: E402,F401

REPO = Path(__file__).resolve().parents[1]
SHARED_SPEECH = REPO.parent / "shared" / "data" / "speechocean762"


@pytest.fixture(scope="session")
def shared_speech():
    """../shared/data/speechocean762, or skip (the project must pass without ../shared)."""
    if not SHARED_SPEECH.is_dir():
        pytest.skip("needs ../shared/data/speechocean762 (not part of the repository)")
    return SHARED_SPEECH
