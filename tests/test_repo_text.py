"""The product talks about what it is, not about how it was made: no "session N", "issue N" or
"campaign" in any tracked file (code, configs, tests, docs, result keys and texts, file names).
History goes to CHANGELOG.md and the commit messages (exempt, as this file with its examples). "session" alone stays allowed: it is also a
normal word (a D-Bus session, ``start_new_session``)."""
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXEMPT = {"CHANGELOG.md", "tests/test_repo_text.py"}   # this file spells the examples
# numbered sessions and issues, also inside identifiers (end_to_end_session9), and "campaign"
HISTORY = re.compile(r"(?<![a-z])(?:sessions?|issues?)[ _-]?\d+|(?<![a-z])campaign", re.IGNORECASE)


def _tracked() -> list[str]:
    try:
        r = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, timeout=60)
    except FileNotFoundError:
        pytest.skip("git is not installed")
    if r.returncode != 0:
        pytest.skip("not a git checkout")
    return [p for p in r.stdout.decode().split("\0") if p]


def history_words(text: str) -> list[str]:
    return [m.group(0) for m in HISTORY.finditer(text)]


def test_the_pattern_finds_history_and_spares_plain_words():
    assert history_words("Session 9 (issue 10): the campaign's end_to_end_session11") == [
        "Session 9", "issue 10", "campaign", "session11"]
    assert history_words("shipped since sessions 1 to 8, see issue-8") == ["sessions 1", "issue-8"]
    assert history_words("dbus-run-session -- pulseaudio; start_new_session=True; a session "
                         "of 10 minutes; issues reported") == []


def test_no_history_words_in_tracked_files():
    found = []
    for rel in _tracked():
        if rel in EXEMPT:
            continue
        found += [f"{rel}: file name" for _ in history_words(rel)]
        path = REPO / rel
        if not path.is_file():
            continue          # deleted in the working tree, not yet committed
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue          # binary (checkpoints, audio, images)
        for n, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            found += [f"{rel}:{n}: {w}" for w in history_words(line)]
    assert not found, "history words outside CHANGELOG.md:\n" + "\n".join(found[:50])
