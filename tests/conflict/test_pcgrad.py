"""PCGrad's Gram-matrix form against the projection written out on vectors."""
from __future__ import annotations

import pytest
import torch

from fairseq_mgcm.conflict._pcgrad import pcgrad_weights, task_orders


def _explicit(vectors: list[torch.Tensor], orders: list[list[int]]) -> torch.Tensor:
    total = torch.zeros_like(vectors[0])
    for i, g in enumerate(vectors):
        g = g.clone()
        for j in orders[i]:
            inner = g @ vectors[j]
            if inner < 0:
                g = g - inner / (vectors[j] @ vectors[j]) * vectors[j]
        total += g
    return total


@pytest.mark.parametrize("n_tasks", [2, 3, 4])
def test_weights_reproduce_sequential_projection(n_tasks: int) -> None:
    gen = torch.Generator().manual_seed(n_tasks)
    for trial in range(20):
        base = torch.randn(7, generator=gen, dtype=torch.float64)
        vectors = [torch.randn(7, generator=gen, dtype=torch.float64) - (trial % 3) * base
                   for _ in range(n_tasks)]
        stacked = torch.stack(vectors)
        gram = (stacked @ stacked.T).tolist()
        for orders in (task_orders(n_tasks, gen), task_orders(n_tasks, gen)):
            weights = torch.tensor(pcgrad_weights(gram, orders), dtype=torch.float64)
            torch.testing.assert_close(weights @ stacked, _explicit(vectors, orders))


def test_orders_are_permutations_of_the_other_tasks() -> None:
    orders = task_orders(4, torch.Generator().manual_seed(0))
    for i, order in enumerate(orders):
        assert sorted(order) == [j for j in range(4) if j != i]


def test_zero_gradient_task_is_harmless() -> None:
    vectors = [torch.tensor([1.0, 0.0]), torch.zeros(2), torch.tensor([-1.0, 1.0])]
    stacked = torch.stack(vectors).double()
    weights = pcgrad_weights((stacked @ stacked.T).tolist(), [[1, 2], [0, 2], [0, 1]])
    assert all(w == w for w in weights)  # no NaN from the zero vector
