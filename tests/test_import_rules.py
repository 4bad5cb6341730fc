"""The import directions of ARCHITECTURE.md hold: import-linter checks the contracts in
pyproject.toml ([tool.importlinter]): ``models`` imports neither ``train`` nor ``realtime_tse``;
``realtime_tse`` and ``train`` never import each other; no import cycles between the modules or
subpackages of a package; ``realtime_tse``'s subpackages import only those below them."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

RUN = ("import sys; from importlinter.cli import lint_imports; "
       "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True))")


def test_import_contracts_are_kept():
    r = subprocess.run([sys.executable, "-c", RUN], cwd=REPO, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
