"""Draw BLEU against AL, one mean curve per method with its seed spread, as a PNG (the
recipe's final figure); the same against StreamLAAL for the long-form runs."""
from __future__ import annotations

import logging
import math
import os
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from fairseq_mgcm.atomic_files import atomic_path
from fairseq_mgcm.recipe.results import MethodResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_bleu_al", "plot_bleu_latency"]

Rows = Callable[[MethodResult], list[dict[str, float]]]  # a run's table rows (k, BLEU, ...)


def plot_bleu_al(results: list[MethodResult], output: str | os.PathLike,
                 title: str = "BLEU vs. average lagging") -> Path:
    """One curve per method through its mean (AL, BLEU) at each k, with error bars of one
    sample standard deviation over seeds in both directions (none with a single seed);
    written atomically."""
    return plot_bleu_latency(results, output, title, lambda result: result.simul, "AL",
                             "AL (ms)", "simul/results.tsv")


def plot_bleu_latency(results: list[MethodResult], output: str | os.PathLike, title: str,
                      rows: Rows, latency: str, xlabel: str, table: str) -> Path:
    """As :func:`plot_bleu_al`, over the ``rows`` of each run (the segmented sweep's, the
    long-form stage's) with ``latency`` on the x axis; ``table`` names the file the rows come
    from, for the error when no run has any."""
    # fairseq's wav2vec2_classification sets the root logger to DEBUG at import time, which
    # would make matplotlib print its font search.
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=120)
    drawn = 0
    for method, points in _points_by_method(results, rows, latency).items():
        if not points:
            continue
        ks = sorted(points, key=lambda k: _mean([al for al, _ in points[k]]))
        als = [[al for al, _ in points[k]] for k in ks]
        bleus = [[bleu for _, bleu in points[k]] for k in ks]
        xs, ys = [_mean(v) for v in als], [_mean(v) for v in bleus]
        n_seeds = max(len(v) for v in bleus)
        ax.errorbar(xs, ys, xerr=[_sd(v) for v in als], yerr=[_sd(v) for v in bleus],
                    marker="o", capsize=3,
                    label=method if n_seeds == 1 else f"{method} ({n_seeds} seeds)")
        for x, y, k in zip(xs, ys, ks):
            ax.annotate(f"k={k:.0f}", (x, y), fontsize=7, textcoords="offset points",
                        xytext=(3, 3))
        drawn += 1
    if drawn == 0:
        raise ValueError(f"no simultaneous results to plot ({table} missing?)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("BLEU")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return save_png(fig, output)


Points = dict[float, list[tuple[float, float]]]  # k -> (latency, BLEU) of each seed's run


def _points_by_method(results: list[MethodResult], rows: Rows, latency: str
                      ) -> dict[str, Points]:
    """method -> k -> (latency, BLEU) of each seed's run, leaving out unscored rows."""
    points: dict[str, Points] = {}
    for result in results:
        by_k = points.setdefault(result.method, {})
        for row in rows(result):
            al, bleu = row.get(latency, math.nan), row.get("BLEU", math.nan)
            if not (math.isnan(al) or math.isnan(bleu)):
                by_k.setdefault(row.get("k", math.nan), []).append((al, bleu))
    return points


def _mean(values: list[float]) -> float:
    return statistics.fmean(values)


def _sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def save_png(fig: Figure, output: str | os.PathLike) -> Path:
    """Lay ``fig`` out, write it to ``output`` atomically as PNG, and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    output = Path(output)
    with atomic_path(output) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return output
