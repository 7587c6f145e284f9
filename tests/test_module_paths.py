"""Docs and comments name only module paths and repository files that exist: ``numerflow.X`` is the
folder ``X/`` (tasks/, flows/, deployments/), so ``tasks.core.store.write_parquet`` must be a name
defined in tasks/core/store.py, and ``tasks/prices/ingest.py`` a file. In Python files only comments
and strings are read (code is checked by the imports themselves)."""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULE = re.compile(r"(?<![\w./-])(?:numerflow\.)?((?:tasks|flows|deployments)(?:\.[A-Za-z_][A-Za-z0-9_]*)+)")
FILE = re.compile(r"(?<![\w./-])((?:tasks|flows|deployments|tests|benchmarks|docs)/[\w./-]*\w\.(?:py|md|yaml|json|toml))")
SKIP = {".venv", ".git", "__pycache__", "build", "dist"}


def _defines(module: Path, name: str) -> bool:
    return bool(re.search(rf"^\s*(?:async\s+)?(?:def|class)\s+{name}\b|^\s*{name}\s*[:=]|\bimport\b[^\n]*\b{name}\b"
                          rf"|^\s+{name},?$", module.read_text(), re.M))


def exists(dotted: str) -> bool:
    """A module (file or package) of the repository, or one name defined in one."""
    parts = dotted.removeprefix("numerflow.").split(".")
    if parts[-1] in ("py", "md"):  # a file name written with dots (flows.py): not a module path
        return True
    for i in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:i])
        module = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
        if not (base.is_dir() or module.exists()):
            continue
        rest = parts[i:]
        return not rest or (module.exists() and _defines(module, rest[0]))
    return False


def _prose(path: Path) -> list[tuple[int, str]]:
    """(line, text) of what is read as prose: a Markdown/TOML/YAML file whole, a Python file's comments and strings."""
    text = path.read_text(errors="ignore")
    if path.suffix != ".py":
        return list(enumerate(text.splitlines(), 1))
    tokens = tokenize.generate_tokens(io.StringIO(text).readline)
    return [(t.start[0], t.string) for t in tokens if t.type in (tokenize.COMMENT, tokenize.STRING)]


def dangling_references() -> list[str]:
    found = []
    for path in sorted(ROOT.rglob("*")):
        if path.suffix not in (".py", ".md", ".toml", ".yaml") or SKIP & set(path.relative_to(ROOT).parts) \
                or not path.is_file() or "egg-info" in str(path) or path.name == Path(__file__).name:
            continue
        for line, text in _prose(path):
            found += [f"{path.relative_to(ROOT)}:{line}: {m.group(1)}" for m in MODULE.finditer(text)
                      if not exists(m.group(1))]
            found += [f"{path.relative_to(ROOT)}:{line}: {m.group(1)}" for m in FILE.finditer(text)
                      if not (ROOT / m.group(1)).exists() and "__pycache__" not in m.group(1)
                      and "/results/" not in m.group(1)]
    return found


def test_docs_and_comments_name_only_module_paths_and_files_that_exist():
    assert dangling_references() == []


def test_the_check_itself_finds_a_moved_module_and_accepts_real_ones():
    assert exists("tasks.core.store.write_parquet") and exists("numerflow.flows.round.round_flow")
    assert exists("tasks.prices") and exists("flows.stages.stage")
    assert not exists("tasks.ranking") and not exists("tasks.store.read_parquet")
    assert not exists("tasks.core.store.no_such_helper")


def test_no_citation_of_files_outside_the_repository():
    """Facts are stated where they are used, never cited from a guide that is not in the repository."""
    cited = [f"{p.relative_to(ROOT)}" for p in ROOT.rglob("*")
             if p.suffix in (".py", ".md", ".toml", ".yaml") and not SKIP & set(p.relative_to(ROOT).parts)
             and p.is_file() and "egg-info" not in str(p) and p.name != Path(__file__).name
             and re.search(r"GUIDE(\.md)? ?§|shared/GUIDE", p.read_text(errors="ignore"))]
    assert cited == []
