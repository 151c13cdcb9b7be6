"""Transformer scaling studies in JAX: shapes and their costs, training, downstream work, experiments, analysis.

Importing the package quiets TensorFlow's C++ logging (tf.data and tfds run on the host only; their device notes
are noise) unless ``TF_CPP_MIN_LOG_LEVEL`` is already set. It is done here, the one place, because the variable
is read when TensorFlow is first imported and every ``scaling`` module — each command included, and
``scaling.data``, which imports TensorFlow before a command module like ``scaling.data.inspect`` runs — is
imported after this package ``__init__``; :mod:`scaling.cli` describes the rest of the command-line convention.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
