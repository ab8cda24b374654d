"""The terminal copy of a piped fairseq command (fairseq_mgcm/recipe/console_filter.py): the log
keeps every byte, the terminal loses exactly the dumps and the listed noise."""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from fairseq_mgcm.recipe.console_filter import console_lines, split

ROOT = Path(__file__).resolve().parents[2]
SITE = "/venv/lib/python3.11/site-packages"
T = "2026-12-03 20:48:06 | INFO"

# What `fairseq-train ... 2>&1` prints, shortened: each noise next to a line that must stay.
TRAIN_OUTPUT = [
    f"{T} | fairseq.tasks.text_to_speech | Please install tensorboardX: pip install tensorboardX",
    f"{T} | fairseq_cli.train | {{'_name': None, 'common': {{'_name': None, 'log_interval': 1}}}}",
    f"{T} | fairseq_mgcm.tasks.speech_to_text_multitask | target dictionary: 242 types",
    f"{T} | fairseq_cli.train | WaitkS2TTransformerModel(",
    "  (encoder): WaitkS2TEncoder(",
    "    (dropout): Dropout(p=0.1, inplace=False)",
    "  )",
    ")",
    f"{T} | fairseq_cli.train | task: SpeechToTextMultitaskTask",
    f"{T} | fairseq.data.audio.speech_to_text_dataset | TranscriptSpeechToTextDataset(split=1,",
    "    GlobalCMVN(stats_npz_path=\"gcmvn.npz\")",  # not a model dump: stays
    "))",
    f"{SITE}/torch/utils/data/dataloader.py:775: UserWarning: 'pin_memory' argument is set as "
    "true but no accelerator is found, then device pinned memory won't be used.",
    "  super().__init__(loader)",
    f"{SITE}/hydra/core/default_element.py:124: UserWarning: In 'config': Usage of deprecated "
    "keyword in package header '# @package _group_'.",
    "See https://hydra.cc/docs/1.2/upgrades/1.0_to_1.1/changes_to_package_header for more",
    "  deprecation_warning(",
    f"{SITE}/fairseq/foo.py:3: UserWarning: something a user should read",
    "  warnings.warn(message)",
    f"{T} | train | {{\"epoch\": 1, \"train_loss\": \"24.402\"}}",
    "INFO:fairseq_cli.generate:{'_name': None, 'common': {}}",
    "INFO:fairseq.tasks.text_to_speech:Please install tensorboardX: pip install tensorboardX",
    "Traceback (most recent call last):",
]
KEPT = [TRAIN_OUTPUT[i] for i in (2, 8, 9, 10, 11, 17, 18, 19, 22)]


def test_the_terminal_loses_the_dumps_and_the_listed_noise_only():
    assert list(console_lines(TRAIN_OUTPUT)) == KEPT


def test_a_model_dump_ends_at_its_closing_parenthesis_or_the_next_record():
    cut_short = [f"{T} | fairseq_cli.train | Model(", "  (a): Linear()", "next line", ")"]
    assert list(console_lines(cut_short)) == ["next line", ")"]
    assert list(console_lines([f"{T} | fairseq_cli.train | Model(", ")", ")"])) == [")"]


def test_a_noisy_warning_without_a_source_line_ends_at_the_next_record():
    lines = [f"{SITE}/pydub/utils.py:170: RuntimeWarning: Couldn't find ffmpeg or avconv - "
             "defaulting to ffmpeg, but may not work", f"{T} | x | kept"]
    assert list(console_lines(lines)) == [f"{T} | x | kept"]


def test_split_logs_every_byte_and_shows_the_console_lines():
    raw = ("\n".join(TRAIN_OUTPUT) + "\nno newline at the end").encode() + b" \xff"
    log, terminal = io.BytesIO(), io.BytesIO()
    split(io.BytesIO(raw), log, terminal, show_all=False)
    assert log.getvalue() == raw
    assert terminal.getvalue().decode().splitlines() == KEPT + ["no newline at the end \ufffd"]

    log, terminal = io.BytesIO(), io.BytesIO()
    split(io.BytesIO(raw), log, terminal, show_all=True)
    assert terminal.getvalue().decode().splitlines()[:-1] == TRAIN_OUTPUT


def _pipe(command: str, log: Path, **env: str) -> subprocess.CompletedProcess:
    """``command | console_filter log`` under ``set -o pipefail``, as run.sh runs it."""
    filter_ = f"{sys.executable} -m fairseq_mgcm.recipe.console_filter {log}"
    return subprocess.run(["bash", "-c", f"set -o pipefail; {{ {command}; }} 2>&1 | {filter_}"],
                          cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=120)


def test_pipeline_appends_to_the_log_and_keeps_the_commands_exit_status(tmp_path):
    log = tmp_path / "run" / "train.log"
    shown = _pipe("printf 'a\\n%s\\nb\\n' \"$DUMP\" >&2; exit 3", log, DUMP=TRAIN_OUTPUT[1])
    assert shown.returncode == 3
    assert shown.stdout == "a\nb\n"
    again = _pipe("echo c", log)
    assert again.returncode == 0 and again.stdout == "c\n"
    assert log.read_text() == f"a\n{TRAIN_OUTPUT[1]}\nb\nc\n"


def test_verbose_shows_everything(tmp_path):
    shown = _pipe("printf '%s\\n' \"$DUMP\"", tmp_path / "log", DUMP=TRAIN_OUTPUT[0],
                  MGCM_VERBOSE="1")
    assert shown.stdout == TRAIN_OUTPUT[0] + "\n"
