"""The per-module conflict heat map over training, from the engine's telemetry (streamed).

One panel per task pair (e.g. ``ctc``, ``asr``: the primary against that auxiliary). Rows are
modules, ordered by kind and then as the model lists them; columns are equal-width bins of
update steps; the colour is the share of backward calls in the bin in which the module's two
gradients conflicted (negative inner product). A telemetry window (``first_step..last_step``)
counts in the bin of its middle step.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from fairseq_mgcm.conflict.telemetry import KIND_ORDER, read_windows
from fairseq_mgcm.recipe.plot import save_png

__all__ = ["conflict_grid", "plot_conflict_map"]

Grid = tuple[list[str], list[float], list[list[float]]]


def _span(path: Path) -> tuple[int, int, set[str]]:
    first: int | None = None
    last: int | None = None
    pairs: set[str] = set()
    for window in read_windows(path):
        first = window.first_step if first is None else min(first, window.first_step)
        last = window.last_step if last is None else max(last, window.last_step)
        pairs.update(tally.pair for tally in window.modules)
    if first is None or last is None or not pairs:
        raise ValueError(f"{path}: no conflict records (was the method 'none'?)")
    return first, last, pairs


def conflict_grid(path: str | os.PathLike[str], pair: str, bins: int) -> Grid:
    """Module names, bin edges (steps) and the conflict rate ``[module][bin]`` (NaN: no data)
    for ``pair``, in two streaming passes over the file."""
    path = Path(path)
    first, last, pairs = _span(path)
    if pair not in pairs:
        raise ValueError(f"{path}: no records for pair {pair!r} (pairs: {sorted(pairs)})")
    bins = max(1, min(bins, last - first + 1))
    width = (last - first + 1) / bins
    order: dict[str, tuple[int, int]] = {}
    hits: dict[str, list[int]] = {}
    counts: dict[str, list[int]] = {}
    for window in read_windows(path):
        middle = (window.first_step + window.last_step) / 2
        column = min(int((middle - first) / width), bins - 1)
        for tally in window.modules:
            if tally.pair != pair:
                continue
            if tally.module not in order:
                rank = KIND_ORDER.index(tally.kind) if tally.kind in KIND_ORDER else len(KIND_ORDER)
                order[tally.module] = (rank, len(order))
                hits[tally.module], counts[tally.module] = [0] * bins, [0] * bins
            hits[tally.module][column] += tally.conflicts
            counts[tally.module][column] += tally.n
    modules = sorted(order, key=order.__getitem__)
    grid = [[h / c if c else float("nan") for h, c in zip(hits[m], counts[m])] for m in modules]
    edges = [first + i * width for i in range(bins + 1)]
    return modules, edges, grid


def plot_conflict_map(path: str | os.PathLike[str], output: str | os.PathLike[str],
                      bins: int = 50, pairs: list[str] | None = None) -> Path:
    """Draw the heat map of ``path`` into the PNG ``output`` (written atomically)."""
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    pairs = pairs or sorted(_span(Path(path))[2])
    grids = [conflict_grid(path, pair, bins) for pair in pairs]
    height = max(3.0, 0.18 * max(len(g[0]) for g in grids) + 1.5)
    fig, axes = plt.subplots(1, len(pairs), figsize=(6.5 * len(pairs), height), dpi=110,
                             squeeze=False)
    for ax, pair, (modules, edges, grid) in zip(axes[0], pairs, grids):
        image = ax.pcolormesh(edges, np.arange(len(modules) + 1), np.array(grid),
                              cmap="magma", vmin=0.0, vmax=1.0, shading="flat")
        ax.set_yticks(np.arange(len(modules)) + 0.5, modules, fontsize=6)
        ax.invert_yaxis()
        ax.set_xlabel("update")
        ax.set_title(f"conflict rate: primary vs {pair}")
        fig.colorbar(image, ax=ax, fraction=0.04)
    return save_png(fig, output)
