"""What reaches the terminal (fairseq_mgcm/console.py): the listed warnings and fairseq's notice
are silenced, the config and model dumps only on terminal handlers, all of it unless
MGCM_VERBOSE=1."""
from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import tomllib
import warnings
from pathlib import Path

import pytest

from fairseq_mgcm import console

ROOT = Path(__file__).resolve().parents[1]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def handlers(tmp_path):
    """A terminal handler and a log file handler on the root logger, removed afterwards."""
    terminal = logging.StreamHandler(_Terminal())
    log_file = logging.FileHandler(tmp_path / "run.log")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)
    root.addHandler(terminal)
    root.addHandler(log_file)
    notice = logging.getLogger(console.TENSORBOARDX_LOGGER)
    notice_filters = list(notice.filters)
    notice.filters = []  # as if nothing had quieted it yet in this session
    yield terminal.stream, tmp_path / "run.log"
    root.removeHandler(terminal)
    root.removeHandler(log_file)
    log_file.close()
    root.setLevel(level)
    notice.filters[:] = notice_filters


def _emit_everything() -> list[str]:
    logging.getLogger("fairseq_cli.train").info({"_name": None, "common": {}})  # logger.info(cfg)
    logging.getLogger("fairseq_cli.train").info(ValueError("a model"))  # logger.info(model)
    logging.getLogger("fairseq_cli.train").info("task: %s", "SpeechToTextMultitaskTask")
    logging.getLogger(console.TENSORBOARDX_LOGGER).info("Please install tensorboardX: pip ...")
    with warnings.catch_warnings(record=True) as caught:
        warnings.warn("'pin_memory' argument is set as true but no accelerator is found, then "
                      "device pinned memory won't be used.", UserWarning, stacklevel=1)
        warnings.warn("Couldn't find ffmpeg or avconv - defaulting to ffmpeg", RuntimeWarning,
                      stacklevel=1)
        warnings.warn("\nThe strict flag in the compose API is deprecated.\n", UserWarning,
                      stacklevel=1)
        warnings.warn("'pin_memory' is something else", UserWarning, stacklevel=1)
    return [str(w.message) for w in caught]


def test_quiet_console_keeps_the_dumps_in_files_and_drops_the_noise(handlers, monkeypatch):
    monkeypatch.delenv(console.VERBOSE_ENV, raising=False)
    terminal, log_file = handlers
    with warnings.catch_warnings():
        console.quiet_console()
        console.quiet_console()  # idempotent
        shown_warnings = _emit_everything()
    assert shown_warnings == ["'pin_memory' is something else"]
    assert terminal.getvalue().splitlines() == ["task: SpeechToTextMultitaskTask"]
    assert log_file.read_text().splitlines() == [
        "{'_name': None, 'common': {}}", "a model", "task: SpeechToTextMultitaskTask"]
    on_terminal = [h for h in logging.getLogger().handlers if getattr(h, "stream", 0) is terminal]
    assert [len(h.filters) for h in on_terminal] == [1]


def test_verbose_shows_everything(handlers, monkeypatch):
    monkeypatch.setenv(console.VERBOSE_ENV, "1")
    terminal, log_file = handlers
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        console.quiet_console()
        assert len(_emit_everything()) == 4
    assert terminal.getvalue().splitlines() == [
        "{'_name': None, 'common': {}}", "a model", "task: SpeechToTextMultitaskTask",
        "Please install tensorboardX: pip ..."]


@pytest.mark.parametrize(("value", "expected"), [("", False), ("0", False), ("1", True)])
def test_verbose_reads_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv(console.VERBOSE_ENV, value)
    assert console.verbose() is expected


def test_the_agent_imports_fairseq_and_simuleval_silently():
    """The sweep's path: SimulEval (pydub) and fairseq load without a word on the terminal."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop(console.VERBOSE_ENV, None)
    done = subprocess.run([sys.executable, "-c", "import fairseq_mgcm.agents.waitk_agent"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (done.stdout, done.stderr) == ("", "")


def test_pytest_ignores_the_same_warnings():
    """pyproject.toml's filterwarnings lists every warning console.py silences (pytest resets
    the filters a test installs, so the test run needs its own copy)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    entries = config["tool"]["pytest"]["ini_options"]["filterwarnings"]
    expected = {f"ignore:{message.replace(': ', '. ')}:{category.__name__}"
                for category, message in console.NOISY_WARNINGS}
    assert expected <= set(entries)
