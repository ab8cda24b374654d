"""`import fairseq_mgcm` lets fairseq checkpoints load safely on torch >= 2.6.

torch's default `weights_only=True` must still refuse a checkpoint that pickles code.
"""
import argparse
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import fairseq_mgcm

fairseq_mgcm.register()  # the allowlist and fairseq's patched loader


def _fairseq_like_state() -> dict:
    """What fairseq 0.12 puts in a checkpoint besides tensors."""
    cfg = OmegaConf.create({"task": {"_name": "speech_to_text_multitask", "data": "/d"},
                            "optimization": {"lr": [0.002], "update_freq": [1]}})
    return {
        "args": argparse.Namespace(arch="waitk_s2t_transformer_tiny", lr=[0.002]),
        "cfg": cfg,
        "model": {"w": torch.ones(2, 2)},
        "optimizer_history": [{"criterion_name": "StCtcAsrCriterion", "optimizer_name": "Adam",
                               "lr_scheduler_state": {"best": np.float64(3.5)},
                               "num_updates": 2}],
        "extra_state": {"best": np.float64(3.5), "val_loss": np.float32(1.25),
                        "array": np.arange(3), "train_iterator": {"epoch": np.int64(2)}},
    }


def test_fairseq_checkpoint_types_load_with_default_torch_load(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save(_fairseq_like_state(), path)
    state = torch.load(path, map_location="cpu")  # default: weights_only=True
    assert state["args"].arch == "waitk_s2t_transformer_tiny"
    assert state["cfg"].task._name == "speech_to_text_multitask"
    assert state["extra_state"]["best"] == 3.5
    assert state["extra_state"]["array"].tolist() == [0, 1, 2]


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > exploit_ran",))


def test_checkpoint_with_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "payload": _Exploit()}, path)
    with pytest.raises(Exception, match="Weights only load failed|Unsupported global"):
        torch.load(path, map_location="cpu")
    assert not (tmp_path / "exploit_ran").exists()


def test_fairseq_loader_without_the_plugin_fails_and_with_it_loads(tmp_path):
    """The trap is real: fairseq's own loader needs the allowlist."""
    path = tmp_path / "checkpoint.pt"
    state = _fairseq_like_state()
    state["args"] = None  # a Namespace here makes fairseq rebuild cfg from a full arch
    torch.save(state, path)
    load = ("from fairseq import checkpoint_utils;"
            f"s = checkpoint_utils.load_checkpoint_to_cpu({str(path)!r});"
            "print(s['cfg']['task']['_name'])")
    plain = subprocess.run([sys.executable, "-c", load], check=False, capture_output=True, text=True)
    assert plain.returncode != 0 and "weights_only" in plain.stderr
    # fairseq loads the plugin after itself (--user-dir), which registers it; a program
    # importing the plugin first registers it explicitly (tests/test_imports.py: both ways).
    plugged = subprocess.run([sys.executable, "-c", "import fairseq, fairseq_mgcm;" + load],
                             check=False, capture_output=True, text=True)
    assert plugged.returncode == 0, plugged.stderr[-2000:]
    assert plugged.stdout.strip().endswith("speech_to_text_multitask")


# ------------------------------------------------------------------ unreadable checkpoints


def _bad_checkpoints(tmp_path) -> dict:
    """A truncated, an empty, a random-bytes and a non-fairseq torch file."""
    good = tmp_path / "good.pt"
    torch.save(_fairseq_like_state(), good)
    data = good.read_bytes()
    files = {
        "truncated": data[: len(data) // 2],
        "empty": b"",
        "random": np.random.default_rng(0).bytes(4096),
    }
    paths = {}
    for name, content in files.items():
        paths[name] = tmp_path / f"{name}.pt"
        paths[name].write_bytes(content)
    paths["not_fairseq"] = tmp_path / "not_fairseq.pt"
    torch.save({"a": 1}, paths["not_fairseq"])
    return paths


EXPECTED = {
    "truncated": "not a PyTorch checkpoint",
    "empty": "empty file",
    "random": "not a PyTorch checkpoint",
    "not_fairseq": "not a fairseq checkpoint?",
}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_fairseq_loader_names_the_file_of_a_bad_checkpoint(tmp_path, kind):
    """fairseq-generate / --restore-file go through load_checkpoint_to_cpu, wrapped by the
    plugin: one line naming the file, no torch advice to turn safe loading off."""
    from fairseq import checkpoint_utils

    from fairseq_mgcm.checkpoints.errors import CheckpointError

    path = _bad_checkpoints(tmp_path)[kind]
    with pytest.raises(CheckpointError) as caught:
        checkpoint_utils.load_checkpoint_to_cpu(str(path))
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and EXPECTED[kind] in message
    assert "\n" not in message and "weights_only" not in message
    assert caught.value.__suppress_context__  # the raw torch error is not printed


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_agent_names_the_file_of_a_bad_checkpoint(tmp_path, kind):
    from fairseq_mgcm.agents.checkpoint import load_model
    from fairseq_mgcm.checkpoints.errors import CheckpointError

    path = _bad_checkpoints(tmp_path)[kind]
    with pytest.raises(CheckpointError, match=EXPECTED[kind].replace("?", r"\?")) as caught:
        load_model(path, data_dir=tmp_path)
    assert str(path) in str(caught.value) and "weights_only" not in str(caught.value)


def test_a_fairseq_checkpoint_still_loads_through_the_wrapper(tmp_path):
    from fairseq import checkpoint_utils

    path = tmp_path / "checkpoint.pt"
    state = _fairseq_like_state()
    state["args"] = None
    torch.save(state, path)
    assert checkpoint_utils.load_checkpoint_to_cpu(str(path))["cfg"].task.data == "/d"


def test_code_carrying_checkpoint_is_refused_by_name_through_fairseq(tmp_path):
    from fairseq import checkpoint_utils

    from fairseq_mgcm.checkpoints.errors import CheckpointError

    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "payload": _Exploit()}, path)
    with pytest.raises(CheckpointError, match=r"refused.*GLOBAL \S*system"):
        checkpoint_utils.load_checkpoint_to_cpu(str(path))
    assert not (tmp_path / "exploit_ran").exists()
