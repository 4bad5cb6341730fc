"""The product talks about what it is, not about how it was made: no numbered work sessions or
tickets, and not the lab's word for its long training run, in any tracked file (code, configs,
tests, docs, result keys and texts, file names). History goes to CHANGELOG.md and the commit
messages (exempt). The words alone stay allowed where they are plain words (a D-Bus session,
``start_new_session``, issues reported); this file spells them in pieces so that it passes its own
check."""
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXEMPT = {"CHANGELOG.md"}
SESSION, ISSUE, LONG_RUN = "sess" + "ion", "iss" + "ue", "camp" + "aign"
# numbered sessions and issues, also inside identifiers (end_to_end_<session>9), and the run's word
HISTORY = re.compile(rf"(?<![a-z])(?:{SESSION}s?|{ISSUE}s?)[ _-]?\d+|(?<![a-z]){LONG_RUN}", re.IGNORECASE)


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
    s, i, c = SESSION, ISSUE, LONG_RUN
    assert history_words(f"{s.title()} 9 ({i} 10): the {c}'s end_to_end_{s}11") == [
        f"{s.title()} 9", f"{i} 10", c, f"{s}11"]
    assert history_words(f"shipped since {s}s 1 to 8, see {i}-8") == [f"{s}s 1", f"{i}-8"]
    assert history_words(f"dbus-run-{s} -- pulseaudio; start_new_{s}=True; a {s} "
                         f"of 10 minutes; {i}s reported") == []


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
