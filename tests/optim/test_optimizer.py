"""The registered ``conflict_aware`` optimizer: options through fairseq's parser and config
conversion, its base optimizer, fairseq's fp16/AMP wrappers around it, resume, and the
``multitask_backward`` API a task's train_step uses."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from fairseq import optim
from fairseq.optim.adam import FairseqAdam
from fairseq.optim.amp_optimizer import AMPOptimizer
from fairseq.optim.fp16_optimizer import FP16Optimizer, MemoryEfficientFP16Optimizer
from fairseq.optim.nag import FairseqNAG
from optim_testing import ThreeTaskModel, adam, batch, grads, parsed_cfg

from fairseq_mgcm.conflict import ConflictEngine
from fairseq_mgcm.optim import ConflictAwareOptimizer, find_conflict_aware, multitask_backward

ROOT = Path(__file__).resolve().parents[2]

WRAPPER = ["--optimizer", "conflict_aware", "--base-optimizer", "adam"]


@pytest.fixture(scope="module")
def mgcm_cfg(tmp_path_factory):
    """One parsed config (parsing costs ~1 s): MGCM with non-default Adam options."""
    telemetry = tmp_path_factory.mktemp("telemetry") / "t.jsonl"
    return parsed_cfg(*WRAPPER, "--adam-betas", "(0.8,0.95)", "--adam-eps", "1e-6",
                      "--weight-decay", "0.01", "--lr", "3e-3", "--conflict-method", "mgcm",
                      "--conflict-granularity", "layer", "--conflict-aux-mode", "combined",
                      "--conflict-telemetry-jsonl", str(telemetry),
                      "--conflict-telemetry-interval", "7", "--seed", "5",
                      "--conflict-memory", "recompute", "--fp16-no-flatten-grads")


def test_options_survive_fairseqs_config_conversion(mgcm_cfg) -> None:
    optimizer = optim.build_optimizer(mgcm_cfg.optimizer, list(ThreeTaskModel().parameters()))
    assert isinstance(optimizer, ConflictAwareOptimizer)
    assert isinstance(optimizer.base, FairseqAdam)
    assert optimizer.optimizer_config == {"lr": 3e-3, "betas": (0.8, 0.95), "eps": 1e-6,
                                          "weight_decay": 0.01}
    backward = optimizer.conflict_backward
    assert (backward.method, backward.granularity, backward.aux_mode, backward.memory) == (
        "mgcm", "layer", "combined", "recompute")
    assert all(type(v) is str for v in (backward.method, backward.granularity,
                                        backward.aux_mode, backward.memory))
    assert backward._writer.path.endswith("t.jsonl") and backward._writer.interval == 7
    assert optimizer.optimizer is optimizer.base.optimizer
    assert optimizer.get_lr() == 3e-3


def test_defaults_and_another_base() -> None:
    cfg = parsed_cfg(*WRAPPER[:2], "--base-optimizer", "nag", "--momentum", "0.5")
    optimizer = optim.build_optimizer(cfg.optimizer, list(ThreeTaskModel().parameters()))
    assert isinstance(optimizer.base, FairseqNAG)
    assert optimizer.optimizer_config["momentum"] == 0.5
    backward = optimizer.conflict_backward
    assert (backward.method, backward.granularity, backward.aux_mode, backward.memory) == (
        "none", "module", "separate", "retain")
    assert backward._writer is None


def test_bad_choice_is_refused_by_the_parser() -> None:
    with pytest.raises(SystemExit):
        parsed_cfg(*WRAPPER, "--conflict-method", "bogus")
    with pytest.raises(SystemExit):
        parsed_cfg(*WRAPPER, "--conflict-memory", "offload")
    with pytest.raises(SystemExit):  # the conflict options left the task
        parsed_cfg("--optimizer", "adam", "--conflict-method", "mgcm")


@pytest.mark.parametrize("wrapper", [FP16Optimizer, MemoryEfficientFP16Optimizer, AMPOptimizer],
                         ids=lambda w: w.__name__)
def test_fairseq_wrappers_wrap_it(wrapper, mgcm_cfg) -> None:
    """fairseq builds its fp16/AMP wrapper around ours; multitask_backward finds ours inside
    and hands the forward to the engine, which scales each run's losses; the step goes to the
    base Adam."""
    torch.manual_seed(0)
    half = wrapper is not AMPOptimizer
    model = ThreeTaskModel().half() if half else ThreeTaskModel()
    twin = copy.deepcopy(model)
    optimizer = wrapper.build_optimizer(mgcm_cfg, list(model.parameters()))
    inner = find_conflict_aware(optimizer)
    assert isinstance(inner, ConflictAwareOptimizer)
    x, targets = batch(0, dtype=torch.half if half else torch.float32)
    with multitask_backward(optimizer, model) as backward:  # the config's recompute mode
        stats = backward(lambda: model(x, targets), primary="st", update_num=0)
    assert stats.method == "mgcm" and stats.records and stats.forwards == 2
    scale = optimizer.scaler.loss_scale if half else optimizer._grad_scaler.get_scale()
    ConflictEngine(twin, "mgcm", "layer", "combined").backward(
        {name: scale * loss for name, loss in twin(x, targets).items()}, "st")
    for (name, got), want in zip(grads(model).items(), grads(twin).values()):
        torch.testing.assert_close(got, want, msg=name)
    before = model.layer.fc1.weight.detach().clone()
    optimizer.clip_grad_norm(1.0)
    optimizer.step()
    assert not torch.equal(before, model.layer.fc1.weight)


def test_state_dict_round_trip_resumes_the_base(mgcm_cfg) -> None:
    torch.manual_seed(0)
    model = ThreeTaskModel()
    optimizer = optim.build_optimizer(mgcm_cfg.optimizer, list(model.parameters()))
    x, targets = batch(1)
    with multitask_backward(optimizer, model) as backward:
        backward(lambda: model(x, targets), primary="st")
    optimizer.step()
    state = copy.deepcopy(optimizer.state_dict())
    assert state["state"], "Adam's moments are in the state"
    resumed = optim.build_optimizer(mgcm_cfg.optimizer, list(model.parameters()))
    resumed.load_state_dict(state)
    torch.testing.assert_close(resumed.state_dict()["state"], state["state"])


def test_plain_optimizer_gets_the_plain_sum() -> None:
    """With ``--optimizer adam`` the task still trains: one backward of the summed losses."""
    torch.manual_seed(0)
    model = ThreeTaskModel()
    twin = copy.deepcopy(model)
    optimizer = adam(model.parameters())
    assert find_conflict_aware(optimizer) is None
    x, targets = batch(2)
    with multitask_backward(optimizer, model) as backward:
        stats = backward(model(x, targets), primary="st")
    assert stats.method == "none" and not stats.records
    sum(twin(x, targets).values()).backward()
    for got, want in zip(grads(model).values(), grads(twin).values()):
        torch.testing.assert_close(got, want)
    with pytest.raises(KeyError, match="primary"), multitask_backward(optimizer, model) as bw:
        bw(model(x, targets), primary="mt")


def test_telemetry_records_its_run_and_another_run_is_refused_at_build(tmp_path) -> None:
    """The optimizer is built when fairseq-train starts: a second training pointed at the
    first's telemetry fails there, with the one-line reason, instead of deleting it."""
    from fairseq_mgcm.conflict import ConflictStats, ModuleConflict
    from fairseq_mgcm.conflict.telemetry import TelemetryFileError

    telemetry = tmp_path / "conflict.jsonl"
    flags = [*WRAPPER, "--conflict-method", "mgcm", "--conflict-telemetry-jsonl", str(telemetry)]
    params = list(ThreeTaskModel().parameters())
    first = optim.build_optimizer(parsed_cfg(*flags, "--save-dir", str(tmp_path / "a")).optimizer,
                                  params)
    writer = first.conflict_backward._writer
    assert writer.run == "a"  # fairseq's --save-dir, relative to the telemetry's folder
    writer.add(ConflictStats("mgcm", "st", (
        ModuleConflict("enc.0.attn", "attention", ("st", "ctc"), -0.5, True),)), 0)
    writer.close()
    written = telemetry.read_bytes()
    other = parsed_cfg(*flags, "--save-dir", str(tmp_path / "b"))
    with pytest.raises(TelemetryFileError, match="holds the telemetry of another run"):
        optim.build_optimizer(other.optimizer, params)
    assert telemetry.read_bytes() == written


@pytest.mark.parametrize("backend, workers", [
    ("fully_sharded", 1), ("slowmo", 2), ("pytorch_ddp", 2), ("c10d", 8),
])
def test_backends_that_shard_average_or_reduce_mid_backward_are_refused(backend, workers) -> None:
    """With a conflict method: one line naming --ddp-backend and pointing to legacy_ddp."""
    from fairseq_mgcm.errors import UserError

    cfg = parsed_cfg(*WRAPPER, "--conflict-method", "mgcm", "--ddp-backend", backend,
                     "--distributed-world-size", str(workers))
    with pytest.raises(UserError, match=f"^--ddp-backend {backend} .*cannot be used with "
                                        "--conflict-method mgcm.*use --ddp-backend legacy_ddp"):
        optim.build_optimizer(cfg.optimizer, list(ThreeTaskModel().parameters()))


@pytest.mark.parametrize("flags", [
    ["--conflict-method", "none", "--ddp-backend", "pytorch_ddp"],  # plain training: DDP's own
    ["--conflict-method", "mgcm", "--ddp-backend", "legacy_ddp"],
    ["--conflict-method", "mgcm", "--distributed-world-size", "1"],  # fairseq's default backend
], ids=["none-pytorch_ddp", "mgcm-legacy_ddp", "mgcm-one-worker"])
def test_the_backends_a_method_can_use_are_not_refused(flags) -> None:
    cfg = parsed_cfg(*WRAPPER, "--distributed-world-size", "2", *flags)
    assert isinstance(optim.build_optimizer(cfg.optimizer, list(ThreeTaskModel().parameters())),
                      ConflictAwareOptimizer)


def test_shipped_flag_files_on_eight_workers_never_reach_a_refused_backend():
    """scripts/run.sh --ngpus 8 with any shipped hardware file and any method: the method
    file's --ddp-backend legacy_ddp comes last (run.sh joins model, hardware, method, later ones
    winning), and fairseq's parser and the optimizer accept the 8-GPU combination."""
    from fairseq_mgcm.recipe.train_flags import read_flags

    def tokens(*paths: Path) -> list[str]:
        return [flag.token for path in paths for flag in read_flags(path)]

    for hardware in sorted((ROOT / "configs" / "hardware").glob("*.args")):
        for method in ("none", "mgcm", "pcgrad", "discard"):
            joined = tokens(ROOT / "configs/model/s.args", hardware,
                            ROOT / f"configs/methods/{method}.args")
            backends = [joined[i + 1] for i, t in enumerate(joined) if t == "--ddp-backend"]
            assert backends and backends[-1] == "legacy_ddp", (hardware.name, method)
    cfg = parsed_cfg(*tokens(ROOT / "configs/model/tiny.args", ROOT / "configs/hardware/1gpu.args",
                             ROOT / "configs/methods/mgcm.args"), "--distributed-world-size", "8")
    assert cfg.distributed_training.ddp_backend == "legacy_ddp"
    optim.build_optimizer(cfg.optimizer, list(ThreeTaskModel().parameters()))
