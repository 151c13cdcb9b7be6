"""Post-training compression of parameter trees: quantization and magnitude pruning (Li et al., 2020).

*Train Large, Then Compress* compresses trained models two ways and measures accuracy against the memory the
parameters need at test time:

- quantization (Section 4.2): uniform k-bit post-training quantization with one range per tensor (or per
  output channel); :func:`quantize` returns the dequantized float32 weights, so evaluation runs unchanged.
- pruning (Section 4.3): magnitude pruning to a target sparsity, globally over the model or per tensor;
  :func:`magnitude_prune` returns the masks, so recovery finetuning keeps pruned weights at zero
  (:func:`apply_masks` after every optimizer update) and iterative schedules (15% → 30% → …) only add zeros.

:func:`memory_bits` is the x axis of the paper's compression plots, :func:`error_stats` Figure 9's per-module
quantization error, and :func:`module_type` the module groups it uses.

Trees are pytrees of arrays: an ``nnx.State`` from ``nnx.split(model)[1]`` or nested dicts of numpy/jax arrays.
Leaves are named by :func:`path_name` (``encoder_layers/attention/query``). Layer stacks are stored with a
leading layer axis, so a leaf under a component ending in ``layers`` (:func:`is_stacked`) is one tensor per
slice along axis 0: ranges and per-tensor pruning work slice by slice. (The rule is by name: BERT with
``layer_sharing='all'`` stores its single shared layer unstacked under ``layers``, and is treated as stacked.)

:func:`sweep` (``python -m scaling.compress WORKDIR/TASK/seed_S --out=DIR``) runs the paper's experiment on a
model finetuned by :mod:`scaling.downstream.finetune`: quantization at every bit width, iterative pruning 15% → 90% with
recovery finetuning (masks fixed; until 99.5% of the original validation score or one epoch), pruning then
quantization, and the error statistics of each, into ``DIR/compression.csv`` (read by
``scaling.analysis.runs.load_compression``) and ``DIR/errors.csv``. Pruned weights stay zero when a pruned
model is quantized: they are stored sparsely, not on the quantization grid.

Everything works leaf by leaf (quantization on the leaf's device, pruning in numpy), so ~1e8-parameter trees
fit in host memory: the global pruning threshold needs one float32 vector of all included weights.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from scaling import csvfile

Tree = Any  # a pytree of arrays: nnx.State, or nested dicts of numpy / jax arrays
Patterns = str | Iterable[str]  # regexes searched in leaf names (a single string is one pattern)

GRANULARITIES = ("tensor", "channel")
SCOPES = ("global", "tensor")
MODULE_TYPES = ("attention_in", "attention_out", "ffn_in", "ffn_out", "embedding", "other")
RANGE_OVERHEAD_BITS = 64  # q0 and Δ as float32, per quantization range
FULL_PRECISION_BITS = 32
MAX_QUANTIZED_BITS = 16

_ATTENTION_IN = {"query", "key", "value", "qkv", "kv"}
_FFN_IN = re.compile(r"wi(_\d+|_gate)?")


# ---------------------------------------------------------------------------------------------------------------
# Leaf names and groups


def path_name(path: Sequence[Any]) -> str:
    """A key path as '/'-joined names, without the trailing ``.value`` that nnx Variables add."""
    keys = list(path)
    if keys and isinstance(keys[-1], jax.tree_util.GetAttrKey) and keys[-1].name == "value":
        keys = keys[:-1]
    return "/".join(_key_name(key) for key in keys)


def _key_name(key: Any) -> str:
    for attr in ("key", "name", "idx"):  # DictKey / FlattenedIndexKey, GetAttrKey, SequenceKey
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def is_stacked(name: str) -> bool:
    """Whether a leaf has a leading layer axis: it lives under a component ending in ``layers``."""
    return any(part.endswith("layers") for part in name.split("/"))


def module_type(name: str) -> str:
    """The module group of a leaf (Li et al. Figure 9): one of :data:`MODULE_TYPES`.

    Attention kernels are split into inputs (query/key/value, fused ``qkv``/``kv`` too) and the output
    projection; feed-forward into ``wi`` (``wi_0``/``wi_1``/``wi_gate`` gated variants) and ``wo``. Biases,
    norms, relative position tables and output heads are ``other``.
    """
    parts = name.split("/")
    leaf = parts[-1]
    in_attention = any("attention" in part for part in parts[:-1])
    if leaf == "bias" or leaf.endswith("_bias"):
        return "other"
    if in_attention and leaf in _ATTENTION_IN:
        return "attention_in"
    if in_attention and leaf == "out":
        return "attention_out"
    if _FFN_IN.fullmatch(leaf):
        return "ffn_in"
    if leaf == "wo":
        return "ffn_out"
    if leaf.endswith(("embedding", "embeddings")):
        return "embedding"
    return "other"


def _named_leaves(tree: Tree) -> tuple[list[tuple[str, Any]], Any]:
    """(name, leaf) pairs in flatten order, and the treedef to rebuild the tree."""
    pairs, treedef = jax.tree_util.tree_flatten_with_path(tree)
    return [(path_name(path), leaf) for path, leaf in pairs], treedef


def _matcher(exclude: Patterns) -> Callable[[str], bool]:
    """A predicate telling whether a leaf name matches any of the exclude regexes."""
    patterns = [re.compile(p) for p in ([exclude] if isinstance(exclude, str) else exclude)]
    return lambda name: any(p.search(name) for p in patterns)


def _aligned(tree: Tree, other: Tree, what: str) -> list[Any]:
    """The leaves of `other` in `tree`'s flatten order, after checking both trees have the same leaf names."""
    names = [name for name, _ in _named_leaves(tree)[0]]
    other_pairs = _named_leaves(other)[0]
    if names != [name for name, _ in other_pairs]:
        differ = sorted(set(names) ^ {name for name, _ in other_pairs})
        raise ValueError(
            f"{what} must have the same structure as the parameter tree; leaves that differ: "
            f"{differ[:5] or 'same names, different order'}. Pass a tree built from the same model"
        )
    return [leaf for _, leaf in other_pairs]


# ---------------------------------------------------------------------------------------------------------------
# Counting


def count_params(tree: Tree) -> int:
    """Number of parameters (array elements) in the tree."""
    return sum(int(np.size(leaf)) for leaf in jax.tree.leaves(tree))


def nonzero_params(tree: Tree, exclude: Patterns = ()) -> int:
    """Number of nonzero parameters outside the excluded leaves: what pruning leaves behind."""
    excluded = _matcher(exclude)
    return sum(int(np.count_nonzero(np.asarray(leaf))) for name, leaf in _named_leaves(tree)[0] if not excluded(name))


def memory_bits(
    tree: Tree,
    bits: int = FULL_PRECISION_BITS,
    masks: Tree | None = None,
    granularity: str = "tensor",
    exclude: Patterns = (),
) -> int:
    """Bits to store the parameters at test time: the x axis of Li et al.'s compression plots.

    (#kept weights) × bits, plus, when quantized (1 ≤ bits ≤ 16), 2 float32 values (q0 and Δ) per range: per
    tensor (layer slice of a stacked leaf) or per output channel. Kept weights are the True entries of `masks`,
    or every weight without masks. Excluded leaves (as passed to :func:`quantize`) stay float32 with no ranges.
    Like the paper, which reports the memory of the parameters themselves, the indices a sparse format needs
    are not counted.
    """
    _check_bits(bits)
    _check_granularity(granularity)
    pairs, _ = _named_leaves(tree)
    if masks is None:
        kept = [int(np.size(leaf)) for _, leaf in pairs]
    else:
        kept = [int(np.count_nonzero(np.asarray(m))) for m in _aligned(tree, masks, "masks")]
    excluded = _matcher(exclude)
    total = 0
    for (name, leaf), n_kept in zip(pairs, kept):
        if bits == FULL_PRECISION_BITS or excluded(name):
            total += n_kept * FULL_PRECISION_BITS
        else:
            total += n_kept * bits + _num_ranges(np.shape(leaf), is_stacked(name), granularity) * RANGE_OVERHEAD_BITS
    return total


# ---------------------------------------------------------------------------------------------------------------
# Quantization (Section 4.2)


def quantize(tree: Tree, bits: int, granularity: str = "tensor", exclude: Patterns = ()) -> Tree:
    """Uniform k-bit post-training quantization, returned dequantized as float32 (same tree structure).

    Per range: q0 = min, q_{2^k-1} = max, W' = clamp(W, q0, q_max), Δ = (q_max − q0) / (2^k − 1),
    W_I = round((W' − q0) / Δ), Q(W) = Δ·W_I + q0 — with the top level returning q_max itself, so both ends of
    the range are exact. Ranges are per tensor (per layer slice of a stacked leaf) for ``granularity='tensor'``,
    or per output channel (the last axis, per layer slice) for ``'channel'``. Constant ranges (Δ = 0) are left
    as they are; ``bits=32`` casts to float32 and changes nothing; excluded leaves are returned untouched.
    """
    _check_bits(bits)
    _check_granularity(granularity)
    excluded = _matcher(exclude)
    levels = np.float32(2**bits - 1)

    def leaf_fn(path: Sequence[Any], leaf: Any) -> Any:
        name = path_name(path)
        if excluded(name):
            return leaf
        w = jnp.asarray(leaf, jnp.float32)
        if bits == FULL_PRECISION_BITS:
            return w
        return _quantize_array(w, levels, _range_axes(w.ndim, is_stacked(name), granularity))

    return jax.tree_util.tree_map_with_path(leaf_fn, tree)


@functools.partial(jax.jit, static_argnames="axes")
def _quantize_array(w: jax.Array, levels: jax.Array, axes: tuple[int, ...]) -> jax.Array:
    """Quantize-dequantize one array with ranges reduced over `axes` (bits are traced: one compile per shape)."""
    q0 = jnp.min(w, axis=axes, keepdims=True)
    q_max = jnp.max(w, axis=axes, keepdims=True)
    delta = (q_max - q0) / levels
    constant = delta == 0
    w_int = jnp.round((jnp.clip(w, q0, q_max) - q0) / jnp.where(constant, 1.0, delta))
    q = jnp.where(w_int == levels, q_max, delta * w_int + q0)
    return jnp.where(constant, w, q)


def _range_axes(ndim: int, stacked: bool, granularity: str) -> tuple[int, ...]:
    """The axes one quantization range spans: all but the layer axis (stacked) and, per channel, the last."""
    own = {0} if stacked and ndim else set()
    if granularity == "channel" and ndim:
        own.add(ndim - 1)
    return tuple(a for a in range(ndim) if a not in own)


def _num_ranges(shape: tuple[int, ...], stacked: bool, granularity: str) -> int:
    """How many quantization ranges (each storing q0 and Δ) a leaf of this shape has."""
    axes = _range_axes(len(shape), stacked, granularity)
    return int(np.prod([n for a, n in enumerate(shape) if a not in axes]))


def _check_bits(bits: Any) -> None:
    is_int = isinstance(bits, (int, np.integer)) and not isinstance(bits, (bool, np.bool_))
    if not (is_int and (1 <= bits <= MAX_QUANTIZED_BITS or bits == FULL_PRECISION_BITS)):
        raise ValueError(
            f"bits = {bits!r}; use an int in 1..{MAX_QUANTIZED_BITS} (k-bit quantization) "
            f"or {FULL_PRECISION_BITS} (float32, no quantization)"
        )


def _check_granularity(granularity: str) -> None:
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity = {granularity!r}; choose one of {', '.join(map(repr, GRANULARITIES))}")


# ---------------------------------------------------------------------------------------------------------------
# Magnitude pruning (Section 4.3)


def magnitude_prune(
    tree: Tree, sparsity: float, scope: str = "global", exclude: Patterns = (), masks: Tree | None = None
) -> tuple[Tree, Tree]:
    """Zero the smallest-|W| weights so exactly round(sparsity × N) of the N included weights are pruned.

    ``scope='global'`` ranks all non-excluded weights together (N = their count); ``'tensor'`` hits the
    count in each tensor (layer slice of a stacked leaf) separately. Ties go to the lower flat index (in tree
    flatten order), so counts are exact even with many equal values. `masks` from a previous call (bool, True
    = kept) are honoured: weights they prune are ranked first and stay pruned, so iterative pruning only adds
    zeros. Returns ``(pruned_tree, masks)``; excluded leaves keep their given mask (all True without one).
    """
    _check_sparsity(sparsity)
    if scope not in SCOPES:
        raise ValueError(f"scope = {scope!r}; choose one of {', '.join(map(repr, SCOPES))}")
    pairs, treedef = _named_leaves(tree)
    old = [None] * len(pairs) if masks is None else _aligned(tree, masks, "masks")
    excluded = _matcher(exclude)
    included = [i for i, (name, _) in enumerate(pairs) if not excluded(name)]
    new = [_keep_all(leaf, m) if excluded(name) else None for (name, leaf), m in zip(pairs, old)]
    if scope == "global":
        sizes = [int(np.size(pairs[i][1])) for i in included]
        starts = np.cumsum([0] + sizes)
        scores = np.empty(starts[-1], np.float32)  # one vector, filled leaf by leaf: no concatenated copies
        for i, start, size in zip(included, starts, sizes):
            scores[start : start + size] = _scores(pairs[i][1], old[i]).reshape(-1)
        pruned = _lowest(scores, sparsity, "the model")
        for i, start, size in zip(included, starts, sizes):
            new[i] = ~pruned[start : start + size].reshape(np.shape(pairs[i][1]))
    else:
        for i in included:
            name, leaf = pairs[i]
            scores = _scores(leaf, old[i])
            rows = scores.reshape(len(scores), -1) if is_stacked(name) and scores.ndim else scores.reshape(1, -1)
            new[i] = ~np.stack([_lowest(row, sparsity, name) for row in rows]).reshape(scores.shape)
    new_masks = jax.tree_util.tree_unflatten(treedef, new)
    return apply_masks(tree, new_masks), new_masks


def apply_masks(tree: Tree, masks: Tree) -> Tree:
    """W · mask, keeping each leaf's dtype: re-zeroes pruned weights after an optimizer update."""
    return jax.tree.map(lambda w, m: w * m, tree, masks)


def _keep_all(leaf: Any, mask: Any | None) -> np.ndarray:
    """The mask of an excluded leaf: the one it was given, or all True."""
    return np.ones(np.shape(leaf), bool) if mask is None else np.asarray(mask, bool)


def _scores(leaf: Any, mask: Any | None) -> np.ndarray:
    """|W| as float32, with weights an earlier mask pruned at -1 so they rank below every real weight."""
    scores = np.abs(np.asarray(leaf, np.float32))
    if mask is not None:
        scores[~np.asarray(mask, bool)] = -1.0
    return scores


def _lowest(scores: np.ndarray, sparsity: float, where: str) -> np.ndarray:
    """Marks exactly round(sparsity × n) lowest scores; ties at the threshold go to the lowest indices."""
    k = round(float(sparsity) * scores.size)
    forced = int(np.count_nonzero(scores < 0))
    if forced > k:
        raise ValueError(
            f"the given masks already prune {forced} weights of {where}, more than the {k} that "
            f"sparsity {sparsity} asks for; raise the sparsity or pass masks=None"
        )
    marked = np.zeros(scores.size, bool)
    if k == 0:
        return marked
    threshold = np.partition(scores, k - 1)[k - 1]
    below = scores < threshold
    marked[below] = True
    marked[np.flatnonzero(scores == threshold)[: k - int(np.count_nonzero(below))]] = True
    return marked


def _check_sparsity(sparsity: Any) -> None:
    if isinstance(sparsity, (bool, np.bool_)) or not isinstance(sparsity, (int, float, np.integer, np.floating)):
        raise ValueError(f"sparsity = {sparsity!r}; use a float in [0, 1), the fraction of weights to remove")
    if sparsity >= 1:
        raise ValueError(f"sparsity {float(sparsity)} would remove every weight; use a value in [0, 1)")
    if not sparsity >= 0:  # negative or NaN
        raise ValueError(f"sparsity {float(sparsity)} is not a fraction of weights to remove; use a value in [0, 1)")


# ---------------------------------------------------------------------------------------------------------------
# Error analysis (Figure 9)


def error_stats(original: Tree, compressed: Tree) -> dict[str, dict[str, float]]:
    """Per module type present: mean and (population) variance of |W − W′| over its elements, and the count.

    Accumulated leaf by leaf in float64 (Chan et al.'s pairwise update), so big trees need no concatenation.
    """
    pairs, _ = _named_leaves(original)
    acc: dict[str, tuple[int, float, float]] = {}  # type -> (count, mean, sum of squared deviations)
    for (name, w), w_c in zip(pairs, _aligned(original, compressed, "the compressed tree")):
        diff = np.abs(np.asarray(w, np.float64) - np.asarray(w_c, np.float64)).reshape(-1)
        if diff.size:
            group, mean = module_type(name), float(diff.mean())
            summary = (diff.size, mean, float(np.square(diff - mean).sum()))
            acc[group] = _merge(acc[group], summary) if group in acc else summary
    return {
        t: {"mean": acc[t][1], "variance": acc[t][2] / acc[t][0], "count": acc[t][0]} for t in MODULE_TYPES if t in acc
    }


def _merge(a: tuple[int, float, float], b: tuple[int, float, float]) -> tuple[int, float, float]:
    """Combine (count, mean, M2) summaries of two sets of values."""
    n = a[0] + b[0]
    delta = b[1] - a[1]
    return n, a[1] + delta * b[0] / n, a[2] + b[2] + delta * delta * a[0] * b[0] / n


# ------------------------------------------------------------------------------- the compression sweep

DEFAULT_BITS = (2, 3, 4, 5, 6, 7, 8, 16, 32)
DEFAULT_SPARSITIES = (0.15, 0.30, 0.45, 0.60, 0.75, 0.90)
DEFAULT_COMBINED_BITS = (8, 6, 4)
TABLE_COLUMNS = (
    "model",
    "task",
    "method",
    "level",
    "bits",
    "sparsity",
    "params",
    "nonzero_params",
    "memory_bits",
    "score",
    "metrics",
    "recovery_steps",
    "seconds",
)
ERROR_COLUMNS = ("model", "task", "method", "level", "module_type", "mean", "variance", "count")
TABLE_FILE, ERRORS_FILE = "compression.csv", "errors.csv"


@dataclasses.dataclass(frozen=True)
class SweepSettings:
    """What `python -m scaling.compress` sweeps; levels as in Li et al. Sections 4.2–4.3."""

    bits: tuple[int, ...] = DEFAULT_BITS
    sparsities: tuple[float, ...] = DEFAULT_SPARSITIES
    combined_bits: tuple[int, ...] = DEFAULT_COMBINED_BITS
    granularity: str = "tensor"
    scope: str = "global"
    exclude: tuple[str, ...] = ()
    recovery_target: float = 0.995  # finetune until this fraction of the original validation score…
    recovery_epochs: float = 1.0  # …or this many epochs
    checks_per_epoch: int = 4  # how often recovery asks whether the score is back

    def validate(self) -> None:
        for bits in (*self.bits, *self.combined_bits):
            _check_bits(bits)
        levels = list(self.sparsities)
        for s in levels:
            _check_sparsity(s)
        if levels != sorted(levels) or len(set(levels)) != len(levels):
            raise ValueError(f"sparsities {levels} must increase: iterative pruning only adds zeros")
        if not 0 < self.recovery_target <= 1:
            raise ValueError(f"recovery_target = {self.recovery_target}: use a fraction in (0, 1] (Li et al.: 0.995)")
        if self.recovery_epochs < 0 or self.checks_per_epoch < 1:
            raise ValueError("recovery_epochs must be >= 0 and checks_per_epoch >= 1")


class _Table:
    """A CSV that grows a row at a time (:func:`scaling.csvfile.append`), so a killed sweep keeps every row."""

    def __init__(self, path: Path, columns: Sequence[str]):
        self.path, self.columns = path, tuple(columns)
        self.rows = csvfile.read(path)
        if not self.rows:
            csvfile.append(path, [], self.columns)

    def has(self, method: str, level: Any) -> bool:
        return any(r["method"] == method and r["level"] == str(level) for r in self.rows)

    def add(self, row: dict[str, Any]) -> None:
        csvfile.append(self.path, [row], self.columns)
        self.rows.append({k: str(v) for k, v in row.items()})


def sweep(
    finetuned_dir: str | os.PathLike,
    out: str | os.PathLike,
    settings: SweepSettings = SweepSettings(),
    *,
    max_eval_examples: int | None = None,
    max_train_examples: int | None = None,
    print_fn: Callable[[str], None] = print,
) -> Path:
    """Quantize, prune iteratively with recovery finetuning, and both, writing `compression.csv` and `errors.csv`.

    Recovery finetuning is a masked run of the trainer (:func:`scaling.downstream.finetune.finetune`) in
    ``out/pruned/LEVEL``, which keeps its masks in its checkpoints. Rows already in `out` are not recomputed; an
    interrupted recovery resumes from its checkpoint, and a finished level is read back from its workdir.
    """
    from scaling.downstream import finetune

    settings.validate()
    model = finetune.load_finetuned(finetuned_dir)
    config = model.config
    if max_eval_examples is not None:
        config.max_eval_examples = max_eval_examples
    if max_train_examples is not None:
        config.max_train_examples = max_train_examples
    session = finetune.make_session(model.shape, model.vocabulary, model.task, config)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table, errors = _Table(out / TABLE_FILE, TABLE_COLUMNS), _Table(out / ERRORS_FILE, ERROR_COLUMNS)
    original = model.params
    n_params = count_params(original)
    base = {"model": model.shape.name, "task": model.task, "params": n_params}

    def record(
        method: str,
        level: Any,
        params: Any,
        bits: int,
        sparsity: float,
        masks: Any = None,
        steps: int = 0,
        seconds: float = 0.0,
        result: dict[str, float] | None = None,
    ) -> float:
        result = session.evaluate(params) if result is None else result
        score = result["score"]
        table.add(
            {
                **base,
                "method": method,
                "level": level,
                "bits": bits,
                "sparsity": sparsity,
                "nonzero_params": nonzero_params(params),
                "memory_bits": memory_bits(params, bits, masks, settings.granularity),
                "score": score,
                "metrics": json.dumps(result, sort_keys=True),  # each metric by itself, and predicted_classes
                "recovery_steps": steps,
                "seconds": round(seconds, 3),
            }
        )
        if method != "none":
            for kind, stats in error_stats(original, params).items():
                errors.add(
                    {
                        "model": base["model"],
                        "task": base["task"],
                        "method": method,
                        "level": level,
                        "module_type": kind,
                        **stats,
                    }
                )
        print_fn(f"{method} {level}: score {score:.4f}")
        return score

    if not table.has("none", 32):
        record("none", 32, original, 32, 0.0)
    reference = float(next(r["score"] for r in table.rows if r["method"] == "none"))

    for bits in settings.bits:
        if not table.has("quantize", bits):
            quantized = quantize(original, bits, settings.granularity, exclude=settings.exclude)
            record("quantize", bits, quantized, bits, 0.0)

    params, masks = original, None
    per_epoch = session.steps_per_epoch
    budget = int(round(settings.recovery_epochs * per_epoch))
    target = settings.recovery_target * reference
    for sparsity in settings.sparsities:
        level = f"{sparsity:g}"
        start = time.perf_counter()
        pruned, masks = magnitude_prune(params, sparsity, settings.scope, exclude=settings.exclude, masks=masks)
        steps, result = 0, None
        if budget:
            finetune.describe(
                out / "pruned" / level,
                session,
                {"kind": "prune", "sparsity": sparsity, "source": str(finetuned_dir)},
                config,
            )
            params, result, steps = finetune.finetune(
                session,
                out / "pruned" / level,
                seed=0,
                steps=budget,
                params=lambda: pruned,
                masks=masks,
                stop_early=lambda p: session.evaluate(p)["score"] >= target,
                check_every=max(1, per_epoch // settings.checks_per_epoch),
                print_fn=lambda _: None,
            )
            params = jax.device_get(params)
        else:
            params = pruned
        if not table.has("prune", level):
            record("prune", level, params, 32, sparsity, masks, steps, time.perf_counter() - start, result)
        for bits in settings.combined_bits:
            if not table.has("prune+quantize", f"{level}/{bits}"):
                combined = apply_masks(quantize(params, bits, settings.granularity, exclude=settings.exclude), masks)
                record("prune+quantize", f"{level}/{bits}", combined, bits, sparsity, masks)
    return out / TABLE_FILE


def parse_numbers(text: str, kind: Callable[[str], Any], flag: str) -> tuple:
    """``"8,6,4"`` → ``(8, 6, 4)``; a bad item names ``--flag`` and the expected form."""
    try:
        return tuple(kind(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise ValueError(f"--{flag}={text!r}: use comma-separated {kind.__name__} values, e.g. 8,6,4") from None
