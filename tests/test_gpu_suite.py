"""benchmarks/gpu_suite.sh: its CPU mode as shipped (so the GPU suite cannot rot before a GPU
comes), its report and failure handling, and the CUDA-only parts where a GPU is present."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_suite  # noqa: E402
from bench_paper_config import parse_log  # noqa: E402

METHODS = ("none", "pcgrad", "mgcm")


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "PYTHON": sys.executable,
            "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The suite's CPU mode, run once as shipped: ``(OUT, suite.json)``."""
    out = tmp_path_factory.mktemp("suite") / "out"
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_suite.sh"), str(out),
                           "--device", "cpu", "--tiny"], env=_env(), capture_output=True,
                          text=True)
    log = (out / "suite.log").read_text() if (out / "suite.log").is_file() else ""
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{log[-4000:]}"
    return out, json.loads((out / "suite.json").read_text())


def test_every_stage_ran_and_out_is_two_flat_files(suite: tuple[Path, dict]) -> None:
    out, report = suite
    assert sorted(p.name for p in out.iterdir()) == ["suite.json", "suite.log"]
    assert report["mode"] == "tiny"
    assert report["environment"]["device"] == "cpu"
    assert report["environment"]["torch"] == torch.__version__
    assert {name: s["status"] for name, s in report["stages"].items()} == dict.fromkeys(
        gpu_suite.STAGES, "ok")


def gpu_suite_configs() -> list[tuple]:
    import bench_conflict

    return bench_conflict.configurations()


def test_engine_step_time_and_memory_for_every_method(suite: tuple[Path, dict]) -> None:
    engine = suite[1]["stages"]["engine"]
    rows = engine["figures"]
    configs = {(r["tasks"], r["method"], r["granularity"], r["aux_mode"], r["memory"])
               for r in rows}
    assert configs == set(gpu_suite_configs())
    for r in rows:
        assert r["step_s"] > 0 and r["peak_mib"] is not None and r["held_mib"] >= 0
    # The paper's figure: what the engine holds is exact bytes, so MGCM below PCGrad is robust
    # (tiny: 0.6-2 MiB against 11-17 MiB); the peak above none is RSS, so only present.
    shares = engine["mgcm_vs_pcgrad"]
    # module/parameter x separate (2 and 3 tasks) + combined (3 tasks), x retain/recompute
    assert len(shares) == 12
    assert {s["memory"] for s in shares} == {"retain", "recompute"}
    for share in shares:
        assert 0 < share["held_pct_of_pcgrad"] < 100
        assert share["extra_pct_of_pcgrad"] is not None and share["step_ratio_to_pcgrad"] > 0


def test_host_syncs_are_null_with_the_reason_on_cpu(suite: tuple[Path, dict]) -> None:
    syncs = suite[1]["stages"]["syncs"]["figures"]
    assert len(syncs["runs"]) == 10 and all(r["syncs"] is None for r in syncs["runs"])
    assert syncs["max_syncs_per_backward"] is None and syncs["at_most_one"] is None
    assert "CUDA" in syncs["reason"]


def test_each_method_trains_and_its_loss_falls(suite: tuple[Path, dict]) -> None:
    train = suite[1]["stages"]["train"]["figures"]
    assert train["model_args"] == "configs/model/tiny.args"
    by_method = {m["method"]: m for m in train["methods"]}
    assert set(by_method) == set(METHODS)
    for m in by_method.values():
        assert m["returncode"] == 0 and m["updates"] == train["max_update"] == 12
        assert m["loss_falls"] and m["last_loss"] < m["first_loss"]
        assert m["overflows"] == 0 and not m["overflow_loop"]
        assert m["updates_per_s"] > 0 and m["peak_mib"] > 0
        assert m["peak_kind"] == "cpu_peak_rss"


def test_throughput_against_fairseq_at_the_same_size(suite: tuple[Path, dict]) -> None:
    results = suite[1]["stages"]["throughput"]["figures"]["results"]
    assert set(results) == {"fairseq", "ours_st"}
    for r in results.values():
        assert r["utt_per_s"] > 0 and r["peak_mib"] is not None
    # the same widths: parameter counts within 20% of each other
    assert 0.8 < results["ours_st"]["params"] / results["fairseq"]["params"] < 1.2


def test_agent_latency_and_cost_per_chunk(suite: tuple[Path, dict]) -> None:
    agent = suite[1]["stages"]["agent"]["figures"]
    for name in ("chunk-causal", "bidirectional"):
        assert agent[name]["AL_CA"] >= agent[name]["AL"] > 0
        assert agent[name]["AL_CA_minus_AL"] >= 0
        costs = agent[name]["chunk_cost_ms"]  # (prefix s, encoder ms, agent ms) per span
        assert costs and all(len(c) == 3 and c[2] > 0 for c in costs)


def test_a_failed_stage_is_recorded_and_fails_the_suite(tmp_path: Path, capsys) -> None:
    report, figures = tmp_path / "suite.json", tmp_path / "engine.json"
    figures.write_text("[]")
    assert gpu_suite.add_stage(report, "engine", 0, 3.0, figures)["status"] == "ok"
    assert gpu_suite.finish(report) == 0
    entry = gpu_suite.add_stage(report, "train", 124, 240.0, tmp_path / "missing.json")
    assert entry == {"status": "timeout", "returncode": 124, "seconds": 240.0, "figures": None}
    assert gpu_suite.add_stage(report, "agent", 1, 1.0, tmp_path / "none.json")["status"] == (
        "failed")
    assert gpu_suite.finish(report) == 1
    assert "failed stages: train, agent" in capsys.readouterr().out
    assert set(json.loads(report.read_text())["stages"]) == {"engine", "train", "agent"}


def test_gpu_limits_fit_twelve_minutes_and_cpu_without_tiny_is_refused() -> None:
    assert sum(limit for limit, _ in gpu_suite.MATRIX["gpu"].values()) <= 12 * 60
    assert set(gpu_suite.MATRIX["gpu"]) == set(gpu_suite.MATRIX["tiny"]) == set(gpu_suite.STAGES)
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_suite.py"), "options",
                           "--device", "cpu"], capture_output=True, text=True)
    assert done.returncode == 2 and "--device cpu needs --tiny" in done.stderr
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_suite.sh")],
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.startswith("usage:")


def test_the_large_size_has_at_least_150m_parameters() -> None:
    import bench_conflict

    with torch.device("meta"):
        model = bench_conflict.build_model("l", bench_conflict._task())
    assert sum(p.numel() for p in model.parameters()) >= 150e6


FP16_LOG = """\
2026-01-01 | INFO | fairseq.trainer | NOTE: gradient overflow detected, ignoring gradient, \
setting loss scale to: 64.0
2026-01-01 | INFO | train_inner | epoch 001:     10 / 20 loss=14.2, nll_loss=9.1, ups=3.1, \
num_updates=10, lr=0.001, loss_scale=64, train_wall=3, gb_free=130.1, wall=4
2026-01-01 | INFO | train_inner | epoch 001:     20 / 20 loss=9.5, nll_loss=6.0, ups=3.3, \
num_updates=20, lr=0.002, loss_scale=128, train_wall=6, gb_free=130.1, wall=7
2026-01-01 | INFO | fairseq_cli.train | done training in 8.0 seconds
"""


def test_an_fp16_log_is_read_and_a_collapsing_scale_is_an_overflow_loop() -> None:
    healthy = parse_log(FP16_LOG)
    assert healthy == {"updates": 20, "train_seconds": 8.0, "updates_per_s": 2.5,
                       "first_loss": 14.2, "last_loss": 9.5, "loss_falls": True, "overflows": 1,
                       "loss_scale_first": 64.0, "loss_scale_last": 128.0,
                       "overflow_loop": False}
    collapsing = FP16_LOG.replace("loss_scale=128", "loss_scale=0.25")
    collapsing += "NOTE: gradient overflow detected, ignoring gradient\n" * 3
    looping = parse_log(collapsing)
    assert looping["overflow_loop"] and looping["overflows"] == 4


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")


@cuda
def test_at_most_one_host_sync_per_engine_backward_on_cuda() -> None:
    import bench_host_syncs

    result = bench_host_syncs.run(torch.device("cuda"), "tiny", backwards=2)
    assert result["reason"] is None and result["at_most_one"], result["runs"]


@cuda
def test_engine_memory_on_cuda_in_half_precision(tmp_path: Path) -> None:
    import bench_conflict

    out = tmp_path / "engine.json"
    bench_conflict.main(["--device", "cuda", "--sizes", "tiny", "--precisions", "amp,fp16",
                         "--steps", "1", "--one-process", "--json", str(out)])
    rows = json.loads(out.read_text())
    assert {r["precision"] for r in rows} == {"amp", "fp16"}
    for r in rows:
        if r["method"] == "mgcm":
            assert r["held_pct_of_pcgrad"] < 100 and r["extra_pct_of_pcgrad"] < 100
