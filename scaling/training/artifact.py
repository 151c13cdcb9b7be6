"""Models on disk: one descriptor, two layouts, one loader for every kind of checkpoint.

A model directory carries everything needed to use it. ``model.json`` holds

    {"format": "scaling-model/1", "name": "small-nl24", "shape": {...every Shape field...},
     "vocabulary": "vocabulary.model" | null, "vocabulary_extra_ids": 100,
     "provenance": {"kind": "train" | "import-hf" | "import-mesh-tf" | "finetune" | "prune" | ...,
                    "source": "...", "step": 1000 | null, "created": "2026-11-23T10:00:00+00:00", ...},
     "head": null | {"task": "trec", "num_outputs": 6}}

and the sentencepiece model itself sits beside it as ``vocabulary.model``, so a copied directory still
tokenizes. Two layouts share the descriptor:

- an **artifact** (what :func:`save` writes: conversions, finetuned and pruned models):
  ``model.json``, ``vocabulary.model``, orbax ``params/`` and, for a pruned model, orbax ``masks/``;
- a **training workdir** (what the trainer writes, :func:`describe_workdir`): ``model.json``,
  ``vocabulary.model`` and ``checkpoints/<step>/state`` = {"params", "opt_state"}. :func:`load` restores
  only the parameters of the newest step that reads (orbax partial restore), knowing nothing of the optimizer.

:func:`load` reads either, and the older layouts too: workdirs with ``config.json`` but no ``model.json``
(the shape and vocabulary come from the run's config), converted checkpoints (``shape.json`` + ``params/``)
and finetuned runs (``finetune.json`` + ``params/``). A vocabulary that cannot be the model's — more ids than
it embeds, far fewer, or other pad/EOS/unk ids — is refused by :func:`check_vocabulary`, never used.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import math
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
import seqio
from flax import nnx

from scaling import models, shapes
from scaling.data import vocab as vocab_lib
from scaling.errors import ScalingError, UserError
from scaling.training import checkpoints

FORMAT = "scaling-model/1"
MODEL_FILE = "model.json"
VOCABULARY_FILE = "vocabulary.model"
PARAMS_DIR = "params"
MASKS_DIR = "masks"
CHECKPOINTS_DIR = "checkpoints"
# Older layouts that still load.
LEGACY_FORMAT = "scaling-params/1"
LEGACY_SHAPE_FILE = "shape.json"
LEGACY_FINETUNED_FORMAT = "scaling-finetuned/1"
LEGACY_FINETUNED_FILE = "finetune.json"
TRAINING_CONFIG_FILE = "config.json"

log = logging.getLogger(__name__)

PROVENANCE_KINDS = ("train", "import-hf", "import-mesh-tf", "finetune", "prune", "quantize")

_EXPECTED = (
    f"a model artifact ({MODEL_FILE} + {PARAMS_DIR}/, from `python -m scaling.convert import-hf`, "
    f"finetuning or compression), a training workdir ({MODEL_FILE} or {TRAINING_CONFIG_FILE}, with "
    f"{CHECKPOINTS_DIR}/) or an older converted checkpoint ({LEGACY_SHAPE_FILE} + {PARAMS_DIR}/)"
)


class ArtifactError(ScalingError):
    """A model directory that cannot be read: truncated or corrupt files, an unknown format, no usable step."""


class NotAModelError(UserError, FileNotFoundError):
    """A path given as a model that is none of the kinds :func:`load` reads."""


class VocabularyMismatchError(UserError):
    """A vocabulary that cannot be the model's: its size or special ids disagree with the model's shape."""


class ArtifactExistsError(UserError, FileExistsError):
    """:func:`save` into a directory that already holds something, without ``overwrite``."""


@dataclasses.dataclass(frozen=True)
class Artifact:
    """A model read from disk: what :func:`load` returns for every kind of model directory.

    ``params`` is the ``nnx.State`` of :func:`abstract_model` (with the task head when ``head`` is set);
    ``provenance["step"]`` is the restored step for a training workdir; ``masks`` (bool arrays shaped like
    ``params``) only for pruned models.
    """

    shape: shapes.Shape
    params: nnx.State
    vocabulary: seqio.Vocabulary | None
    provenance: dict
    head: dict | None
    masks: Any | None
    path: Path

    @property
    def kind(self) -> str:
        return str(self.provenance.get("kind", "unknown"))

    def model(self) -> nnx.Module:
        """The model (T5, Bert, or Bert with its task head) holding the parameters."""
        graphdef, _ = nnx.split(abstract_model(self.shape, self.head))
        return nnx.merge(graphdef, self.params)


# ---------------------------------------------------------------------------------------------- helpers


def abstract_model(shape: shapes.Shape, head: Mapping[str, Any] | None = None) -> nnx.Module:
    """The structure of the model an artifact holds, with ShapeDtypeStruct leaves (float32 parameters)."""
    if not head or shape.is_encoder_decoder:  # T5 finetunes text to text: its `head` only names the task
        return models.abstract(shape)
    from scaling.models import heads

    def make() -> nnx.Module:
        rngs = nnx.Rngs(0)
        return heads.SequenceClassifier(models.build(shape, rngs=rngs), int(head["num_outputs"]), rngs=rngs)

    return nnx.eval_shape(make)


def _single_device(tree: Any) -> Any:
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), tree)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def provenance(kind: str, source: str | os.PathLike, *, step: int | None = None, **fields: Any) -> dict[str, Any]:
    """A provenance record: what made the model (`kind`), from what (`source`), at which step, when."""
    return {"kind": kind, "source": str(source), "step": step, "created": _now(), **fields}


def vocabulary_bytes(vocabulary: Any) -> bytes | None:
    """The serialized sentencepiece model (as trained: without seqio's sentinel pieces) of a seqio vocabulary,
    a path to one, or bytes; None for None."""
    if vocabulary is None:
        return None
    if isinstance(vocabulary, bytes):
        return vocabulary
    if isinstance(vocabulary, (str, os.PathLike)):
        path = Path(vocabulary)
        if not path.is_file():
            raise UserError(f"vocabulary {str(vocabulary)!r} not found: give a sentencepiece .model file")
        return path.read_bytes()
    source = getattr(vocabulary, "sentencepiece_model_file", None)
    if source and "://" not in str(source) and Path(source).is_file():
        return Path(source).read_bytes()
    sp_model = getattr(vocabulary, "sp_model", None)
    if sp_model is None:
        raise UserError(
            f"{type(vocabulary).__name__} is not a sentencepiece vocabulary; a model artifact stores "
            f"the sentencepiece model itself"
        )
    # seqio's copy of the model carries the sentinels as pieces; store the model as trained.
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto.FromString(bytes(sp_model))
    extra = getattr(vocabulary, "extra_ids", 0) or 0
    if extra and all(p.piece.lstrip("▁").startswith("<extra_id_") for p in proto.pieces[len(proto.pieces) - extra :]):
        del proto.pieces[len(proto.pieces) - extra :]
    return proto.SerializeToString()


def as_vocabulary(vocabulary: Any, extra_ids: int = vocab_lib.NUM_EXTRA_IDS) -> seqio.Vocabulary | None:
    """A seqio vocabulary from a vocabulary, a sentencepiece file path, or None."""
    if vocabulary is None or isinstance(vocabulary, seqio.Vocabulary):
        return vocabulary
    path = Path(vocabulary)
    if not path.is_file():
        raise UserError(
            f"vocabulary {str(vocabulary)!r} not found: give a sentencepiece .model file "
            f"(a Hugging Face T5 checkpoint ships it as spiece.model)"
        )
    return seqio.SentencePieceVocabulary(str(path.absolute()), extra_ids=extra_ids, reverse_extra_ids=True)


def _describe_vocabulary(vocabulary: seqio.Vocabulary) -> str:
    path = getattr(vocabulary, "sentencepiece_model_file", None)
    return f"{path} ({vocabulary.vocab_size} ids)" if path else f"{vocabulary.vocab_size} ids"


def check_vocabulary(vocabulary: seqio.Vocabulary, shape: shapes.Shape, where: str) -> None:
    """Refuses (VocabularyMismatchError, a UserError) a vocabulary that cannot be the model's.

    A model embeds its vocabulary's ids rounded up to a multiple of 128 (T5: 32,100 → 32,128), so the
    vocabulary must have at most `shape.vocab_size` ids and at least `shape.vocab_size - 127`; pad, EOS and
    unk must be the project's ids (0, 1, 2). `where` names the model (or the flag) in the message.
    """
    n, m = vocabulary.vocab_size, shape.vocab_size
    what = _describe_vocabulary(vocabulary)
    fix = "pass the model's own sentencepiece file (a Hugging Face T5 checkpoint's spiece.model)"
    if n > m:
        raise VocabularyMismatchError(f"{where}: the vocabulary {what} has more ids than the model embeds ({m}); {fix}")
    if m > 128 * math.ceil(n / 128):
        raise VocabularyMismatchError(
            f"{where}: the model embeds {m} ids but the vocabulary {what} only "
            f"{n} (a model for it would embed {128 * math.ceil(n / 128)}): it is not "
            f"the model's vocabulary; {fix}"
        )
    tokenizer = getattr(vocabulary, "tokenizer", None)
    special = {
        "pad": (tokenizer.pad_id() if tokenizer is not None else vocabulary.pad_id, vocab_lib.PAD_ID),
        "eos": (vocabulary.eos_id, vocab_lib.EOS_ID),
        "unk": (vocabulary.unk_id, vocab_lib.UNK_ID),
    }
    wrong = {name: got for name, (got, want) in special.items() if got != want}
    if wrong:
        raise VocabularyMismatchError(
            f"{where}: the vocabulary {what} has special ids {wrong}, but models here use pad "
            f"{vocab_lib.PAD_ID}, EOS {vocab_lib.EOS_ID}, unk {vocab_lib.UNK_ID}; {fix}"
        )


def shape_from_training_config(config: Mapping[str, Any]) -> shapes.Shape:
    """The shape a training config trains: `model.name` with its switches, vocabulary size and dropout.

    `config` is the trainer's ConfigDict or the dict of a workdir's `config.json`. Without `model.vocab_size`
    the size is the data task's vocabulary rounded up to a multiple of 128. Raises ShapeError (a UserError)
    naming the field.
    """
    model, data = config["model"], config.get("data") or {}
    vocab_size = model.get("vocab_size")
    if not vocab_size:
        from scaling.data import tasks

        vocab_size = 128 * math.ceil(tasks.vocabulary(data["task"]).vocab_size / 128)
    try:
        overrides: dict[str, Any] = {**shapes.parse_switches(model.get("switches", "") or ""), "vocab_size": vocab_size}
    except shapes.ShapeError as e:
        raise shapes.ShapeError(f"config.model.switches: {e}") from None
    if model.get("dropout_rate") is not None:
        overrides["dropout_rate"] = model["dropout_rate"]
    try:
        return shapes.parse(model["name"], **overrides)
    except shapes.ShapeError as e:
        raise shapes.ShapeError(f"config.model: {e}") from None


def _shape_from_record(fields: Mapping[str, Any], where: Path) -> shapes.Shape:
    known = {f.name for f in dataclasses.fields(shapes.Shape)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ArtifactError(
            f"{where}: shape field(s) {unknown} unknown to this version of the code; it was written by a newer one"
        )
    try:
        return shapes.Shape(**fields)
    except TypeError as e:
        raise ArtifactError(f"{where}: the shape record is incomplete ({e})") from None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ArtifactError(f"{path} could not be read ({type(e).__name__}: {e})") from None
    if not isinstance(record, dict):
        raise ArtifactError(f"{path}: expected a JSON object")
    return record


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    tmp.replace(path)


def _descriptor(
    shape: shapes.Shape,
    has_vocabulary: bool,
    extra_ids: int,
    provenance_: Mapping[str, Any],
    head: Mapping[str, Any] | None,
) -> dict[str, Any]:
    prov = dict(provenance_)
    if "kind" not in prov:
        raise ValueError(f"provenance {prov} needs a 'kind' ({', '.join(PROVENANCE_KINDS)}, ...)")
    prov.setdefault("source", None)
    prov.setdefault("step", None)
    prov.setdefault("created", _now())
    return {
        "format": FORMAT,
        "name": shape.name,
        "shape": dataclasses.asdict(shape),
        "vocabulary": VOCABULARY_FILE if has_vocabulary else None,
        "vocabulary_extra_ids": extra_ids if has_vocabulary else None,
        "provenance": prov,
        "head": dict(head) if head else None,
    }


def _encode(record: Mapping[str, Any]) -> bytes:
    return (json.dumps(record, indent=2, default=str) + "\n").encode()


# ------------------------------------------------------------------------------------------------ save


def save(
    directory: str | os.PathLike,
    *,
    shape: shapes.Shape,
    params: Any,
    vocabulary: Any,
    provenance: Mapping[str, Any],
    head: Mapping[str, Any] | None = None,
    masks: Any | None = None,
    overwrite: bool = False,
) -> Path:
    """Writes a model artifact: `model.json`, `vocabulary.model` (when `vocabulary` is not None), orbax
    `params/` (and `masks/`). Returns the directory.

    `params` is the model's nnx.State (or any pytree of arrays of that structure); `vocabulary` a seqio
    sentencepiece vocabulary, a path to a sentencepiece model, its bytes, or None. Everything is written into
    a hidden sibling directory and renamed into place at the end, so a killed save leaves no half artifact.
    An existing non-empty `directory` is refused unless `overwrite`.
    """
    directory = Path(directory).absolute()
    if directory.exists() and not directory.is_dir():
        raise ArtifactExistsError(f"{directory} is a file; choose a directory for the model")
    if directory.is_dir() and any(directory.iterdir()) and not overwrite:
        what = "a model" if any((directory / f).exists() for f in (MODEL_FILE, LEGACY_SHAPE_FILE)) else "files"
        raise ArtifactExistsError(f"{directory} already holds {what}; choose a new directory (or overwrite)")
    stored_vocabulary = vocabulary_bytes(vocabulary)
    extra_ids = getattr(vocabulary, "extra_ids", vocab_lib.NUM_EXTRA_IDS)
    record = _descriptor(shape, stored_vocabulary is not None, extra_ids, provenance, head)
    primary = jax.process_index() == 0
    tmp = directory.with_name(f".{directory.name}.partial")
    if primary:
        directory.parent.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)  # what a killed earlier save left
        tmp.mkdir()
    _sync(f"artifact.save {directory} start")
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(tmp / PARAMS_DIR, params)
        if masks is not None:
            checkpointer.save(tmp / MASKS_DIR, masks)
        checkpointer.wait_until_finished()
    if primary:
        if stored_vocabulary is not None:
            (tmp / VOCABULARY_FILE).write_bytes(stored_vocabulary)
        (tmp / MODEL_FILE).write_bytes(_encode(record))
        old = directory.with_name(f".{directory.name}.replaced")
        if directory.exists():
            if old.exists():
                shutil.rmtree(old)
            directory.rename(old)
        tmp.rename(directory)
        if old.exists():
            shutil.rmtree(old)
    _sync(f"artifact.save {directory} done")
    return directory


def _sync(name: str) -> None:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def describe_workdir(
    workdir: str | os.PathLike,
    *,
    shape: shapes.Shape,
    vocabulary: Any,
    provenance: Mapping[str, Any],
    head: Mapping[str, Any] | None = None,
) -> Path:
    """Writes `model.json` and `vocabulary.model` into a training workdir (process 0; idempotent).

    The trainer calls it when a run starts, so that :func:`load` and every command read the workdir without
    its config; `head` describes a BERT task head in the checkpoints' parameters. A description that is already
    there with the same shape, head and vocabulary is left as it is (so its provenance keeps the first start).
    """
    workdir = Path(workdir).absolute()
    if jax.process_index() != 0:
        return workdir
    workdir.mkdir(parents=True, exist_ok=True)
    stored_vocabulary = vocabulary_bytes(vocabulary)
    extra_ids = getattr(vocabulary, "extra_ids", vocab_lib.NUM_EXTRA_IDS)
    record = _descriptor(shape, stored_vocabulary is not None, extra_ids, {"kind": "train", **provenance}, head)
    model_path, vocabulary_path = workdir / MODEL_FILE, workdir / VOCABULARY_FILE
    if model_path.is_file():
        try:
            old = json.loads(model_path.read_text())
        except ValueError:
            old = {}
        same_vocabulary = (
            vocabulary_path.read_bytes() == stored_vocabulary
            if vocabulary_path.is_file()
            else stored_vocabulary is None
        )
        if (
            old.get("format") == FORMAT
            and old.get("shape") == record["shape"]
            and same_vocabulary
            and old.get("vocabulary") == record["vocabulary"]
            and old.get("head") == record["head"]
        ):
            return workdir
        log.warning("%s describes another model than this run trains; rewriting it", model_path)
    if stored_vocabulary is not None:
        _write_atomically(vocabulary_path, stored_vocabulary)
    elif vocabulary_path.exists():
        vocabulary_path.unlink()
    _write_atomically(model_path, _encode(record))
    return workdir


# ------------------------------------------------------------------------------------------------ load


@dataclasses.dataclass(frozen=True)
class _Found:
    """What a directory holds, before any array is read."""

    layout: str  # "artifact" | "workdir"
    shape: shapes.Shape
    vocabulary: Any  # a path, a seqio vocabulary, or None
    extra_ids: int
    provenance: dict
    head: dict | None
    path: Path


def _find(path: str | os.PathLike) -> _Found:
    path = Path(path).absolute()
    if not path.is_dir():
        raise NotAModelError(f"{path} {'is a file' if path.exists() else 'does not exist'}; expected {_EXPECTED}")
    if (path / MODEL_FILE).is_file():
        return _found_descriptor(path)
    if (path / LEGACY_SHAPE_FILE).is_file():
        return _found_legacy_converted(path)
    if (path / LEGACY_FINETUNED_FILE).is_file():
        return _found_legacy_finetuned(path)
    if (path / TRAINING_CONFIG_FILE).is_file() and (path / CHECKPOINTS_DIR).is_dir():
        return _found_legacy_workdir(path)
    raise NotAModelError(_not_a_model(path))


def _not_a_model(path: Path) -> str:
    names = sorted(p.name for p in path.iterdir())
    listing = ", ".join(names[:8]) + (f", … ({len(names)} entries)" if len(names) > 8 else "") or "nothing"
    hint = ""
    if (path / "config.json").is_file() and any(
        (path / f).exists()
        for f in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "flax_model.msgpack")
    ):
        hint = (
            f"; it looks like a Hugging Face checkpoint: import it first with "
            f"`python -m scaling.convert import-hf {path} DST`"
        )
    elif path.name == CHECKPOINTS_DIR or (path.name.isdigit() and path.parent.name == CHECKPOINTS_DIR):
        workdir = path.parent if path.name == CHECKPOINTS_DIR else path.parent.parent
        hint = f"; pass the training workdir {workdir} instead"
    elif (path / TRAINING_CONFIG_FILE).is_file():
        hint = f"; a training workdir without {CHECKPOINTS_DIR}/ has not saved a checkpoint yet"
    return f"{path} is not a model: it holds {listing}; expected {_EXPECTED}{hint}"


def _found_descriptor(path: Path) -> _Found:
    record = _read_json(path / MODEL_FILE)
    if record.get("format") != FORMAT:
        raise ArtifactError(f"{path / MODEL_FILE}: format {record.get('format')!r}, expected {FORMAT!r}")
    if "shape" not in record:
        raise ArtifactError(f"{path / MODEL_FILE}: no shape")
    shape = _shape_from_record(record["shape"], path / MODEL_FILE)
    layout = "artifact" if (path / PARAMS_DIR).is_dir() else "workdir"
    vocabulary = None
    if record.get("vocabulary"):
        vocabulary = path / record["vocabulary"]
        if not vocabulary.is_file():
            raise ArtifactError(
                f"{path / MODEL_FILE} names the vocabulary {record['vocabulary']}, which is missing from {path}"
            )
    extra_ids = record.get("vocabulary_extra_ids") or vocab_lib.NUM_EXTRA_IDS
    return _Found(
        layout, shape, vocabulary, extra_ids, dict(record.get("provenance") or {}), record.get("head") or None, path
    )


def _found_legacy_converted(path: Path) -> _Found:
    record = _read_json(path / LEGACY_SHAPE_FILE)
    if record.get("format") != LEGACY_FORMAT:
        raise ArtifactError(f"{path / LEGACY_SHAPE_FILE}: format {record.get('format')!r}, expected {LEGACY_FORMAT!r}")
    shape = _shape_from_record(record["shape"], path / LEGACY_SHAPE_FILE)
    source = str(record.get("source", ""))
    kind = "import-mesh-tf" if "model.ckpt" in source else "import"
    return _Found(
        "artifact",
        shape,
        None,
        vocab_lib.NUM_EXTRA_IDS,
        {"kind": kind, "source": source, "step": None, "created": None},
        None,
        path,
    )


def _found_legacy_finetuned(path: Path) -> _Found:
    record = _read_json(path / LEGACY_FINETUNED_FILE)
    if record.get("format") != LEGACY_FINETUNED_FORMAT:
        raise ArtifactError(
            f"{path / LEGACY_FINETUNED_FILE}: format {record.get('format')!r}, expected {LEGACY_FINETUNED_FORMAT!r}"
        )
    shape = _shape_from_record(record["shape"], path / LEGACY_FINETUNED_FILE)
    head = None
    if not shape.is_encoder_decoder:
        try:
            with ocp.StandardCheckpointer() as checkpointer:
                tree = checkpointer.metadata(path / PARAMS_DIR).item_metadata.tree
            head = {"task": record.get("task"), "num_outputs": int(tree["classifier_bias"]["value"].shape[0])}
        except Exception as e:  # orbax raises many types for missing or truncated files
            raise ArtifactError(f"{path / PARAMS_DIR} could not be read ({type(e).__name__}: {e})") from e
    vocabulary = record.get("vocabulary") or vocab_lib.DEFAULT_SPM_PATH
    extra = {k: v for k, v in record.items() if k not in ("format", "shape", "vocabulary", "task")}
    return _Found(
        "artifact",
        shape,
        Path(vocabulary),
        vocab_lib.NUM_EXTRA_IDS,
        {"kind": "finetune", "source": str(path), "step": None, "created": None, "task": record.get("task"), **extra},
        head,
        path,
    )


def _found_legacy_workdir(path: Path) -> _Found:
    config = _read_json(path / TRAINING_CONFIG_FILE)
    try:
        task = config["data"]["task"]
        config["model"]["name"]
    except (KeyError, TypeError):
        raise ArtifactError(
            f"{path / TRAINING_CONFIG_FILE} is not a training config (no model.name / data.task)"
        ) from None
    vocabulary = None
    try:
        from scaling.data import tasks

        vocabulary = tasks.vocabulary(task)
    except (ValueError, KeyError) as e:  # seqio's error for a task that is not registered
        log.warning("%s: the data task %r is not registered (%s); the model has no vocabulary", path, task, e)
    if vocabulary is None and not config["model"].get("vocab_size"):
        raise ArtifactError(
            f"{path}: the shape needs the vocabulary size of the data task {task!r}, which is not registered here"
        )
    try:
        shape = shape_from_training_config(config)
    except shapes.ShapeError as e:
        raise ArtifactError(f"{path / TRAINING_CONFIG_FILE}: {e}") from None
    return _Found(
        "workdir",
        shape,
        vocabulary,
        getattr(vocabulary, "extra_ids", vocab_lib.NUM_EXTRA_IDS),
        {"kind": "train", "source": str(path), "step": None, "created": None},
        None,
        path,
    )


def load_shape(path: str | os.PathLike) -> shapes.Shape:
    """The shape of any model directory :func:`load` reads, without reading its parameters."""
    return _find(path).shape


def _restore(directory: Path, target: Any, partial: bool = False) -> Any:
    """Orbax restore of `directory` onto `target` (ShapeDtypeStructs with shardings); ArtifactError if unreadable."""
    reason = None if (directory / checkpoints.COMMIT_MARKER).exists() else "no commit marker: the save never finished"
    if not directory.is_dir():
        reason = "missing"
    if reason:
        raise ArtifactError(f"{directory} is incomplete ({reason}); write the model again")
    try:
        if partial:
            with ocp.PyTreeCheckpointer() as checkpointer:
                return checkpointer.restore(
                    directory,
                    args=ocp.args.PyTreeRestore(
                        item=target,
                        restore_args=ocp.checkpoint_utils.construct_restore_args(target),
                        partial_restore=True,
                    ),
                )
        with ocp.StandardCheckpointer() as checkpointer:
            return checkpointer.restore(directory, target)
    except Exception as e:  # orbax/tensorstore raise many types for truncated or mismatched files
        raise ArtifactError(f"{directory} could not be restored ({type(e).__name__}: {e})") from e


def _restore_workdir(path: Path, target: Any, masks_target: Any) -> tuple[Any, Any, int]:
    """The parameters (and pruning masks, when the run was masked) of the newest step under `path/checkpoints`
    that reads, and that step."""
    ckpt_dir = path / CHECKPOINTS_DIR
    steps = (
        sorted((int(p.name) for p in ckpt_dir.iterdir() if p.is_dir() and p.name.isdigit()), reverse=True)
        if ckpt_dir.is_dir()
        else []
    )
    if not steps:
        raise ArtifactError(
            f"{path} holds no parameters yet: no {PARAMS_DIR}/ and no checkpoint in "
            f"{CHECKPOINTS_DIR}/ (a run that has not saved one yet, or an incomplete copy)"
        )
    failures = []
    for step in steps:
        step_dir = ckpt_dir / str(step)
        reason = checkpoints.incomplete_reason(step_dir)
        if reason:
            failures.append(f"step {step}: {reason}")
            continue
        try:
            with ocp.PyTreeCheckpointer() as checkpointer:
                masked = "masks" in (checkpointer.metadata(step_dir / "state").item_metadata or {})
            wanted = {"params": target, **({"masks": masks_target} if masked else {})}
            restored = _restore(step_dir / "state", wanted, partial=True)
        except (ArtifactError, OSError, ValueError) as e:
            failures.append(f"step {step}: {e}")
            continue
        if failures:
            log.warning("%s: newer checkpoints are unusable (%s); using step %d", ckpt_dir, failures, step)
        return restored["params"], restored.get("masks"), step
    raise ArtifactError(f"no usable checkpoint in {ckpt_dir}: {failures}")


def load(path: str | os.PathLike, *, vocabulary: Any = None, abstract_params: Any = None) -> Artifact:
    """The model in any model directory: an artifact, a training workdir (its newest readable step), an older
    converted checkpoint or finetuned run.

    Parameters land on the default device, float32, unless `abstract_params` gives the target tree of
    ShapeDtypeStructs with shardings (as a run places them). A target without the task head of a finetuned
    BERT restores its backbone only (the returned `head` is then None). `vocabulary` (a seqio vocabulary or a
    sentencepiece file) replaces the stored one and must fit the model (:func:`check_vocabulary`).
    Raises NotAModelError (a UserError) for a path that is no model, ArtifactError for unreadable files.
    """
    found = _find(path)
    head = found.head
    if vocabulary is not None:
        vocabulary = as_vocabulary(vocabulary)
        check_vocabulary(vocabulary, found.shape, f"--vocabulary for {found.path}")
    else:
        vocabulary = as_vocabulary(found.vocabulary, found.extra_ids)
        if vocabulary is not None and vocabulary.vocab_size > found.shape.vocab_size:
            raise ArtifactError(
                f"{found.path}: the stored vocabulary {_describe_vocabulary(vocabulary)} has more "
                f"ids than the model embeds ({found.shape.vocab_size})"
            )
    partial = False
    if abstract_params is None:
        target = _single_device(nnx.split(abstract_model(found.shape, head))[1])
    else:
        target = abstract_params
        if head and not found.shape.is_encoder_decoder and "backbone" not in _top_keys(abstract_params):
            target, partial, head = {"backbone": abstract_params}, True, None
    prov = dict(found.provenance)
    masks = None
    masks_target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, jnp.bool_, sharding=x.sharding), target)
    if found.layout == "workdir":
        params, masks, prov["step"] = _restore_workdir(found.path, target, masks_target)
    else:
        params = _restore(found.path / PARAMS_DIR, target, partial=partial)
        if (found.path / MASKS_DIR).is_dir():
            masks = _restore(found.path / MASKS_DIR, masks_target, partial=partial)
    if partial:
        params, masks = params["backbone"], None if masks is None else masks["backbone"]
    return Artifact(
        shape=found.shape,
        params=params,
        vocabulary=vocabulary,
        provenance=prov,
        head=head,
        masks=masks,
        path=found.path,
    )


def _top_keys(tree: Any) -> set:
    try:
        return set(tree.keys())
    except AttributeError:
        return set()


# ------------------------------------------------------------------- compatibility for unported callers

__all__ = [
    "Artifact",
    "ArtifactError",
    "ArtifactExistsError",
    "NotAModelError",
    "VocabularyMismatchError",
    "abstract_model",
    "as_vocabulary",
    "check_vocabulary",
    "describe_workdir",
    "load",
    "load_shape",
    "provenance",
    "save",
    "shape_from_training_config",
    "vocabulary_bytes",
]
