"""Device mesh, logical-axis rules and the shardings of parameters, optimizer state and batches.

Sharding is declared, not coded: parameters carry logical axis names (``embed``, ``mlp``, ``heads``…) and a
rules table maps each name to mesh axes (``data``, ``fsdp``, ``model``). The same model then runs on one CPU,
8 faked CPU devices, a GPU box or a TPU pod by changing only the mesh sizes in the config block
``config.parallel`` (see :func:`default_config`).

A logical dimension falls back to replication (and is reported) when its size is not divisible by the mesh
axes it maps to — e.g. 6 heads on a 4-way ``model`` axis — and a mesh axis is never used twice in one spec.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

MESH_AXES: tuple[str, ...] = ("data", "fsdp", "model")

# Logical axis name -> mesh axis, tuple of mesh axes, or None (replicated).
Rules = Sequence[tuple[str, str | tuple[str, ...] | None]]

DEFAULT_RULES: tuple[tuple[str, str | tuple[str, ...] | None], ...] = (
    ("embed", "fsdp"),
    ("mlp", "model"),
    ("heads", "model"),
    ("joined_kv", "model"),
    ("vocab", "model"),
    ("kv", None),
    ("layers", None),
    ("relpos_buckets", None),
    ("positions", None),
)


def default_config() -> ml_collections.ConfigDict:
    """The ``config.parallel`` block: mesh sizes (-1 fills the remaining devices), rules, multi-host start."""
    return ml_collections.ConfigDict(
        {
            "data": -1,
            "fsdp": 1,
            "model": 1,
            # None means DEFAULT_RULES; otherwise a tuple of (logical name, mesh axes) pairs.
            "rules": ml_collections.config_dict.placeholder(tuple),
            # Multi-host start: "auto" initializes jax.distributed when a cluster is detected (or a coordinator
            # is given), "off" never does (single process).
            "distributed": "auto",
            "coordinator_address": ml_collections.config_dict.placeholder(str),
            "num_processes": ml_collections.config_dict.placeholder(int),
            "process_id": ml_collections.config_dict.placeholder(int),
        }
    )


def mesh_shape(sizes: Mapping[str, int], device_count: int) -> tuple[int, ...]:
    """Resolve ``{data, fsdp, model}`` sizes (at most one -1) into a shape whose product is ``device_count``."""
    shape = []
    for axis in MESH_AXES:
        size = sizes[axis]
        if not isinstance(size, (int, np.integer)) or (size < 1 and size != -1):
            raise ValueError(f"parallel.{axis}={size!r}: use a positive integer, or -1 to fill remaining devices")
        shape.append(int(size))
    if shape.count(-1) > 1:
        raise ValueError(f"parallel.{{data,fsdp,model}}={shape}: at most one axis may be -1")
    known = math.prod(s for s in shape if s != -1)
    if -1 in shape:
        if device_count % known:
            raise ValueError(
                f"parallel sizes {dict(zip(MESH_AXES, shape))}: the fixed axes multiply to {known}, which does not "
                f"divide the {device_count} devices; choose sizes whose product divides {device_count}"
            )
        shape[shape.index(-1)] = device_count // known
    if math.prod(shape) != device_count:
        raise ValueError(
            f"parallel sizes {dict(zip(MESH_AXES, shape))} multiply to {math.prod(shape)} but there are "
            f"{device_count} devices; make the product equal {device_count} or set one axis to -1"
        )
    return tuple(shape)


def make_mesh(config: ml_collections.ConfigDict, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A ``(data, fsdp, model)`` mesh with Auto axis types (so ``with_sharding_constraint`` works)."""
    devices = list(jax.devices() if devices is None else devices)
    shape = mesh_shape(config, len(devices))
    try:  # Topology-aware device order on accelerators; CPUs and odd shapes fall back to the plain order.
        from jax.experimental import mesh_utils

        grid = mesh_utils.create_device_mesh(shape, devices=devices)
    except (ValueError, NotImplementedError):
        grid = np.asarray(devices).reshape(shape)
    return Mesh(grid, MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES))


def rules_from_config(config: ml_collections.ConfigDict) -> tuple[tuple[str, Any], ...]:
    """The configured rules (``parallel.rules``) or :data:`DEFAULT_RULES`, validated."""
    rules = DEFAULT_RULES if config.get("rules") is None else tuple(tuple(r) for r in config.rules)
    validate_rules(rules)
    return rules


def validate_rules(rules: Rules) -> None:
    """Reject rules that name unknown mesh axes or map one logical name twice."""
    seen = set()
    for rule in rules:
        if len(rule) != 2:
            raise ValueError(f"parallel.rules entry {rule!r}: use a (logical_name, mesh_axes) pair")
        name, target = rule
        if name in seen:
            raise ValueError(f"parallel.rules maps logical axis {name!r} twice; keep one entry")
        seen.add(name)
        for axis in _as_tuple(target):
            if axis not in MESH_AXES:
                raise ValueError(f"parallel.rules[{name!r}] -> {axis!r}: mesh axes are {MESH_AXES}")


def _as_tuple(target: str | Sequence[str] | None) -> tuple[str, ...]:
    if target is None:
        return ()
    return (target,) if isinstance(target, str) else tuple(target)


def logical_to_mesh_spec(
    logical: PartitionSpec | Sequence[str | None],
    shape: Sequence[int],
    mesh: Mesh,
    rules: Rules = DEFAULT_RULES,
) -> tuple[PartitionSpec, list[str]]:
    """Map a spec of logical names to mesh axes for an array of ``shape``.

    Returns the mesh spec and a list of human-readable fallbacks: a dimension keeps the longest prefix of its
    mesh axes that divides its size and is not already used by an earlier dimension; the rest is replicated.
    """
    table = dict(rules)
    logical = tuple(logical)
    if len(logical) > len(shape):
        raise ValueError(f"logical spec {logical} has more names than the array has dimensions {tuple(shape)}")
    used: set[str] = set()
    out: list[str | tuple[str, ...] | None] = []
    notes: list[str] = []
    for dim, (name, size) in enumerate(zip(logical, shape)):
        if name is None:
            out.append(None)
            continue
        if name not in table:
            raise ValueError(
                f"no sharding rule for logical axis {name!r}; add ({name!r}, <mesh axes or None>) to parallel.rules"
            )
        wanted = _as_tuple(table[name])
        kept: list[str] = []
        for axis in wanted:
            if axis in used or size % (math.prod(mesh.shape[a] for a in kept) * mesh.shape[axis]):
                break
            kept.append(axis)
        if len(kept) < len(wanted):
            dropped = wanted[len(kept) :]
            reason = "already used in this spec" if dropped[0] in used else "does not divide the size"
            notes.append(
                f"dim {dim} ({name}={size}) not sharded over {dropped} "
                f"(mesh {dict((a, mesh.shape[a]) for a in dropped)}: {reason})"
            )
        used.update(kept)
        out.append(None if not kept else kept[0] if len(kept) == 1 else tuple(kept))
    return PartitionSpec(*out), notes


def param_shardings(abstract_state: Any, mesh: Mesh, rules: Rules = DEFAULT_RULES) -> tuple[Any, dict[str, list[str]]]:
    """NamedShardings for an ``nnx.State`` of parameters (abstract or concrete) from their logical names.

    Returns ``(shardings, fallbacks)``: ``shardings`` has the structure of ``abstract_state`` (use it for
    ``jax.device_put``, ``jax.jit(out_shardings=...)`` and checkpoint restore); ``fallbacks`` maps the path of
    each parameter that could not be sharded as its rules asked to the reasons (also logged).
    """
    from flax import nnx  # Local import: the mesh helpers above do not need flax.

    specs = nnx.get_partition_spec(abstract_state)
    fallbacks: dict[str, list[str]] = {}

    def one(path, leaf, spec):
        mesh_spec, notes = logical_to_mesh_spec(spec, leaf.shape, mesh, rules)
        if notes:
            if path and getattr(path[-1], "name", None) == "value":  # nnx.Variable's own child
                path = path[:-1]
            fallbacks[jax.tree_util.keystr(path, simple=True, separator="/")] = notes
        return NamedSharding(mesh, mesh_spec)

    shardings = jax.tree_util.tree_map_with_path(one, abstract_state, specs)
    for path, notes in fallbacks.items():
        logging.info("sharding fallback for %s: %s", path, "; ".join(notes))
    return shardings, fallbacks


def derived_shardings(abstract_tree: Any, abstract_params: Any, shardings: Any, mesh: Mesh) -> Any:
    """Shardings for a tree derived from the parameters, such as optimizer state.

    A leaf whose path ends with a parameter's path and has that parameter's shape (Adam moments, momentum)
    takes the parameter's sharding; everything else (step counters, Adafactor's factored statistics,
    hyperparameters) is replicated. ``jax.jit(tx.init)`` alone would put the state on device 0.
    """
    by_path = {}
    for (path, leaf), sharding in zip(
        jax.tree_util.tree_flatten_with_path(abstract_params)[0], jax.tree_util.tree_leaves(shardings)
    ):
        by_path[tuple(path)] = (tuple(leaf.shape), sharding)
    longest = max((len(p) for p in by_path), default=0)
    replicated = NamedSharding(mesh, PartitionSpec())

    def one(path, leaf):
        for n in range(min(longest, len(path)), 0, -1):
            match = by_path.get(tuple(path[-n:]))
            if match is not None:
                return match[1] if match[0] == tuple(leaf.shape) else replicated
        return replicated

    return jax.tree_util.tree_map_with_path(one, abstract_tree)


def _cluster_detected() -> str | None:
    """Name of a multi-process launcher found in the environment, if any."""
    env = os.environ
    if int(env.get("SLURM_NTASKS", "1")) > 1 and "SLURM_JOB_ID" in env:
        return "SLURM"
    if int(env.get("OMPI_COMM_WORLD_SIZE", "1")) > 1:
        return "Open MPI"
    if len([h for h in env.get("TPU_WORKER_HOSTNAMES", "").split(",") if h]) > 1:
        return "TPU pod"
    return None


def initialize_distributed(config: ml_collections.ConfigDict) -> bool:
    """Start ``jax.distributed`` for multi-host runs; returns whether it was started (idempotent).

    Call before anything touches devices. With ``parallel.coordinator_address`` set, the explicit
    address/count/id are used; otherwise, in "auto" mode, jax's own cluster detection is used when a SLURM,
    Open MPI or multi-host TPU environment is present. Single-process runs are left alone.
    """
    mode = config.get("distributed", "auto")
    if mode not in ("auto", "off"):
        raise ValueError(f"parallel.distributed={mode!r}: use 'auto' or 'off'")
    if mode == "off" or jax.distributed.is_initialized():
        return False
    if config.get("coordinator_address"):
        if config.get("num_processes") is None or config.get("process_id") is None:
            raise ValueError(
                "parallel.coordinator_address is set: also set parallel.num_processes and parallel.process_id"
            )
        jax.distributed.initialize(
            coordinator_address=config.coordinator_address,
            num_processes=config.num_processes,
            process_id=config.process_id,
        )
        return True
    cluster = _cluster_detected()
    if cluster is None:
        return False
    logging.info("initializing jax.distributed for %s", cluster)
    jax.distributed.initialize()
    return True
