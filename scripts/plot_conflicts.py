#!/usr/bin/env python
"""Draw a heat map of the gradient-conflict rate per module over training.

Input: the JSON-lines file written by ``--conflict-telemetry-jsonl`` (one object per backward
call: ``{"step", "method", "records": [{"module", "kind", "pair", "cos", "conflict"}, ...]}``).
Output: a PNG with one panel per task pair (e.g. ``ctc``, ``asr``: the primary against that
auxiliary). Rows are modules, ordered by kind and then as the model lists them; columns are
equal-width bins of update steps; the colour is the share of backward calls in the bin in which
the module's two gradients conflicted (negative inner product).

usage: python scripts/plot_conflicts.py CONFLICTS.jsonl OUT.png [--bins 50] [--pair ctc]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fairseq_mgcm.atomic_files import atomic_path

KIND_ORDER = ("subsampler", "embedding", "attention", "ffn", "layernorm", "head", "layer",
              "model", "other")


def read_records(path: Path) -> list[tuple[int, str, str, str, bool]]:
    """``(step, pair, kind, module, conflict)`` for every record; bad lines name file:line."""
    rows = []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                step = int(entry["step"]) if entry.get("step") is not None else number - 1
                for r in entry["records"]:
                    rows.append((step, r["pair"], r["kind"], r["module"], bool(r["conflict"])))
            except (ValueError, KeyError, TypeError) as error:
                message = f"{path}:{number}: not a conflict telemetry line ({error})"
                raise ValueError(message) from None
    if not rows:
        raise ValueError(f"{path}: no conflict records (was the method 'none'?)")
    return rows


def conflict_grid(rows, pair: str, bins: int) -> tuple[list[str], list[float], list[list[float]]]:
    """Module names, bin edges (steps) and the conflict rate [module][bin] (NaN: no data)."""
    rows = [r for r in rows if r[1] == pair]
    first = min(r[0] for r in rows)
    last = max(r[0] for r in rows)
    bins = max(1, min(bins, last - first + 1))
    width = (last - first + 1) / bins
    order: dict[str, tuple[int, int]] = {}
    for _, _, kind, module, _ in rows:
        rank = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
        order.setdefault(module, (rank, len(order)))
    modules = sorted(order, key=order.__getitem__)
    index = {m: i for i, m in enumerate(modules)}
    hits = [[0] * bins for _ in modules]
    counts = [[0] * bins for _ in modules]
    for step, _, _, module, conflict in rows:
        column = min(int((step - first) / width), bins - 1)
        counts[index[module]][column] += 1
        hits[index[module]][column] += conflict
    grid = [[h / c if c else float("nan") for h, c in zip(hr, cr)] for hr, cr in zip(hits, counts)]
    edges = [first + i * width for i in range(bins + 1)]
    return modules, edges, grid


def plot_conflicts(path: Path, output: Path, bins: int = 50,
                   pairs: list[str] | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = read_records(path)
    pairs = pairs or sorted({r[1] for r in rows})
    missing = [p for p in pairs if not any(r[1] == p for r in rows)]
    if missing:
        raise ValueError(f"{path}: no records for pair(s) {missing}")
    grids = [conflict_grid(rows, pair, bins) for pair in pairs]
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
    fig.tight_layout()
    with atomic_path(output) as tmp:
        fig.savefig(tmp, format=output.suffix.lstrip(".") or "png")
    plt.close(fig)
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("jsonl", type=Path, help="telemetry written by --conflict-telemetry-jsonl")
    parser.add_argument("png", type=Path, help="the heat map to write")
    parser.add_argument("--bins", type=int, default=50, help="step bins (columns), default 50")
    parser.add_argument("--pair", action="append", help="task pair to draw (repeatable); "
                        "default: every pair in the file")
    args = parser.parse_args(argv)
    try:
        plot_conflicts(args.jsonl, args.png, args.bins, args.pair)
    except (OSError, ValueError) as error:
        print(f"plot_conflicts: {error}", file=sys.stderr)
        return 1
    print(args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
