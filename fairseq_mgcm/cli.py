"""fairseq-train and fairseq-generate with this plugin, started faster: what scripts/run.sh runs.

Usage::

    python -m fairseq_mgcm.cli train DATA --user-dir fairseq_mgcm [fairseq-train flags]
    python -m fairseq_mgcm.cli generate DATA --user-dir fairseq_mgcm [fairseq-generate flags]

The same programs as fairseq's console scripts (``fairseq_cli.train.cli_main``,
``fairseq_cli.generate.cli_main``): the same flags, output, files and exit status, and
``sys.argv`` as the console script sets it (fairseq's parsers read ``--user-dir`` from it, and
argparse and ``errors.py`` name the program ``fairseq-train`` or ``fairseq-generate``). The
difference is what happens before fairseq is imported: :mod:`fairseq_mgcm.fast_start` defers
scikit-learn and scipy.stats, which fairseq's import loads and this plugin never uses (about
1.9 s less CPU per process: docs/architecture.md, "Start-up"), and the console is quieted from
the start (``console.py``). ``fairseq-train ... --user-dir fairseq_mgcm`` typed by hand works as
before.

The plugin is registered here, after fairseq_cli's import as with the console script: fairseq's
``--user-dir`` loader skips a package already imported, and this module's package is. A rank
that fairseq spawns on a multi-GPU machine imports this module as ``__mp_main__`` before it
unpickles its work; the deferral and the registration happen there too (below).
"""
from __future__ import annotations

import importlib
import sys

from fairseq_mgcm.fast_start import defer_unused_imports

__all__ = ["PROGRAMS", "main"]

# command -> (fairseq_cli module whose cli_main runs it, the console script's name)
PROGRAMS = {"train": ("fairseq_cli.train", "fairseq-train"),
            "generate": ("fairseq_cli.generate", "fairseq-generate")}

USAGE = "usage: python -m fairseq_mgcm.cli {train,generate} FAIRSEQ-ARGS..."


def _prepare() -> None:
    """Before fairseq loads: defer the unused packages and quiet the console."""
    from fairseq_mgcm.console import quiet_console

    defer_unused_imports()
    quiet_console()


def main(argv: list[str] | None = None) -> int:
    """Run ``fairseq-<argv[0]>`` with the rest of ``argv`` (default ``sys.argv[1:]``)."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in PROGRAMS:
        print(USAGE, file=sys.stderr)
        return 2
    module, program = PROGRAMS[argv[0]]
    _prepare()
    cli_main = importlib.import_module(module).cli_main
    import fairseq_mgcm

    fairseq_mgcm.register()
    sys.argv = [program, *argv[1:]]
    cli_main()
    return 0


if __name__ == "__mp_main__":  # a rank fairseq spawned (several GPUs): as main() sets it up
    _prepare()
    import fairseq_mgcm

    fairseq_mgcm.register()

if __name__ == "__main__":
    sys.exit(main())
