"""bench/train_step.py on tiny shapes: rows are complete, and both sides train the same objective on the same batch."""

import math
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import train_step  # noqa: E402

from scaling import profile, trainer  # noqa: E402
from scaling.convert import hf  # noqa: E402

TINY = {"t5": "tiny-nl1-dm32-ff64-nh2-kv16", "bert": "bert-tiny-nl1-dm32-ff64-nh2"}
NUMBERS = ("ours_tokens_per_second", "peer_tokens_per_second", "ratio", "ratio_min", "ratio_max",
           "ours_seconds_per_step", "peer_seconds_per_step", "ours_loss_at_init", "peer_loss_at_init")


def tiny(family: str):
    return train_step.config_for(TINY[family], batch=2, inputs=16, targets=4)


@pytest.fixture(scope="module")
def rows():
    return {family: train_step.compare(tiny(family), rounds=1, steps=1, warmup=1) for family in TINY}


@pytest.mark.parametrize("family", TINY)
def test_rows_carry_positive_finite_figures(rows, family):
    row = rows[family]
    assert set(train_step.COLUMNS) | {"optimizer", "dtype", "rounds", "steps", "peer"} <= row.keys()
    assert all(math.isfinite(row[k]) and row[k] > 0 for k in NUMBERS)
    assert (row["family"], row["batch"], row["inputs_length"], row["rounds"], row["steps"]) == (family, 2, 16, 1, 1)
    assert row["ratio_min"] <= row["ratio"] <= row["ratio_max"]
    tokens = 2 * (16 + (4 if family == "t5" else 0))
    assert row["ours_tokens_per_second"] == pytest.approx(tokens / row["ours_seconds_per_step"])
    assert row["dtype"] == "float32" and row["peer"].startswith("transformers ")


@pytest.mark.parametrize("family", TINY)
def test_both_sides_start_at_the_uniform_loss(rows, family):
    """Random init predicts near-uniformly, so a mean token cross-entropy on both sides is about log(vocab)."""
    vocab = trainer.build_run(tiny(family)).shape.vocab_size
    for side in ("ours", "peer"):
        assert rows[family][f"{side}_loss_at_init"] == pytest.approx(math.log(vocab), rel=0.1)


def test_t5_peer_with_our_weights_computes_our_loss():
    """Same weights, same batch: transformers' loss equals ours, so inputs, labels and the mean agree exactly."""
    run = trainer.build_run(tiny("t5"))
    params = trainer.init_state(run)["params"]
    batch = profile.synthetic_batch(run)
    aux = jax.jit(trainer.eval_fn(run))(params, batch)
    model = train_step.peer_model(run.shape)
    missing, unexpected = model.load_state_dict(
        {k: torch.tensor(v) for k, v in hf.hf_tensors(nnx.merge(run.graphdef, params)).items()}, strict=False)
    assert not unexpected and set(missing) <= {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight",
                                               "lm_head.weight"}  # tied to shared.weight
    with torch.no_grad():
        loss = model(**train_step.peer_inputs(run.shape, batch)).loss.item()
    assert loss == pytest.approx(float(aux["loss_sum"] / aux["weight_sum"]), rel=1e-4)


def test_bert_peer_labels_are_our_masked_positions():
    run = trainer.build_run(tiny("bert"))
    batch = profile.synthetic_batch(run)
    labels = train_step.peer_inputs(run.shape, batch)["labels"].numpy()
    masked = np.asarray(batch["encoder_loss_weights"]) > 0
    assert np.array_equal(labels != -100, masked)
    assert np.array_equal(labels[masked], np.asarray(batch["encoder_target_tokens"])[masked])


def test_shapes_the_peer_cannot_express_are_refused():
    with pytest.raises(ValueError, match="cannot express"):
        train_step.peer_model(trainer.build_run(train_step.config_for("crammed-bert-nl1-dm32-ff64-nh2", batch=2,
                                                                      inputs=16, targets=4)).shape)


def test_step_profile_splits_the_step_and_names_its_matmuls():
    import step_profile

    run = trainer.build_run(tiny("t5"))
    state, batch = trainer.init_state(run), profile.synthetic_batch(run)
    compiled = trainer.compile_steps(run, state, batch)
    parts = step_profile.part_rows(run, state, batch, compiled, peak=1e11, repeats=1)
    assert [p["part"] for p in parts] == ["forward", "forward+backward", "full step (+ optimizer)"]
    assert all(p["seconds"] > 0 and p["fraction_of_peak"] > 0 for p in parts)
    ops = step_profile.op_rows(run, trainer.init_state(run), batch, compiled, top=50)
    assert ops and any(op["matmul"].startswith("contract lhs") for op in ops)
    assert all(op["milliseconds"] >= 0 and op["calls"] >= 1 and op["output"].startswith(("f32", "(")) for op in ops)
