"""Does a training budget leave stage 4 the epoch checkpoints it averages? Known before stage 0.

Stage 4 averages the last ``--n-average`` N epoch checkpoints (``checkpoint<E>.pt``); fairseq
writes one at the end of every ``--save-interval``-th epoch, none with
``--no-epoch-checkpoints``, and keeps only the last ``--keep-last-epochs``. A budget that cannot
give N of them used to be found out after training, by stage 4. What the flags alone decide is
checked here, before anything runs (each flag's last value counts, as in fairseq's parser):

- ``--no-epoch-checkpoints``: no epoch checkpoint at all;
- ``--keep-last-epochs K`` with 0 < K < N: only K are kept;
- ``--max-epoch E`` with E // save-interval < N: training ends with fewer;
- ``--max-update U`` with U < N x save-interval: every epoch takes at least one update, so U
  updates end before epoch N x save-interval (``--max-update 2`` ends mid-epoch 1 in practice).

How many epochs a larger ``--max-update`` makes depends on the prepared data and the batch
size, known only once training runs; such a budget (the paper's 100k updates,
``configs/model/s.args``) is accepted, and ``--max-epoch`` is the budget that guarantees the
count. Training alone (``--stop-stage 3``) needs no epoch checkpoints and is not checked.
"""
from __future__ import annotations

from fairseq_mgcm.recipe.train_flags import Flag

__all__ = ["BudgetError", "check_budget", "last_value"]


class BudgetError(ValueError):
    """A budget that cannot give stage 4 its epoch checkpoints; ``str()`` says why."""


def last_value(flags: list[Flag], name: str) -> Flag | None:
    """The flag ``--name VALUE`` (or ``--name=VALUE``) given last, as ``Flag(VALUE, source)``;
    for a switch (``--no-epoch-checkpoints``), the switch itself."""
    found = None
    for i, flag in enumerate(flags):
        if flag.token == name:
            value = flags[i + 1].token if i + 1 < len(flags) else ""
            found = Flag(value if not value.startswith("--") else name, flag.source)
        elif flag.token.startswith(name + "="):
            found = Flag(flag.token.split("=", 1)[1], flag.source)
    return found


def _int(flag: Flag | None, name: str, default: int) -> int:
    if flag is None:
        return default
    try:
        return int(flag.token)
    except ValueError:
        raise BudgetError(f"{flag.source}: {name} {flag.token!r} is not an integer") from None


def check_budget(flags: list[Flag], n_average: int) -> None:
    """Raise :class:`BudgetError` naming the flag (and where it came from) when ``flags`` (one
    training's, in run.sh's order) cannot leave ``n_average`` epoch checkpoints."""
    n = n_average
    why = f"the {n} epoch checkpoints stage 4 averages (--n-average {n})"
    fix = "lower --n-average, or stop at --stop-stage 3"
    switch = last_value(flags, "--no-epoch-checkpoints")
    if switch is not None:
        raise BudgetError(f"{switch.source}: --no-epoch-checkpoints writes none of {why}; "
                          "drop it or stop at --stop-stage 3")
    keep_flag = last_value(flags, "--keep-last-epochs")
    keep = _int(keep_flag, "--keep-last-epochs", -1)
    if keep_flag is not None and 0 < keep < n:
        raise BudgetError(f"{keep_flag.source}: --keep-last-epochs {keep} keeps fewer than "
                          f"{why}; raise it to {n}, {fix}")
    interval_flag = last_value(flags, "--save-interval")
    interval = max(_int(interval_flag, "--save-interval", 1), 1)
    every = "" if interval == 1 else f" (one per --save-interval {interval} epochs)"
    epoch_flag = last_value(flags, "--max-epoch")
    max_epoch = _int(epoch_flag, "--max-epoch", 0)
    if epoch_flag is not None and max_epoch > 0 and max_epoch // interval < n:
        raise BudgetError(f"{epoch_flag.source}: --max-epoch {max_epoch} leaves "
                          f"{max_epoch // interval}{every}, fewer than {why}; raise it to "
                          f"{n * interval}, {fix}")
    update_flag = last_value(flags, "--max-update")
    max_update = _int(update_flag, "--max-update", 0)
    if update_flag is not None and 0 < max_update < n * interval:
        raise BudgetError(
            f"{update_flag.source}: --max-update {max_update} ends training before the end of "
            f"epoch {n * interval} (every epoch takes at least one update), so it leaves fewer "
            f"than {why}; budget in epochs (--max-epoch {n * interval} --max-update 0), {fix}")
