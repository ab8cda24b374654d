"""What fairseq, SimulEval and their dependencies print that a person at a terminal does not need.

A demo run or a test command used to open with a tensorboardX notice, pydub's ffmpeg warning,
torch's pin_memory warning, hydra's deprecation warnings and fairseq's full config and model
dumps: screens of text that hide the lines that matter. None of them concerns this plugin:

- ``Please install tensorboardX``: logged at import by fairseq's text-to-speech task (unused);
- pydub (imported by SimulEval) looks for ffmpeg; the agent reads wav files with soundfile;
- fairseq's batch iterators always ask for pinned memory, which torch ignores on CPU;
- fairseq 0.12 calls hydra's old API (``hydra.experimental``, ``strict``, ``_group_``);
- ``fairseq_cli`` logs the whole config and ``print(model)`` at INFO.

:func:`quiet_console` silences them, precisely (message patterns and logger names, nothing by
level): the warnings and the tensorboardX notice everywhere, the two dumps only on console
handlers that write to a terminal, so a log file (or ``tee`` into one) keeps them;
``fairseq_mgcm/recipe/console_filter.py`` drops the dumps from the terminal copy of a piped
command. ``MGCM_VERBOSE=1`` turns all of it off. Importing this module imports nothing else.
"""
from __future__ import annotations

import logging
import os
import warnings

VERBOSE_ENV = "MGCM_VERBOSE"

TENSORBOARDX_LOGGER = "fairseq.tasks.text_to_speech"
TENSORBOARDX_NOTICE = "Please install tensorboardX"

NOISY_WARNINGS: tuple[tuple[type[Warning], str], ...] = (
    # (category, regular expression matched at the start of the message, as `warnings` does)
    (RuntimeWarning, r"Couldn't find ffmpeg or avconv"),  # pydub
    (UserWarning, r"'pin_memory' argument is set as true but no accelerator is found"),  # torch
    (UserWarning, r"hydra\.experimental\.(initialize|compose)\(\) is no longer experimental"),
    (UserWarning, r"\s*The version_base parameter is not specified"),
    (UserWarning, r"In 'config': Usage of deprecated keyword in package header"),
    (UserWarning, r"\s*'config' is validated against ConfigStore schema"),
    (UserWarning, r"\s*The strict flag in the compose API is deprecated"),
)

__all__ = ["NOISY_WARNINGS", "VERBOSE_ENV", "is_dump", "quiet_console", "verbose"]


def verbose() -> bool:
    """``MGCM_VERBOSE`` set to anything but ``""`` or ``"0"``: show everything."""
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def is_dump(record: logging.LogRecord) -> bool:
    """fairseq's config or model dump: ``fairseq_cli`` logs a config object or a module, not a
    string, only for those (``logger.info(cfg)``, ``logger.info(model)``)."""
    return record.name.startswith("fairseq_cli") and not isinstance(record.msg, str)


class _DropDumps(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not is_dump(record)


class _DropTensorboardxNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(TENSORBOARDX_NOTICE)


def _writes_to_terminal(handler: logging.Handler) -> bool:
    if not isinstance(handler, logging.StreamHandler) or isinstance(handler, logging.FileHandler):
        return False
    isatty = getattr(handler.stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def _add_once(filterer: logging.Filterer, kind: type[logging.Filter]) -> None:
    if not any(isinstance(f, kind) for f in filterer.filters):
        filterer.addFilter(kind())


def quiet_console() -> None:
    """Silence the messages listed in the module docstring (idempotent; nothing when verbose).

    Call it before fairseq or SimulEval is imported (the notice and pydub's warning come at
    import) and again once logging is configured (the dump filter goes on the root logger's
    terminal handlers that exist then)."""
    if verbose():
        return
    for category, message in NOISY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    _add_once(logging.getLogger(TENSORBOARDX_LOGGER), _DropTensorboardxNotice)
    for handler in logging.getLogger().handlers:
        if _writes_to_terminal(handler):
            _add_once(handler, _DropDumps)
