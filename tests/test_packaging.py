"""One installed package, ``numerflow``: no bare ``tasks``/``flows``/``deployments`` anywhere."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BARE = {"tasks", "flows", "deployments"}


def python_files() -> list[Path]:
    return [p for folder in ("tasks", "flows", "deployments", "tests", "benchmarks")
            for p in (ROOT / folder).rglob("*.py")]


def bare_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in BARE]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] in BARE:
                found.append(node.module)
    return found


def test_every_import_goes_through_numerflow():
    offenders = {str(p.relative_to(ROOT)): bare for p in python_files() if (bare := bare_imports(p))}
    assert offenders == {}


def test_the_check_sees_a_bare_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import tasks.core.config\nfrom flows import cli\nfrom numerflow.tasks.core import store\n")
    assert bare_imports(sample) == ["tasks.core.config", "flows"]


def test_cli_runs_from_a_folder_holding_its_own_tasks_module(tmp_path):
    # An Invoke/Celery-style tasks.py beside the user's work must not shadow numerflow's stages.
    (tmp_path / "tasks.py").write_text("raise SystemExit('the wrong tasks module was imported')\n")
    (tmp_path / "flows.py").write_text("raise SystemExit('the wrong flows module was imported')\n")
    done = subprocess.run([sys.executable, "-m", "numerflow.flows.cli", "status", "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage: numerflow status" in done.stdout


@pytest.mark.slow
def test_wheel_has_one_top_level_name(tmp_path):
    # Built from a copy: an in-tree build would leave build/ in the project.
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("tasks", "flows", "deployments"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                           "-w", str(tmp_path), str(source)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    (wheel,) = tmp_path.glob("numerflow-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"numerflow"}
    for module in ("numerflow/flows/cli.py", "numerflow/tasks/core/config.py", "numerflow/deployments/serve.py",
                   "numerflow/tasks/prices/sources/yahoo.py", "numerflow/tasks/round/signals.py",
                   "numerflow/tasks/crypto/data.py"):
        assert module in names
