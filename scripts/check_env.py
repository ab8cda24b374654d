"""Check that the running environment is exactly the lock: every pinned package at its version.

Usage: python scripts/check_env.py [--lock requirements.lock]

Exits 0 when every ``name==version`` line of the lock is installed at that version and
``pip check`` finds no broken requirements; otherwise prints one line per mismatch, naming the
lock file and line, and exits 1. ``scripts/test.sh`` (and so CI) runs it before the tests, so a
cached environment that drifted from the lock cannot pass.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def read_lock(path: Path) -> list[tuple[int, str, str]]:
    """``(line number, name, version)`` for each pin; anything but ``name==version`` is an error."""
    pins = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep or not name or not version or any(c in version for c in "<>=!~;,* "):
            raise SystemExit(f"{path}:{number}: expected an exact pin 'name==version', got {raw!r}")
        pins.append((number, name.strip(), version.strip()))
    return pins


def mismatches(path: Path) -> list[str]:
    problems = []
    for number, name, version in read_lock(path):
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            problems.append(f"{path}:{number}: {name}=={version} is locked but not installed")
            continue
        if installed != version:
            problems.append(f"{path}:{number}: {name}=={version} is locked, {installed} is installed")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lock", type=Path, default=ROOT / "requirements.lock")
    args = parser.parse_args()
    if not args.lock.is_file():
        print(f"{args.lock}: no such lock file", file=sys.stderr)
        return 1
    problems = mismatches(args.lock)
    check = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    if check.returncode != 0:
        problems.append(f"pip check: {check.stdout.strip() or check.stderr.strip()}")
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(f"environment matches {args.lock.name}: {len(read_lock(args.lock))} packages")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
