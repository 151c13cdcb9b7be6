"""Transformer scaling studies in JAX: shapes and their costs, training, downstream work, experiments, analysis.

Importing the package quiets TensorFlow's runtime C++ logging (tf.data and tfds run on the host only; their
device notes are noise) unless ``TF_CPP_MIN_LOG_LEVEL`` is already set: the variable is read when TensorFlow is
first imported, and every ``scaling`` module is imported after this ``__init__``. What TensorFlow prints while it
is being imported no variable stops; commands import it with that output silenced (:func:`scaling.cli.run`).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
