"""Draw BLEU against AL, one curve per method, as a PNG (the recipe's final figure)."""
from __future__ import annotations

import logging
import math
import os
from pathlib import Path

from fairseq_mgcm.atomic_files import atomic_path
from fairseq_mgcm.recipe.results import MethodResult

__all__ = ["plot_bleu_al"]


def plot_bleu_al(results: list[MethodResult], output: str | os.PathLike,
                 title: str = "BLEU vs. average lagging") -> Path:
    """Plot (AL, BLEU) per k for every method with simultaneous results; write atomically."""
    # fairseq's wav2vec2_classification sets the root logger to DEBUG at import time, which
    # would make matplotlib print its font search.
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=120)
    drawn = 0
    for result in results:
        points = sorted((row["AL"], row["BLEU"], row.get("k", math.nan))
                        for row in result.simul
                        if not math.isnan(row.get("AL", math.nan))
                        and not math.isnan(row.get("BLEU", math.nan)))
        if not points:
            continue
        xs, ys, ks = zip(*points)
        ax.plot(xs, ys, marker="o", label=result.method)
        for x, y, k in points:
            ax.annotate("inf" if math.isinf(k) else f"k={k:.0f}", (x, y), fontsize=7,
                        textcoords="offset points", xytext=(3, 3))
        drawn += 1
    if drawn == 0:
        raise ValueError("no simultaneous results to plot (simul/results.tsv missing?)")
    ax.set_xlabel("AL (ms)")
    ax.set_ylabel("BLEU")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return save_png(fig, output)


def save_png(fig, output: str | os.PathLike) -> Path:
    """Lay ``fig`` out, write it to ``output`` atomically as PNG, and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    output = Path(output)
    with atomic_path(output) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return output
