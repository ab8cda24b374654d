#!/usr/bin/env bash
# Lint and type-check the package: ruff (rules in pyproject.toml [tool.ruff]) and mypy
# ([tool.mypy]). Exits non-zero on the first tool that finds something.
# usage: scripts/lint.sh        (from anywhere; uses the active environment's ruff and mypy)
set -euo pipefail
cd "$(dirname "$0")/.."
echo "ruff $(ruff --version | cut -d' ' -f2): ruff check fairseq_mgcm/" >&2
ruff check fairseq_mgcm/
echo "mypy $(mypy --version | cut -d' ' -f2): mypy (files from pyproject.toml)" >&2
# mypy's cache lives with the venv (same mypy, same stubs), so a fresh clone checks in seconds
# instead of ~17 s; mypy re-checks every file whose content changed.
mypy --cache-dir "${VIRTUAL_ENV:-.}/.mypy_cache"
