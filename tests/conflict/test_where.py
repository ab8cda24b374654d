"""``_projection.where``: the coefficients' choice inside the backward hooks, on the gradients'
device and dtype, with no host-to-device copy (issue 22: CUDA readiness)."""
from __future__ import annotations

import pytest
import torch

from fairseq_mgcm.conflict._projection import where

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no GPU"))]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
def test_floats_and_tensors_choose_per_element_in_the_tensors_dtype(device, dtype):
    condition = torch.tensor([True, False, True], device=device)
    dot = torch.tensor([-2.0, 3.0, -1.0], device=device, dtype=dtype)
    out = where(condition, dot, 0.0)
    assert out.dtype == dtype and out.device.type == device
    assert out.tolist() == [-2.0, 0.0, -1.0]
    both = where(condition, 0.0, 1.0)  # discard's coefficient: two floats
    assert both.dtype == torch.get_default_dtype() and both.tolist() == [0.0, 1.0, 0.0]


def test_a_plain_bool_chooses_the_float_itself():
    assert where(True, 2.5, 1.0) == 2.5 and where(False, 2.5, 1.0) == 1.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_no_host_sync_on_cuda():
    condition = torch.tensor(True, device="cuda")
    dot = torch.tensor(-1.0, device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        where(condition, -dot / where(condition, dot, 1.0), 0.0)
    finally:
        torch.cuda.set_sync_debug_mode("default")
