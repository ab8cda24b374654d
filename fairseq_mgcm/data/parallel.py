"""An order-preserving parallel map with a bounded number of tasks in flight.

Used per talk by both the corpus maker and the preparation: results come back in input order
(so outputs are deterministic) and at most ``2 * jobs`` results wait in memory, which matters
for the real MuST-C train split (hundreds of hours of features).
"""
import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def _init_worker() -> None:
    import signal

    import torch

    torch.set_num_threads(1)  # one process per core; avoid oversubscribing with OpenMP
    # Ctrl-C reaches the whole process group: the main process handles it (and shuts the pool
    # down); workers dying of it on their own would print one traceback each.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def ordered_map(fn: Callable[[T], R], items: Iterable[T], jobs: int) -> Iterator[R]:
    """``map(fn, items)`` over ``jobs`` processes (in-process when ``jobs <= 1``).

    Workers come from a fork server, not from forking this process: forking a process that
    already ran torch's OpenMP pool (e.g. inside pytest) can deadlock, and spawning would
    re-import torch and fairseq in every worker. The server imports them once.
    """
    if jobs <= 1:
        yield from map(fn, items)
        return
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([fn.__module__])
    pool = ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker)
    try:
        pending: deque[Future] = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 2 * jobs:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:  # on an error or interrupt, do not finish the talks still queued
        pool.shutdown(wait=True, cancel_futures=True)
