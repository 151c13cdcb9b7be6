"""Session-wide test settings: one persistent compilation cache, so identical tiny programs compile once."""

import os
import tempfile

import jax

jax.config.update(
    "jax_compilation_cache_dir",
    os.environ.get("SCALING_TEST_JAX_CACHE", os.path.join(tempfile.gettempdir(), "scaling-test-jax-cache")),
)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

# Each test process registers its runs in a folder of its own (scaling.training.machine): tests training side by
# side, or a study running on the machine, must not make a tested study refuse to start.
os.environ["SCALING_JOBS_DIR"] = tempfile.mkdtemp(prefix="scaling-test-jobs-")
