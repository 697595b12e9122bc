"""``fit(..., devices=...)``: the JAX device mesh a data-parallel fit runs on."""

from __future__ import annotations

from typing import Any

import numpy as np

from bnn_ppl.errors import ParameterError

__all__ = ["resolve_mesh"]


def resolve_mesh(devices: Any, *, engine: str, members: int, batch_rows: int) -> Any:
    """A ``jax.sharding.Mesh`` for ``devices`` (an int or a Mesh), or None for one device.

    Each step's batch of ``batch_rows`` rows is split over the mesh's first axis (data
    parallel: parameters replicated, gradients summed by XLA), so it must divide evenly.

    Raises
    ------
    ParameterError
        For more devices than JAX sees (on CPU, ``XLA_FLAGS=--xla_force_host_platform_device_count=N``
        set before JAX is imported makes N host devices), a non-JAX engine, ensembles, or a
        batch that does not split evenly.
    """
    if devices is None or (isinstance(devices, (int, np.integer)) and not isinstance(devices, bool) and devices == 1):
        return None
    if engine != "jax":
        raise ParameterError(f"devices={devices!r} splits the batch over a JAX device mesh: use engine='jax' (or 'auto'). "
                             f"Got engine={engine!r}.")
    import jax

    if isinstance(devices, jax.sharding.Mesh):
        mesh = devices
    elif isinstance(devices, (int, np.integer)) and not isinstance(devices, bool) and devices > 1:
        available = jax.devices()
        if devices > len(available):
            raise ParameterError(
                f"devices={devices} but JAX sees {len(available)} device(s) ({available[0].platform}). On a CPU, set "
                f"XLA_FLAGS=--xla_force_host_platform_device_count={devices} before importing jax (host devices share "
                "the cores); on several hosts, see jax.distributed.initialize."
            )
        mesh = jax.sharding.Mesh(np.array(available[:devices]), ("data",))
    else:
        raise ParameterError(f"The 'devices' parameter of fit must be a positive integer or a jax.sharding.Mesh. "
                             f"Got {devices!r} instead.")
    n = int(mesh.shape[mesh.axis_names[0]])  # the rows split over the mesh's first axis (its data axis)
    if members > 1:
        raise ParameterError(f"devices={n} with ensemble={members}: run the ensemble on one device, or its members "
                             "as separate fits on the mesh.")
    if batch_rows % n:
        raise ParameterError(f"The batch of {batch_rows} rows does not split evenly over {n} devices; use a batch_size "
                             f"(or a number of training rows) that is a multiple of {n}.")
    return mesh
