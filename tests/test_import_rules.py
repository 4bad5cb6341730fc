"""The import directions of ARCHITECTURE.md hold: import-linter checks the contracts in
pyproject.toml ([tool.importlinter]): ``realtime_tse.models`` imports nothing else of the
distribution; ``realtime_tse.train`` imports ``realtime_tse.models`` only; the product does not
import ``realtime_tse.train``; no import cycles between the modules or subpackages of a package;
``realtime_tse``'s subpackages import only those below them. And no code imports the repository's
folders by their own names (``models``, ``train``): installed, they are ``realtime_tse.models`` and
``realtime_tse.train``."""
import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

RUN = ("import sys; from importlinter.cli import lint_imports; "
       "sys.exit(lint_imports(config_filename=sys.argv[1], no_cache=True))")


def installed_layout(root: Path) -> Path:
    """``root/realtime_tse``: the package as pyproject.toml installs it (``package-dir``: the
    repository's models/ and train/ inside realtime_tse/), made of links to the repository's
    files. import-linter reads packages from the file system, where the repository keeps
    models/ and train/ beside realtime_tse/ (an editable install maps them at import time)."""
    pkg = root / "realtime_tse"
    pkg.mkdir()
    for child in (REPO / "realtime_tse").iterdir():
        if child.name != "__pycache__":
            (pkg / child.name).symlink_to(child)
    dirs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    for name, folder in dirs.items():
        if (REPO / folder / "__init__.py").is_file():  # a Python package (assets/ is data)
            (pkg / name.removeprefix("realtime_tse.")).symlink_to(REPO / folder)
    return pkg


def test_import_contracts_are_kept(tmp_path):
    installed_layout(tmp_path)
    r = subprocess.run([sys.executable, "-c", RUN, str(REPO / "pyproject.toml")], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "realtime_tse.models" in r.stdout and "0 broken" in r.stdout, r.stdout[-4000:]


def test_no_code_imports_the_folders_by_their_repository_names():
    files = subprocess.run(["git", "ls-files", "*.py", "*.sh"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    bad = re.compile(r"^\s*(from|import)\s+(models|train)\b|-m\s+(models|train)\.", re.M)
    hits = [f"{f}:{(REPO / f).read_text()[:m.start()].count(chr(10)) + 1}"
            for f in files for m in bad.finditer((REPO / f).read_text())]
    assert not hits, hits
