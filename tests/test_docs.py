"""Documentation that must not drift from the code."""

from __future__ import annotations

import re
from pathlib import Path

from numerflow.tasks.core.config import settings_reference

ROOT = Path(__file__).resolve().parents[1]


def test_configuration_reference_is_generated_from_the_settings():
    current = (ROOT / "docs" / "configuration.md").read_text()
    assert current == settings_reference(), "run: python -m numerflow.tasks.core.config > docs/configuration.md"


def test_readme_quickstart_has_the_main_job_and_the_ci_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    quickstart = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    commands = [line for line in re.findall(r"```(?:bash|sh)?\n(.*?)```", quickstart, re.S)[0].splitlines() if line.strip()]
    assert len(commands) == 2, commands
    assert "numerflow run --demo" in commands[0]
    test_command = commands[1].split("&&")[-1].strip()
    assert test_command.startswith(".venv/bin/python -m pytest")
    # CI runs exactly the README's test command.
    assert test_command in ci
