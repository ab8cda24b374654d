"""Let fairseq checkpoints load under torch >= 2.6 without giving up safe loading.

torch 2.6 made ``torch.load(..., weights_only=True)`` the default. fairseq 0.12 calls
``torch.load(f, map_location=...)`` and its checkpoints pickle a few non-tensor types (the
argparse ``Namespace`` of old checkpoints, omegaconf containers, numpy scalars from the
metrics and the best-checkpoint score), so loading fails with an ``UnpicklingError``.

Turning ``weights_only`` off would make every checkpoint a code-execution vector. Instead we
allowlist exactly the types that fairseq checkpoints hold, with
``torch.serialization.add_safe_globals``. A checkpoint that pickles anything else (for
example a ``__reduce__`` that calls ``os.system``) is still refused by torch.
"""
from __future__ import annotations

import argparse
import collections
import typing

import numpy as np
import torch

__all__ = ["fairseq_safe_globals", "install_fairseq_safe_globals"]


def _omegaconf_types() -> list[object]:
    """omegaconf containers and value nodes, as found in ``state["cfg"]``."""
    from omegaconf import DictConfig, ListConfig, nodes
    from omegaconf.base import Container, ContainerMetadata, Metadata, Node
    from omegaconf.basecontainer import BaseContainer

    value_nodes = [
        getattr(nodes, name)
        for name in (
            "AnyNode", "ValueNode", "StringNode", "IntegerNode", "FloatNode",
            "BooleanNode", "EnumNode", "BytesNode", "PathNode", "InterpolationResultNode",
        )
        if hasattr(nodes, name)
    ]
    return [DictConfig, ListConfig, Container, ContainerMetadata, Metadata, Node,
            BaseContainer, *value_nodes]


def _numpy_types() -> list[object]:
    """The pieces numpy pickles scalars and small arrays with (numpy 1.x and 2.x paths)."""
    found: list[object] = [np.ndarray, np.dtype]
    for module_name in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            module = __import__(module_name, fromlist=["_reconstruct", "scalar"])
        except ImportError:
            continue
        found += [module._reconstruct, module.scalar]
        break
    # np.dtype(np.float64) pickles as numpy.dtypes.Float64DType on numpy >= 1.25.
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        found += [getattr(dtypes, name) for name in dir(dtypes) if name.endswith("DType")]
    return found


def fairseq_safe_globals() -> list[object]:
    """Every non-tensor global a fairseq 0.12 checkpoint may reference."""
    builtin = [
        argparse.Namespace,
        collections.OrderedDict,
        collections.defaultdict,
        typing.Any,  # omegaconf stores `ref_type=typing.Any` in node metadata
        # omegaconf metadata names types as globals (`key_type=str`, `object_type=dict`, ...),
        # which the weights-only unpickler refuses unless allowlisted.
        dict, list, tuple, set, int, float, bool, str, bytes, type(None),
    ]
    return [*builtin, *_omegaconf_types(), *_numpy_types()]


def install_fairseq_safe_globals() -> None:
    """Allowlist fairseq's checkpoint types for ``torch.load(weights_only=True)``.

    Idempotent; a no-op on torch versions without ``add_safe_globals``.
    """
    add_safe_globals = getattr(torch.serialization, "add_safe_globals", None)
    if add_safe_globals is not None:
        add_safe_globals(fairseq_safe_globals())
