"""scripts/check_env.py: the environment must be exactly the lock (CI runs it before the tests)."""
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECK = ROOT / "scripts" / "check_env.py"


def run_check(lock: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CHECK), "--lock", str(lock)],
                          capture_output=True, text=True, timeout=120)


def test_a_drifted_version_is_named_with_the_lock_line(tmp_path):
    lock = tmp_path / "requirements.lock"
    torch = metadata.version("torch")
    lock.write_text(f"# header\nnumpy=={metadata.version('numpy')}\ntorch=={torch}.post9\n")
    run = run_check(lock)
    assert run.returncode == 1
    assert f"{lock}:3: torch=={torch}.post9 is locked, {torch} is installed" in run.stderr


def test_a_range_pin_is_refused(tmp_path):
    lock = tmp_path / "requirements.lock"
    for pin in ("torchaudio==2.11.*", "torchaudio>=2.11"):
        lock.write_text(f"{pin}\n")
        run = run_check(lock)
        assert run.returncode != 0 and f"{lock}:1: expected an exact pin" in run.stderr, pin


def test_every_runtime_requirement_is_pinned_exactly_in_the_lock():
    lock = {line.split("==")[0].lower() for line in (ROOT / "requirements.lock").read_text()
            .splitlines() if "==" in line and not line.startswith("#")}
    for name in ("requirements.txt", "requirements-test.txt"):
        for line in (ROOT / name).read_text().splitlines():
            line = line.split("#")[0].strip()
            if line:
                assert "==" in line, f"{name}: {line!r} is not an exact pin"
                assert line.split("==")[0].lower() in lock, f"{name}: {line} not in the lock"
