"""Session-wide test settings: one persistent compilation cache, so identical tiny programs compile once, in this
process and in the commands tests run as subprocesses (jax reads its settings from JAX_* variables)."""

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

# Each test process registers its runs in a folder of its own (scaling.training.machine): tests training side by
# side, or a study running on the machine, must not make a tested study refuse to start.
os.environ["SCALING_JOBS_DIR"] = tempfile.mkdtemp(prefix="scaling-test-jobs-")
