"""Draw BLEU against AL, one mean curve per method and policy with its seed spread, as a PNG
(the recipe's final figure); the same against StreamLAAL for the long-form runs.

A method keeps its colour on every policy's curve and a policy keeps its line style and marker
for every method, so that both comparisons (methods under one policy, policies for one method)
read off the same figure."""
from __future__ import annotations

import logging
import math
import os
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from fairseq_mgcm.atomic_files import atomic_path
from fairseq_mgcm.recipe.policy_labels import point_label, policy_rank
from fairseq_mgcm.recipe.results import MethodResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_bleu_al", "plot_bleu_latency"]

Rows = Callable[[MethodResult], list[dict[str, float]]]  # a run's table rows (k, BLEU, ...)
Policies = Callable[[MethodResult], list[str]]  # each of those rows' policy
# policy -> (line style, marker)
STYLE = {"waitk": ("-", "o"), "alignatt": ("--", "s"), "edatt": (":", "^"),
         "local-agreement": ("-.", "D")}


def plot_bleu_al(results: list[MethodResult], output: str | os.PathLike,
                 title: str = "BLEU vs. average lagging") -> Path:
    """One curve per method and policy through its mean (AL, BLEU) at each of the policy's
    values (wait-k's k, ...), with error bars of one sample standard deviation over seeds in
    both directions (none with a single seed); written atomically."""
    return plot_bleu_latency(results, output, title, lambda result: result.simul, "AL",
                             "AL (ms)", "simul/results.tsv",
                             policies=lambda result: result.simul_policies)


def plot_bleu_latency(results: list[MethodResult], output: str | os.PathLike, title: str,
                      rows: Rows, latency: str, xlabel: str, table: str,
                      policies: Policies | None = None) -> Path:
    """As :func:`plot_bleu_al`, over the ``rows`` of each run (the segmented sweep's, the
    long-form stage's) with ``latency`` on the x axis; ``table`` names the file the rows come
    from, for the error when no run has any; ``policies`` gives each row's policy (wait-k
    throughout without it). The legend names the policy once a curve is not wait-k."""
    # fairseq's wav2vec2_classification sets the root logger to DEBUG at import time, which
    # would make matplotlib print its font search.
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=120)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    curves = _points_by_curve(results, rows, latency, policies)
    methods = list(dict.fromkeys(result.method for result in results))  # colour by method
    name_policy = any(policy != "waitk" for _, policy in curves)
    drawn = 0
    for (method, policy), points in sorted(
            curves.items(), key=lambda item: (methods.index(item[0][0]),
                                              policy_rank(item[0][1]))):
        if not points:
            continue
        values = sorted(points, key=lambda v: _mean([al for al, _ in points[v]]))
        als = [[al for al, _ in points[v]] for v in values]
        bleus = [[bleu for _, bleu in points[v]] for v in values]
        xs, ys = [_mean(v) for v in als], [_mean(v) for v in bleus]
        n_seeds = max(len(v) for v in bleus)
        label = f"{method}, {policy}" if name_policy else method
        line, marker = STYLE[policy]
        ax.errorbar(xs, ys, xerr=[_sd(v) for v in als], yerr=[_sd(v) for v in bleus],
                    color=colours[methods.index(method) % len(colours)], linestyle=line,
                    marker=marker, capsize=3,
                    label=label if n_seeds == 1 else f"{label} ({n_seeds} seeds)")
        for x, y, value in zip(xs, ys, values):
            ax.annotate(point_label(policy, value), (x, y), fontsize=7,
                        textcoords="offset points", xytext=(3, 3))
        drawn += 1
    if drawn == 0:
        raise ValueError(f"no simultaneous results to plot ({table} missing?)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("BLEU")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return save_png(fig, output)


Points = dict[float, list[tuple[float, float]]]  # value -> (latency, BLEU) of each seed's run


def _points_by_curve(results: list[MethodResult], rows: Rows, latency: str,
                     policies: Policies | None) -> dict[tuple[str, str], Points]:
    """(method, policy) -> value -> (latency, BLEU) of each seed's run, leaving out unscored
    rows."""
    points: dict[tuple[str, str], Points] = {}
    for result in results:
        table = rows(result)
        for policy, row in zip(policies(result) if policies else ["waitk"] * len(table), table):
            by_value = points.setdefault((result.method, policy), {})
            al, bleu = row.get(latency, math.nan), row.get("BLEU", math.nan)
            if not (math.isnan(al) or math.isnan(bleu)):
                by_value.setdefault(row.get("value", row.get("k", math.nan)), []).append(
                    (al, bleu))
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
