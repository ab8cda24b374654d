"""fairseq_mgcm/errors.py: a UserError uncaught is one line; any other exception keeps its
traceback (the entry points themselves: tests/agents/test_user_errors.py)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from fairseq_mgcm.checkpoints.cmvn import CmvnMismatch
from fairseq_mgcm.checkpoints.errors import CheckpointError
from fairseq_mgcm.errors import BadValue, MissingFile, UserError, one_line

SCRIPT = """
import sys
from fairseq_mgcm.errors import BadValue, install_excepthook
install_excepthook(); install_excepthook()  # idempotent: one line, not two
sys.argv[0] = "/usr/bin/tool"
raise {raised}
"""


@pytest.mark.parametrize(("raised", "code", "expected"), [
    ('BadValue("data/x.yaml: expected a mapping\\n  (line 2)")', 1,
     "tool: error: data/x.yaml: expected a mapping; (line 2)\n"),
    ('RuntimeError("a bug")', 1, None),
    ("SystemExit(3)", 3, ""),
])
def test_only_user_errors_lose_their_traceback(raised: str, code: int, expected: str | None):
    result = subprocess.run([sys.executable, "-c", SCRIPT.format(raised=raised)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == code
    if expected is None:
        assert result.stderr.startswith("Traceback") and "RuntimeError: a bug" in result.stderr
    else:
        assert result.stderr == expected


def test_the_project_errors_are_user_errors_and_keep_their_builtin_bases():
    assert issubclass(MissingFile, FileNotFoundError) and issubclass(BadValue, ValueError)
    for kind in (CheckpointError, CmvnMismatch, MissingFile, BadValue):
        assert issubclass(kind, UserError) and issubclass(kind, (ValueError, OSError))
    assert one_line(ValueError("")) == "ValueError"
