"""Model weights as the flat list of float arrays that travels between server and clients.

Only floating-point state (parameters and BatchNorm statistics) is exchanged: integer buffers such as
``num_batches_tracked`` are counters, not knowledge, and would break averaging and SecAgg+ quantization.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from medopt.federate.errors import FederateError

NDArrays = list[np.ndarray]


def shared_keys(model: nn.Module) -> list[str]:
    """State-dict keys of the floating-point entries exchanged in federation, in state-dict order."""
    return [k for k, v in model.state_dict().items() if torch.is_floating_point(v)]


def get_weights(model: nn.Module) -> NDArrays:
    """The shared state of ``model`` as float32 numpy arrays (copies, on CPU)."""
    state = model.state_dict()
    return [state[k].detach().cpu().float().numpy().copy() for k in shared_keys(model)]


def set_weights(model: nn.Module, arrays: Sequence[np.ndarray]) -> None:
    """Load arrays made by :func:`get_weights` into ``model``.

    Raises:
        FederateError: the count or a shape does not match the model (names the first offending key).
    """
    keys = shared_keys(model)
    if len(arrays) != len(keys):
        raise FederateError(f"got {len(arrays)} weight arrays but the model shares {len(keys)} tensors")
    state = model.state_dict()
    for key, arr in zip(keys, arrays):
        if tuple(arr.shape) != tuple(state[key].shape):
            raise FederateError(f"weight '{key}' has shape {tuple(arr.shape)}, the model expects "
                                f"{tuple(state[key].shape)}")
        state[key].copy_(torch.as_tensor(np.asarray(arr), dtype=state[key].dtype))


def nonnegative_mask(model: nn.Module) -> list[bool]:
    """Which shared arrays are variances (BatchNorm ``running_var``): noise or a server step must not make them < 0."""
    return [k.endswith("running_var") for k in shared_keys(model)]


def weight_shapes(model: nn.Module) -> list[tuple[int, ...]]:
    """Shapes of the shared arrays: everything a client may send the server must have one of these."""
    state = model.state_dict()
    return [tuple(state[k].shape) for k in shared_keys(model)]


def nbytes(arrays: Sequence[np.ndarray]) -> int:
    """Raw size of an array list in bytes."""
    return int(sum(np.asarray(a).nbytes for a in arrays))
