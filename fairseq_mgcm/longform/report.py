"""The long-form part of the recipe's report (stage 7): a table beside the segmented one, and
the BLEU-StreamLAAL plot.

Each long-form row (``longform/results.tsv``) is shown with the segmented sweep's row of the
same run, k and segment size, so that the cost of streaming whole talks reads off one line:
the BLEU kept (long-form BLEU as a share of segmented BLEU) and StreamLAAL beside AL.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

from fairseq_mgcm.recipe.plot import plot_bleu_latency
from fairseq_mgcm.recipe.results import MethodResult

__all__ = ["longform_markdown", "plot_bleu_stream_laal"]

HEADER = ("| run | k | BLEU | segmented BLEU | kept | chrF | StreamLAAL (ms) | "
          "StreamLAAL_CA (ms) | segmented AL (ms) | talks | words (hyp / ref) |")


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.{digits}f}"


def _segmented(result: MethodResult, row: dict[str, float]) -> dict[str, float]:
    """The segmented sweep's row of the same k and segment size ({} when there is none)."""
    for simul in result.simul:
        if simul.get("k") == row.get("k") and simul.get("segment_size") == row.get(
                "segment_size"):
            return simul
    return {}


def _label(result: MethodResult) -> str:
    return result.method if result.seed is None else f"{result.method} seed {result.seed}"


def longform_markdown(results: list[MethodResult]) -> str:
    """The long-form table, one line per run and k ("" when no run has long-form results)."""
    lines = []
    for result in results:
        for row in result.longform:
            segmented = _segmented(result, row)
            bleu, seg_bleu = row.get("BLEU", math.nan), segmented.get("BLEU", math.nan)
            kept = f"{100 * bleu / seg_bleu:.0f}%" if seg_bleu > 0 else "-"
            k = row.get("k", math.nan)
            lines.append(
                f"| {_label(result)} | {'inf' if math.isinf(k) else _fmt(k, 0)} | {_fmt(bleu)} "
                f"| {_fmt(seg_bleu)} | {kept} "
                f"| {_fmt(row.get('chrF'))} | {_fmt(row.get('StreamLAAL'), 0)} "
                f"| {_fmt(row.get('StreamLAAL_CA'), 0)} | {_fmt(segmented.get('AL'), 0)} "
                f"| {_fmt(row.get('n_talks'), 0)} | {_fmt(row.get('hyp_words'), 0)} / "
                f"{_fmt(row.get('ref_words'), 0)} |")
    if not lines:
        return ""
    return "\n".join([HEADER, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
                      *lines]) + "\n"


def plot_bleu_stream_laal(results: list[MethodResult], output: str | os.PathLike,
                          title: str = "Whole talks: BLEU vs. StreamLAAL") -> Path:
    """BLEU after re-segmentation against StreamLAAL, one curve per method (seed spread as
    error bars), as the segmented BLEU-AL plot; ValueError when no run has long-form rows."""
    return plot_bleu_latency(results, output, title, lambda result: result.longform,
                             "StreamLAAL", "StreamLAAL (ms)", "longform/results.tsv")
