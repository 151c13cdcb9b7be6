"""The machine's limit for MFU: the best matmul FLOP/s that any installed library reaches here, measured now.

A CPU has no published peak that a program reaches, and JAX's own matmul is not the limit: on one Xeon torch's
MKL ran a float32 2048² matmul at 319 GFLOP/s where JAX reached 185–276. So the peak is the best of JAX and
torch (when installed), over several square sizes, in the precision of the step, measured in the same process as
the step it judges (these machines change speed from one day, even one minute, to the next), and it names the
library and size that set it. Devices with a published peak (GPUs, TPUs) use that instead
(:func:`scaling.training.metrics.peak_flops`).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from scaling.training import metrics

SIZES = (1024, 2048, 3072)
REPEATS = 5
_THREAD_PAUSE_SECONDS = 0.2  # lets torch's spinning worker threads sleep before the caller times JAX again


@dataclasses.dataclass(frozen=True)
class Peak:
    """A FLOP/s limit and where it comes from, e.g. "measured: torch 2.13.0+cpu matmul 2048² float32"."""

    flops_per_second: float
    source: str


def _best_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # compiles, or warms the library's kernels and thread pool
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def jax_matmul_seconds(n: int, dtype: jnp.dtype, repeats: int = REPEATS) -> float:
    """Best wall seconds of one jitted n × n matmul in `dtype` on JAX's default device."""
    a = jax.random.normal(jax.random.key(0), (n, n), dtype)
    b = jax.random.normal(jax.random.key(1), (n, n), dtype)
    f = jax.jit(jnp.matmul)
    return _best_seconds(lambda: jax.block_until_ready(f(a, b)), repeats)


def torch_matmul_seconds(n: int, dtype: jnp.dtype, repeats: int = REPEATS) -> float | None:
    """Best wall seconds of one `torch.mm` n × n in `dtype` on every core (torch's thread count is restored
    afterwards), or None where torch has no such dtype."""
    import torch

    torch_dtype = getattr(torch, np.dtype(dtype).name, None)
    if torch_dtype is None:
        return None
    threads = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)
    try:
        a, b = torch.randn(n, n).to(torch_dtype), torch.randn(n, n).to(torch_dtype)
        return _best_seconds(lambda: torch.mm(a, b), repeats)
    finally:
        torch.set_num_threads(threads)
        time.sleep(_THREAD_PAUSE_SECONDS)


def measured_peak(dtype: jnp.dtype = jnp.float32, sizes: Sequence[int] = SIZES, repeats: int = REPEATS) -> Peak:
    """The best matmul FLOP/s of JAX and torch over square `sizes`, in `dtype`, on this machine now.

    Torch counts only on a CPU backend: on an accelerator the host's matmul is no limit for the device's step."""
    dtype = jnp.dtype(dtype)
    libraries: dict[str, Callable[[int], float | None]] = {
        f"jax {jax.__version__}": lambda n: jax_matmul_seconds(n, dtype, repeats)
    }
    if jax.default_backend() == "cpu" and importlib.util.find_spec("torch") is not None:
        import torch

        libraries[f"torch {torch.__version__}"] = lambda n: torch_matmul_seconds(n, dtype, repeats)
    best = Peak(0.0, "")
    for n in sizes:
        for library, seconds_of in libraries.items():
            seconds = seconds_of(n)
            if seconds and 2 * n**3 / seconds > best.flops_per_second:
                best = Peak(2 * n**3 / seconds, f"measured: {library} matmul {n}² {dtype.name}")
    return best


def parse_sizes(text: str) -> tuple[int, ...]:
    """``"1024,2048"`` → ``(1024, 2048)``; ``""`` → :data:`SIZES`. A ValueError says the expected form."""
    try:
        sizes = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        sizes = ()
    if text.strip() and (not sizes or min(sizes) < 1):
        raise ValueError("use positive comma-separated sizes, e.g. 1024,2048")
    return sizes or SIZES


def device_peak(dtype: jnp.dtype = jnp.float32, measured: Peak | None = None, sizes: Sequence[int] = SIZES) -> Peak:
    """One device's limit: its published peak where :func:`metrics.peak_flops` knows the device, else (CPUs)
    `measured`, or the :func:`measured_peak` of this machine in `dtype` over `sizes` when none is given."""
    device = jax.devices()[0]
    published = metrics.peak_flops(device.device_kind)
    if published:
        return Peak(published, f"published: {device.device_kind} dense bf16")
    return measured or measured_peak(dtype, sizes)
