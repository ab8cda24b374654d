"""Compare methods over seeds: means and spreads, cost ratios, and paired significance.

Given every run of the recipe (:func:`fairseq_mgcm.recipe.results.collect`), this groups the runs
by method and, for offline decoding and each point of each simultaneous policy (``wait-k k=5``,
``alignatt f=4``, ``edatt alpha=0.4``, ``local agreement n=2``), reports BLEU (mean and sample
standard deviation over seeds), chrF (sacrebleu, from the hypotheses), the latency means, and
sacrebleu's paired approximate randomization test of each method against ``none`` and of MGCM
against PCGrad (:mod:`fairseq_mgcm.recipe.significance`): methods are compared under each
policy, point by point, never one policy against another. A run whose hypotheses are
missing is named in the report and left out; every row says how many seeds it rests on.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from sacrebleu.metrics.chrf import CHRF

from fairseq_mgcm.recipe.hypotheses import Translations, read_generate, read_instances
from fairseq_mgcm.recipe.policy_labels import decoding_name, policy_rank
from fairseq_mgcm.recipe.results import MethodResult
from fairseq_mgcm.recipe.significance import N_TRIALS, PairedResult, paired_test

__all__ = ["Decoding", "MethodSummary", "Comparison", "compare", "comparison_markdown",
           "LATENCY_COLUMNS"]

OFFLINE = "offline"
LATENCY_COLUMNS = ("AL", "LAAL", "AL_CA", "DAL")
# (system, baseline) pairs tested when both methods ran.
PAIRS = (("mgcm", "none"), ("pcgrad", "none"), ("discard", "none"), ("mgcm", "pcgrad"))


@dataclass
class Decoding:
    """One decoding (offline, or one policy at one value) of one method, over its seeds."""

    bleu: dict[int, float] = field(default_factory=dict)  # by seed
    chrf: dict[int, float] = field(default_factory=dict)
    latency: dict[str, dict[int, float]] = field(default_factory=dict)  # metric -> seed -> ms
    translations: dict[int, Translations] = field(default_factory=dict)
    # where the decoding goes in a table: offline first, then by policy, value, segment size
    order: tuple[int, int, float, float] = (0, 0, 0.0, 0.0)


@dataclass
class MethodSummary:
    method: str
    seeds: list[int]  # the runs found for this method
    decodings: dict[str, Decoding]  # "offline", "wait-k k=1", "alignatt f=4", ...
    peak_rss_mb: list[float]
    train_wall_s: list[float]
    train_cpu_s: list[float]
    dev_curve: dict[int, list[float]] = field(default_factory=dict)  # epoch -> ST NLL by seed


@dataclass
class Comparison:
    methods: list[MethodSummary]
    tests: dict[tuple[str, str, str], PairedResult]  # (decoding, system, baseline) -> result
    missing: list[str]  # files a run lacks, by name
    n_trials: int = N_TRIALS  # approximate randomization trials per paired test


def compare(runs: list[MethodResult], test_set: str, n_trials: int = N_TRIALS) -> Comparison:
    """Summarise ``runs`` by method and test the pairs in :data:`PAIRS` on every decoding
    (``n_trials`` approximate randomization trials each: sacrebleu's default 10,000)."""
    by_method: dict[str, list[MethodResult]] = {}
    for run in runs:
        by_method.setdefault(run.method, []).append(run)
    missing: list[str] = []
    summaries = [_summarise(method, method_runs, test_set, missing)
                 for method, method_runs in by_method.items()]
    named = {s.method: s for s in summaries}
    tests: dict[tuple[str, str, str], PairedResult] = {}
    for system, baseline in PAIRS:
        if system not in named or baseline not in named:
            continue
        for decoding, sys_decoding in named[system].decodings.items():
            base_decoding = named[baseline].decodings.get(decoding)
            if base_decoding is None:
                continue
            result = paired_test(base_decoding.translations, sys_decoding.translations,
                                 n_trials)
            if result is not None:
                tests[(decoding, system, baseline)] = result
    return Comparison(summaries, tests, missing, n_trials)


def _seed_of(run: MethodResult) -> int:
    """The run's seed; 0 stands for the one run of a recipe without --seeds."""
    return run.seed if run.seed is not None else 0


def _seed_list(seeds: list[int]) -> str:
    return f"{len(seeds)} ({' '.join(map(str, seeds))})" if any(seeds) else str(len(seeds))


def _summarise(method: str, runs: list[MethodResult], test_set: str,
               missing: list[str]) -> MethodSummary:
    decodings: dict[str, Decoding] = {}
    seeds: list[int] = []
    for run in runs:
        assert run.root is not None
        seed = _seed_of(run)
        outputs: list[tuple[str, Path, dict[str, float], tuple[int, int, float, float]]] = []
        generate = run.root / f"generate-{test_set}.txt"
        if run.offline_bleu is not None or generate.exists():
            outputs.append((OFFLINE, generate, {}, (0, 0, 0.0, 0.0)))
        segments = {r.get("segment_size") for r in run.simul}
        for row, log, policy in zip(run.simul, run.simul_logs, run.simul_policies):
            segment = row.get("segment_size", math.nan)
            name = decoding_name(policy, row["value"]) + (
                "" if len(segments) <= 1 else f" seg {segment:.0f}")
            outputs.append((name, log, row, (1, policy_rank(policy), row["value"], segment)))
        if not outputs and run.peak_rss_mb is None:
            missing.append(f"{run.root}: no results (not run yet?)")
            continue
        seeds.append(seed)
        for name, path, row, order in outputs:
            if not path.is_file():
                missing.append(str(path))
                continue
            translations = (read_generate if name == OFFLINE else read_instances)(path)
            decoding = decodings.setdefault(name, Decoding(order=order))
            decoding.translations[seed] = translations
            decoding.bleu[seed] = (run.offline_bleu if name == OFFLINE and run.offline_bleu
                                   is not None else row.get("BLEU", math.nan))
            decoding.chrf[seed] = _chrf(translations)
            for metric in LATENCY_COLUMNS:
                if metric in row:
                    decoding.latency.setdefault(metric, {})[seed] = row[metric]
    dev_curve: dict[int, list[float]] = {}
    for run in runs:
        for epoch, nll in run.dev_curve.items():
            dev_curve.setdefault(epoch, []).append(nll)
    return MethodSummary(
        method, seeds, decodings, dev_curve=dict(sorted(dev_curve.items())),
        peak_rss_mb=[r.peak_rss_mb for r in runs if r.peak_rss_mb is not None],
        train_wall_s=[r.train_wall_s for r in runs if r.train_wall_s is not None],
        train_cpu_s=[r.train_cpu_s for r in runs if r.train_cpu_s is not None])


def _chrf(translations: Translations) -> float:
    order = sorted(translations.hypotheses)
    return CHRF().corpus_score([translations.hypotheses[i] for i in order],
                               [[translations.references[i] for i in order]]).score


# ---- markdown --------------------------------------------------------------------------------

def _mean(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return statistics.fmean(values) if values else math.nan


def _mean_sd(values: list[float], digits: int = 2) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.fmean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def _ratio(value: float, reference: float) -> str:
    if math.isnan(value) or math.isnan(reference) or reference == 0:
        return "-"
    return f"{value / reference:.2f}"


def _p(p: float) -> str:
    return f"{p:.3f}" + (" *" if p < 0.05 else "")


def _dev_curve_lines(methods: list[MethodSummary]) -> list[str]:
    """Dev loss after each epoch, mean over seeds: where training stood when it stopped (a
    curve still falling steeply says the budget, not the method, limits the scores)."""
    epochs = sorted({e for m in methods for e in m.dev_curve})
    if not epochs:
        return []
    lines = ["", "### Dev curve (ST NLL on dev, bits per token, after each epoch; mean over "
             "seeds, perplexity = 2^NLL in brackets)", "",
             "| epoch | " + " | ".join(m.method for m in methods) + " |",
             "|---:|" + "---:|" * len(methods)]
    for epoch in epochs:
        cells = []
        for m in methods:
            values = m.dev_curve.get(epoch, [])
            cells.append(f"{_mean(values):.3f} ({2 ** _mean(values):.1f}) n={len(values)}"
                         if values else "-")
        lines.append(f"| {epoch} | " + " | ".join(cells) + " |")
    return lines


def comparison_markdown(comparison: Comparison) -> str:
    """Tables: cost per method, dev curve, BLEU/chrF/latency per decoding, significance."""
    methods = comparison.methods
    none = next((m for m in methods if m.method == "none"), None)

    def cost(values: list[float], reference: list[float], digits: int = 0) -> str:
        """mean ± sd, and the ratio of the means to none's (runs of the same recipe)."""
        return f"{_mean_sd(values, digits)} | {_ratio(_mean(values), _mean(reference))}"

    lines = ["### Per method (mean ± sample standard deviation over seeds)", "",
             "| method | seeds | offline BLEU | offline chrF | peak RSS (MB) | x none | "
             "train CPU (s) | x none | train wall (s) | x none |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for m in methods:
        offline = m.decodings.get(OFFLINE, Decoding())
        ref = none or MethodSummary("none", [], {}, [], [], [])  # no none: no ratios
        lines.append(
            f"| {m.method} | {_seed_list(m.seeds)} | "
            f"{_mean_sd(list(offline.bleu.values()))} | {_mean_sd(list(offline.chrf.values()))} | "
            f"{cost(m.peak_rss_mb, ref.peak_rss_mb)} | {cost(m.train_cpu_s, ref.train_cpu_s)} | "
            f"{cost(m.train_wall_s, ref.train_wall_s)} |")
    lines += _dev_curve_lines(methods)
    lines += ["", "### Per decoding (BLEU and chrF: mean ± sd; latency: mean, ms)", "",
              "| decoding | method | seeds | BLEU | chrF | " + " | ".join(LATENCY_COLUMNS) + " |",
              "|---|---|---:|---:|---:|" + "---:|" * len(LATENCY_COLUMNS)]
    order = {name: d.order for m in methods for name, d in m.decodings.items()}
    names = sorted(order, key=order.__getitem__)  # offline, then policy by policy
    for name in names:
        for m in methods:
            if name not in m.decodings:
                continue
            d = m.decodings[name]
            latency = " | ".join(
                f"{_mean(list(d.latency[c].values())):.0f}" if c in d.latency else "-"
                for c in LATENCY_COLUMNS)
            lines.append(f"| {name} | {m.method} | {len(d.bleu)} | "
                         f"{_mean_sd(list(d.bleu.values()))} | "
                         f"{_mean_sd(list(d.chrf.values()))} | {latency} |")
    if comparison.tests:
        lines += ["", "### Paired significance (sacrebleu paired approximate randomization, "
                  f"{comparison.n_trials:,} trials, two-sided, hypotheses pooled over the seeds "
                  "both methods finished; 95% CIs: bootstrap, 1,000 resamples; * p < 0.05)", "",
                  "| decoding | system vs. baseline | seeds | sentences | ΔBLEU | p (BLEU) | "
                  "ΔchrF | p (chrF) | system BLEU (95% CI) | baseline BLEU (95% CI) |",
                  "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for (name, system, baseline), r in sorted(
                comparison.tests.items(), key=lambda item: order[item[0][0]]):
            lines.append(
                f"| {name} | {system} vs. {baseline} | "
                f"{' '.join(map(str, r.seeds)) if any(r.seeds) else 'one run'} | "
                f"{r.n_sentences} | {r.bleu_delta:+.2f} | {_p(r.bleu_p)} | "
                f"{r.chrf_delta:+.2f} | {_p(r.chrf_p)} | "
                f"{r.system_bleu[0]:.2f} ± {r.system_bleu[1]:.2f} | "
                f"{r.baseline_bleu[0]:.2f} ± {r.baseline_bleu[1]:.2f} |")
    signatures = [r.signatures for r in comparison.tests.values()]
    tested = [s for s in signatures if "not tested" not in s] or signatures
    if tested:
        lines += ["", f"sacrebleu: {tested[0]}"]
    if comparison.missing:
        lines += ["", "Missing (left out of the statistics above):", ""]
        lines += [f"- `{path}`" for path in comparison.missing]
    return "\n".join(lines) + "\n"
