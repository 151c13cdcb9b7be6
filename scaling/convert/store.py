"""Converted checkpoints on disk: `DIR/shape.json` (the full Shape) and `DIR/params` (an orbax checkpoint).

This is what `python -m scaling.convert import-*` writes and what `--config.init_from=DIR`, `export-hf` and
`python -m scaling.decode --checkpoint=DIR` read. The parameters are the same `nnx.State` the trainer saves
under `params`, so a restore can place them straight into a run's shardings.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from flax import nnx

from scaling import models, shapes
from scaling.convert.params import ConversionError
from scaling.models.t5 import T5

FORMAT = "scaling-params/1"
SHAPE_FILE = "shape.json"
PARAMS_DIR = "params"


def save(model: T5, directory: str | os.PathLike, source: str) -> Path:
    """Writes the model's shape and parameters; refuses to overwrite an existing checkpoint."""
    directory = Path(directory).absolute()
    if (directory / SHAPE_FILE).exists() or (directory / PARAMS_DIR).exists():
        raise FileExistsError(f"{directory} already holds a converted checkpoint; choose a new directory")
    save_params(nnx.state(model, nnx.Param), directory)
    record = {"format": FORMAT, "name": model.shape.name, "source": source,
              "shape": dataclasses.asdict(model.shape)}
    (directory / SHAPE_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return directory


def save_params(params: Any, directory: str | os.PathLike) -> None:
    """Writes `params` (an nnx.State) to `directory/params`, replacing what is there."""
    directory = Path(directory).absolute()
    directory.mkdir(parents=True, exist_ok=True)
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(directory / PARAMS_DIR, params, force=True)
        checkpointer.wait_until_finished()


def is_converted(directory: str | os.PathLike) -> bool:
    return (Path(directory) / SHAPE_FILE).is_file()


def load_shape(directory: str | os.PathLike) -> shapes.Shape:
    path = Path(directory) / SHAPE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {directory} is not a converted checkpoint "
                                f"(write one with `python -m scaling.convert import-hf|import-mesh-tf SRC DST`)")
    record = json.loads(path.read_text())
    if record.get("format") != FORMAT:
        raise ConversionError(f"{path}: format {record.get('format')!r}, expected {FORMAT!r}")
    return shapes.Shape(**record["shape"])


def restore_params(directory: str | os.PathLike, abstract_params: Any) -> Any:
    """The saved parameters laid out as `abstract_params` (ShapeDtypeStructs carrying target shardings)."""
    with ocp.StandardCheckpointer() as checkpointer:
        return checkpointer.restore(Path(directory).absolute() / PARAMS_DIR, abstract_params)


def load(directory: str | os.PathLike) -> T5:
    """The saved model on the default device, float32."""
    shape = load_shape(directory)
    graphdef, abstract = nnx.split(models.abstract(shape))
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), abstract)
    return nnx.merge(graphdef, restore_params(directory, target))
