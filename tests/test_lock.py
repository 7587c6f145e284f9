"""constraints.txt, the lock: exact pins for every dependency pyproject.toml declares (and everything
they pull in), inside pyproject's ranges; .ci/run and the Dockerfile install with it."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def parse_lock(text: str) -> dict[str, str]:
    """name → pinned version; anything but `name==version` (ranges, URLs, -e, -r) is an error."""
    pins: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)", line)
        assert match, f"constraints.txt:{number}: {raw!r} is not an exact pin (name==version)"
        name = canonicalize_name(match.group(1))
        assert name not in pins, f"constraints.txt:{number}: {name} pinned twice"
        pins[name] = match.group(2)
    return pins


LOCK = parse_lock((ROOT / "constraints.txt").read_text())


def declared() -> list[Requirement]:
    project = PYPROJECT["project"]
    reqs = [*project["dependencies"], *(r for extra in project["optional-dependencies"].values() for r in extra)]
    return [Requirement(r) for r in reqs]


def uncovered(requirements: list[Requirement], lock: dict[str, str]) -> list[str]:
    """Requirements the lock does not pin, or pins outside the requirement's range."""
    problems = []
    for req in requirements:
        pinned = lock.get(canonicalize_name(req.name))
        if pinned is None:
            problems.append(f"{req.name}: not in the lock")
        elif not req.specifier.contains(pinned, prereleases=True):
            problems.append(f"{req.name}: lock pins {pinned}, pyproject wants {req.specifier}")
    return problems


def test_lock_pins_every_pyproject_dependency_inside_its_range():
    assert uncovered(declared(), LOCK) == []
    # The pins the project's comments depend on (pyproject.toml says why each).
    assert LOCK["prefect"] == "3.8.8" and LOCK["numerapi"] == "3.1.1" and LOCK["prefect-dask"] == "0.3.7"
    assert LOCK["sqlalchemy"].startswith("2.0.") and int(LOCK["fastapi"].split(".")[1]) < 151
    assert "asyncpg" in LOCK  # the Prefect server's PostgreSQL driver, for the server image


def test_lock_pins_the_build_tools():
    build = [Requirement(r) for r in PYPROJECT["build-system"]["requires"]]
    assert uncovered(build, LOCK) == []
    assert "pip" in LOCK


def transitive_closure(roots: list[Requirement]) -> set[str]:
    """Every distribution the installed environment needs for ``roots`` (markers evaluated here)."""
    env = default_environment()
    seen: set[str] = set()
    todo = [(r, "") for r in roots]
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({**env, "extra": extra}):
            continue
        name = canonicalize_name(req.name)
        key = f"{name}[{','.join(sorted(req.extras))}]"
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue  # not installed here: uncovered() has already named a missing top-level one
        for sub in dist.requires or []:
            sub_req = Requirement(sub)
            for wanted in [""] + sorted(req.extras):
                todo.append((sub_req, wanted))
    return {key.split("[")[0] for key in seen}


def test_lock_covers_the_whole_installed_dependency_tree():
    """Not only the direct dependencies: a transitive one left out could drift on any day."""
    needed = transitive_closure(declared())
    assert len(needed) > 50  # the tree was really walked (prefect alone pulls dozens)
    assert sorted(needed - set(LOCK)) == []


def test_the_checks_catch_a_bad_lock():
    """What makes the checks above able to fail."""
    reqs = [Requirement("prefect==3.8.8"), Requirement("sqlalchemy<2.1"), Requirement("pandas>=3.0")]
    assert uncovered(reqs, {"prefect": "3.8.8", "sqlalchemy": "2.1.0"}) == [
        "sqlalchemy: lock pins 2.1.0, pyproject wants <2.1", "pandas: not in the lock"]
    for bad in ("pandas>=3.0\n", "-e .\n", "numpy==2.0\nNumPy==2.1\n"):
        try:
            parse_lock(bad)
        except AssertionError:
            continue
        raise AssertionError(f"parse_lock accepted {bad!r}")


def test_ci_installs_from_the_lock():
    ci = (ROOT / ".ci" / "run").read_text()
    installs = [line for line in ci.splitlines() if re.search(r"\bpip install\b", line)]
    assert installs, "no pip install in .ci/run"
    for line in installs:
        assert "-c constraints.txt" in line, f".ci/run installs without the lock: {line}"
    (project_install,) = [line for line in installs if '-e ".[test,lint]"' in line]
    assert "--build-constraint constraints.txt" in project_install
    assert "pip check" in ci
