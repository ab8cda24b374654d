"""fairseq-mgcm: simultaneous speech translation with modular gradient conflict mitigation.

Load into fairseq with ``--user-dir fairseq_mgcm``. fairseq imports the plugin after itself, so
importing this package while fairseq is loaded registers the task, model, criterion and
optimizer wrapper (``conflict_aware``) and patches fairseq's checkpoint handling
(``checkpoints/``) and legacy_ddp's ``no_sync`` (``optim/_ddp.py``). Without fairseq loaded,
nothing of fairseq is imported: the conflict engine (``fairseq_mgcm.conflict``), data
preparation and the recipe's report and plots are plain PyTorch/Python and import quickly. A
program that imports this package before fairseq and then needs the plugin calls
:func:`register`.
"""
from __future__ import annotations

import sys

__version__ = "0.1.0"


def register() -> None:
    """Register everything with fairseq and patch its checkpoint handling (idempotent).

    Also quiets fairseq's console (``fairseq_mgcm/console.py``; ``MGCM_VERBOSE=1`` shows all):
    its import-time notices when this call is the first to import it, its warnings and, on a
    terminal, its config and model dumps; and prints an uncaught ``errors.UserError`` (a bad
    checkpoint, data config, flag) in one line without a traceback."""
    from fairseq_mgcm.console import quiet_console
    from fairseq_mgcm.errors import install_excepthook

    install_excepthook()  # fairseq-generate/-train: a UserError in one line, no traceback
    quiet_console()
    from fairseq_mgcm.checkpoints import install_fairseq_patches

    install_fairseq_patches()
    from fairseq_mgcm.optim._ddp import install_legacy_ddp_no_sync_fix

    install_legacy_ddp_no_sync_fix()  # a worker's recovered OOM must not skip the all-reduce
    # Registration happens by importing each registry's package explicitly.
    from fairseq_mgcm import criterions, models, optim, tasks  # noqa: F401

    quiet_console()  # the console handlers fairseq's import or fairseq_cli configured


if "fairseq" in sys.modules:
    register()
