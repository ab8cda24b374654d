"""Fixtures for the conflict-engine tests. ``MGCM_TEST_DEVICE=cuda`` runs them on a GPU."""
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
