"""fairseq_mgcm/cli.py: ``python -m fairseq_mgcm.cli train|generate ARGS`` runs fairseq's own
``cli_main`` with ``sys.argv`` as the console script sets it, after the deferral.

The real trainings and decodings through it are scripts/run.sh's (stages 2, 3 and 5): every
recipe test (tests/test_recipe_*.py; tests/test_recipe_mustc_s.py also through cpu_launch's two
ranks) runs them. Here, in-process with fairseq_cli's module replaced, what reaches fairseq.
"""
from __future__ import annotations

import sys
import types

import pytest

import fairseq_mgcm
from fairseq_mgcm import cli


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Each step of a launch, in order; fairseq_cli's modules record the argv they run with."""
    seen: list[object] = []
    monkeypatch.setattr(cli, "_prepare", lambda: seen.append("prepare"))
    monkeypatch.setattr(fairseq_mgcm, "register", lambda: seen.append("register"))
    for command, (module, _) in cli.PROGRAMS.items():
        fake = types.ModuleType(module)
        fake.cli_main = lambda command=command: seen.append((command, list(sys.argv)))
        monkeypatch.setitem(sys.modules, module, fake)
    monkeypatch.setattr(sys, "argv", ["unchanged"])
    return seen


@pytest.mark.parametrize("command", ["train", "generate"])
def test_the_arguments_reach_fairseq_as_from_its_console_script(calls, command):
    args = ["data dir", "--user-dir", "fairseq_mgcm", "--lr", "1e-3", "--", "-x"]
    assert cli.main([command, *args]) == 0
    assert calls == ["prepare", "register", (command, [f"fairseq-{command}", *args])]


def test_sys_argv_is_the_default(calls, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["fairseq_mgcm/cli.py", "generate", "DATA", "--beam", "1"])
    assert cli.main() == 0
    assert calls[-1] == ("generate", ["fairseq-generate", "DATA", "--beam", "1"])


@pytest.mark.parametrize("argv", [[], ["evaluate", "DATA"], ["--help"]])
def test_an_unknown_command_is_a_usage_line_and_nothing_runs(calls, capsys, argv):
    assert cli.main(argv) == 2
    assert calls == [] and sys.argv == ["unchanged"]
    assert capsys.readouterr().err == cli.USAGE + "\n"
