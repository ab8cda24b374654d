"""docs/architecture.md's tree names every folder and top-level module of the package, and only
those: a reader should find where a change belongs from it."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_tree_in_architecture_md_matches_the_package():
    text = (ROOT / "docs" / "architecture.md").read_text()
    tree = text.split("```\nfairseq_mgcm/\n", 1)[1].split("```", 1)[0]
    named = set(re.findall(r"^  (\w+/|\w+\.py)", tree, re.M))
    package = ROOT / "fairseq_mgcm"
    actual = {f"{p.name}/" for p in package.iterdir() if (p / "__init__.py").exists()}
    actual |= {p.name for p in package.glob("*.py")}
    assert named == actual
