"""docs/hostile_inputs.md names, for every bad input or fault, the test that checks it: each
named test exists (a renamed or dropped test would leave a row that promises a check no one
runs)."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "hostile_inputs.md"
# `tests/agents/test_sweep.py::test_name[...]`, or the short forms `test_sweep.py::test_name`
# and `T/test_jobs.py::test_name` (a section's abbreviation of its folder)
REFERENCE = re.compile(r"`(?:[\w./]*/)?(test_\w+\.py)::(test_\w+)")


def test_every_test_the_document_names_exists() -> None:
    files: dict[str, list[Path]] = {}
    for path in (ROOT / "tests").rglob("test_*.py"):
        files.setdefault(path.name, []).append(path)
    references = REFERENCE.findall(DOC.read_text(encoding="utf-8"))
    assert len(references) > 80  # the document's rows, not a parse that found nothing
    missing = sorted({f"{name}::{test}" for name, test in references
                      if not any(re.search(rf"^def {test}\(", path.read_text(), re.MULTILINE)
                                 for path in files.get(name, []))})
    assert not missing, f"{DOC} names tests that do not exist: {missing}"
