"""What every checkpoint format shares: strict tensor reading, shape naming, and assembling our T5.

A released checkpoint is read through `Tensors`, which checks each tensor's presence and shape as it is
taken and, at the end, that nothing was left over — so a wrong file fails with the tensor's own name, and a
partial load is impossible. `infer_shape` turns the dimensions a checkpoint declares into a `Shape` named
by the nearest preset plus knobs (`small-nl24`), and `assemble` builds the model from our parameter paths.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping

import flax.traverse_util
import jax.numpy as jnp
import numpy as np
from flax import nnx

from scaling import models, shapes
from scaling.errors import ScalingError
from scaling.models.t5 import T5


class ConversionError(ScalingError, ValueError):
    """A checkpoint that cannot become one of our models exactly; the message names the tensor or field."""


class Tensors:
    """Named arrays from one checkpoint, read lazily, each taken at most once and at its expected shape."""

    def __init__(
        self,
        shapes_by_name: Mapping[str, tuple[int, ...]],
        read: Callable[[str], np.ndarray],
        where: str,
        ignore: Callable[[str], bool] = lambda name: False,
    ):
        self._shapes = {k: tuple(v) for k, v in shapes_by_name.items() if not ignore(k)}
        self._read, self.where = read, where
        self._taken: set[str] = set()

    def __contains__(self, name: str) -> bool:
        return name in self._shapes

    def shape(self, name: str) -> tuple[int, ...]:
        if name not in self._shapes:
            raise ConversionError(f"{self.where}: missing tensor {name!r}")
        return self._shapes[name]

    def take(self, name: str, shape: Iterable[int]) -> np.ndarray:
        """The tensor as float32, after checking that it exists and has `shape`."""
        expected, found = tuple(shape), self.shape(name)
        if found != expected:
            raise ConversionError(f"{self.where}: tensor {name!r} has shape {list(found)}, expected {list(expected)}")
        self._taken.add(name)
        return np.asarray(self._read(name), dtype=np.float32)

    def skip(self, name: str) -> None:
        """Marks a tensor as deliberately unused (a copy of one already taken, or one the format ignores)."""
        self._taken.add(name)

    def check_all_taken(self) -> None:
        left = sorted(set(self._shapes) - self._taken)
        if left:
            raise ConversionError(
                f"{self.where}: unexpected tensor(s) {left[:8]}{' …' if len(left) > 8 else ''} "
                f"({len(left)} in all); the shape read from the config does not use them"
            )


def infer_shape(
    source: str,
    *,
    num_encoder_layers: int,
    num_decoder_layers: int,
    d_model: int,
    d_ff: int,
    num_heads: int,
    d_kv: int,
    vocab_size: int,
    ffn_activation: str,
    ffn_gating: str,
    tie_embeddings: bool,
    shared_heads: bool = False,
    tied_kv: bool = False,
    relpos_buckets: int = 32,
    relpos_max_distance: int = 128,
    norm_eps: float = 1e-6,
    dropout_rate: float = 0.0,
) -> shapes.Shape:
    """The T5 shape with these dimensions, named by the preset that needs the fewest knobs.

    The dimensions are the checkpoint's own: the numbers in released names are nominal (`base-ff2000` has
    d_ff 2048), so names are derived here, never read. Switches that no knob spells (vocabulary, activation,
    tying, buckets, epsilon, dropout) are parse overrides, and the result is checked to round-trip through
    `shapes.parse(shape.name, **switches)`.
    """
    knobs = {
        "num_encoder_layers": num_encoder_layers,
        "num_decoder_layers": num_decoder_layers,
        "d_model": d_model,
        "d_ff": d_ff,
        "num_heads": num_heads,
        "d_kv": d_kv,
        "shared_heads": shared_heads,
        "tied_kv": tied_kv,
    }
    switches = {
        "vocab_size": vocab_size,
        "ffn_activation": ffn_activation,
        "ffn_gating": ffn_gating,
        "tie_embeddings": tie_embeddings,
        "relpos_buckets": relpos_buckets,
        "relpos_max_distance": relpos_max_distance,
        "norm_eps": norm_eps,
        "dropout_rate": dropout_rate,
    }
    try:
        candidates = [dataclasses.replace(preset, **knobs, **switches) for preset in shapes.T5_PRESETS.values()]
    except shapes.ShapeError as e:
        raise ConversionError(f"{source}: {e}") from None
    best = min(candidates, key=lambda s: s.name.count("-"))  # first preset among equals: presets are ordered
    if shapes.parse(best.name, **switches) != best:
        raise ConversionError(
            f"{source}: no preset plus knobs names this shape ({best.name} does not parse back "
            f"to it); fields {knobs | switches}"
        )
    return best


def our_paths(shape: shapes.Shape) -> dict[str, tuple[int, ...]]:
    """Our T5's parameter paths (`encoder_layers.attention.query`) and shapes, layers stacked first."""
    _, state = nnx.split(models.abstract(shape))
    return {k: tuple(v.shape) for k, v in flax.traverse_util.flatten_dict(nnx.to_pure_dict(state), sep=".").items()}


def assemble(shape: shapes.Shape, arrays: Mapping[str, np.ndarray], source: str) -> T5:
    """Our T5 holding exactly `arrays` (keyed by our parameter paths); any missing, extra or misshapen path fails."""
    expected = our_paths(shape)
    missing, extra = sorted(expected.keys() - arrays.keys()), sorted(arrays.keys() - expected.keys())
    if missing or extra:
        raise ConversionError(f"{source}: parameters missing {missing}, unexpected {extra} for shape {shape.name}")
    for path, want in expected.items():
        if tuple(arrays[path].shape) != want:
            raise ConversionError(
                f"{source}: parameter {path} has shape {list(arrays[path].shape)}, "
                f"expected {list(want)} for shape {shape.name}"
            )
    graphdef, state = nnx.split(models.abstract(shape))
    pure = flax.traverse_util.unflatten_dict({k: jnp.asarray(v, jnp.float32) for k, v in arrays.items()}, sep=".")
    nnx.replace_by_pure_dict(state, pure)
    return nnx.merge(graphdef, state)


def flat_arrays(model: T5) -> dict[str, np.ndarray]:
    """The model's parameters as float32 numpy arrays keyed by our parameter paths."""
    pure = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    return {k: np.asarray(v, np.float32) for k, v in flax.traverse_util.flatten_dict(pure, sep=".").items()}


def split_heads(w: np.ndarray, heads: int) -> np.ndarray:
    """[in, heads·d_kv] (heads major, as Mesh TF and Hugging Face lay them out) → [in, heads, d_kv]."""
    return w.reshape(w.shape[0], heads, w.shape[1] // heads)
