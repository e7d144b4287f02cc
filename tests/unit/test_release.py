"""What an operator installs: the version it reports, and a lock file that pins every dependency."""
from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, pinned = line.partition("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = pinned
    return pins


def test_version_is_the_installed_distributions():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    result = subprocess.run([sys.executable, "-m", "bot", "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout.strip() == f"conversant {project['version']}"


def test_every_dependency_is_pinned_in_the_lock_within_its_range():
    """A dependency added to pyproject.toml without `make lock` would install untested versions."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["postgres"] + project["optional-dependencies"]["test"]
    pins = _lock()
    for spec in map(Requirement, wanted):
        name = re.sub(r"[-_.]+", "-", spec.name).lower()
        assert name in pins, f"{spec.name} is not in requirements.lock: run `make lock`"
        assert spec.specifier.contains(pins[name], prereleases=True), f"{spec.name}=={pins[name]} is outside {spec.specifier}"
        assert not spec.specifier.contains("999999"), f"{spec.name} has no upper bound"


def test_migrate_goes_down_and_back_up_and_says_which_database(database_url, monkeypatch, tmp_path, capsys):
    from bot.cli import main
    from bot.db import current_revision

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", database_url)
    try:
        assert main(["migrate", "--to", "0005"]) == 0
        assert current_revision(database_url) == "0005"
        assert main(["migrate", "--to", "nonsense"]) == 2
        assert current_revision(database_url) == "0005"
    finally:
        assert main(["migrate"]) == 0
    out = capsys.readouterr().out
    assert "schema is at revision 0005" in out and "schema is up to date" in out
    if database_url.startswith("sqlite"):
        assert f"SQLite file {tmp_path / 'conversant.db'}" in out
    else:
        assert "PostgreSQL postgresql://conversant:***@" in out


def test_every_package_under_bot_is_installed():
    """`pip install .` installs exactly the listed packages: one left out breaks the installed command."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "bot").rglob("__init__.py")}
    assert found - listed == set()
