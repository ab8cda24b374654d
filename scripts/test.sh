#!/usr/bin/env bash
# Run the test suite on a fresh or prepared machine.
#
# Usage: scripts/test.sh [pytest arguments]      e.g. scripts/test.sh -m "not slow"
#
# Sets up system tools and the cached venv (scripts/setup_env.sh), checks the environment against
# requirements.lock, lints and type-checks the package (scripts/lint.sh), then runs pytest on
# tests/ against this checkout. pytest options (-p no:flake8) live in pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
python - <<'PY'
import fairseq_mgcm, os, sys
here = os.path.realpath(os.getcwd())
where = os.path.realpath(fairseq_mgcm.__file__)
if not where.startswith(here + os.sep):
    sys.exit(f"fairseq_mgcm imports from {where}, not from this checkout {here}")
PY
python scripts/check_env.py   # the environment is exactly requirements.lock
scripts/lint.sh               # ruff and mypy on fairseq_mgcm/
# Three worker processes (pytest-xdist) on the 2 cores CI has, one thread each: the tests are
# single-threaded, and much of a test's wall time is spent waiting (subprocess start-up, audio
# played in real time, a server's reply), which a third worker fills: 8 min 58 s against
# 10 min 15 s with two (README). Session inputs (prepared corpora, trained models, recipe
# runs) are built once for all (tests/build_once.py). MGCM_TEST_WORKERS=0 runs in this process
# (pdb, -s).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
workers=${MGCM_TEST_WORKERS:-3}
# Whole files to a worker (a file's tests share its module fixtures), long files first
# (tests/conftest.py), in that order.
xdist=(); [ "$workers" = 0 ] || xdist=(-n "$workers" --dist loadfile --no-loadscope-reorder)
exec python -m pytest "${xdist[@]}" --durations 25 "$@"   # testpaths = tests (pyproject.toml)
