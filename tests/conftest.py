"""Session-wide test settings, for this process and the commands tests run as subprocesses (which inherit them
from the environment): one persistent compilation cache, so identical tiny programs compile once, and XLA's
backend optimisation off.

Tests run tiny programs a few steps each, so compiling them costs more than running them: with LLVM's
optimisation level 0 a tiny T5 train step compiled in about half the time and ran about 1.4× slower, and a
mixed set of 35 compile-heavy tests (trainer, finetune, decode, remat, precision, a smoke study) took 635 s
against 767 s. It changes no program's semantics (XLA's HLO passes and fusion still run), and nothing run
outside the suite (a benchmark, a study) sees it."""

import os
import tempfile

import jax

SETTINGS = {
    "jax_compilation_cache_dir": os.environ.get(
        "SCALING_TEST_JAX_CACHE", os.path.join(tempfile.gettempdir(), "scaling-test-jax-cache")
    ),
    "jax_persistent_cache_min_compile_time_secs": 0.0,
    "jax_persistent_cache_min_entry_size_bytes": 0,
}
for name, value in SETTINGS.items():
    jax.config.update(name, value)
    os.environ.setdefault(name.upper(), str(value))
# Before any test initialises a jax backend (conftest is imported first); tests that fake devices add to it.
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0".strip()

# Each test process registers its runs in a folder of its own (scaling.training.machine): tests training side by
# side, or a study running on the machine, must not make a tested study refuse to start.
os.environ["SCALING_JOBS_DIR"] = tempfile.mkdtemp(prefix="scaling-test-jobs-")
