"""Helpers for tests that start local worker processes (multi-device and multi-host runs on CPU)."""

import os
import socket


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_env(devices: int | None = None, **extra: str) -> dict[str, str]:
    """The current environment, pinned to CPU and quiet about missing accelerators; `devices` fakes that many CPU
    devices, added to the XLA flags the suite already sets (tests/conftest.py) rather than replacing them."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", **extra}
    if devices is not None:
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}".strip()
    return env
