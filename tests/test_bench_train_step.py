"""bench/train_step.py on tiny shapes: rows are complete, and both sides train the same objective on the same batch."""

import math
import re
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import train_step

from scaling.convert import hf
from scaling.experiments import profile
from scaling.training import trainer

TINY = {"t5": "tiny-nl1-dm32-ff64-nh2-kv16", "bert": "bert-tiny-nl1-dm32-ff64-nh2"}
NUMBERS = (
    "ours_tokens_per_second",
    "peer_tokens_per_second",
    "ratio",
    "ratio_min",
    "ratio_max",
    "ours_seconds_per_step",
    "peer_seconds_per_step",
    "ours_loss_at_init",
    "peer_loss_at_init",
)


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
        {k: torch.tensor(v) for k, v in hf.hf_tensors(nnx.merge(run.graphdef, params)).items()}, strict=False
    )
    assert not unexpected and set(missing) <= {
        "encoder.embed_tokens.weight",
        "decoder.embed_tokens.weight",
        "lm_head.weight",
    }  # tied to shared.weight
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
        train_step.peer_model(
            trainer.build_run(
                train_step.config_for("crammed-bert-nl1-dm32-ff64-nh2", batch=2, inputs=16, targets=4)
            ).shape
        )


def test_step_profile_splits_the_step_and_names_its_matmuls():
    import step_profile

    run = trainer.build_run(tiny("t5"))
    state, batch = trainer.init_state(run), profile.synthetic_batch(run)
    compiled = trainer.compile_steps(run, state, batch)
    parts = step_profile.part_rows(run, state, batch, compiled, peak=1e11, repeats=1)
    assert [p["part"] for p in parts] == [
        "forward",
        "forward+backward",
        "optimizer update alone",
        "full step (+ optimizer)",
    ]
    assert all(p["seconds"] > 0 for p in parts)
    assert all(p["fraction_of_peak"] > 0 for p in parts if p["part"] != "optimizer update alone")
    ops = step_profile.traced_ops(run, trainer.init_state(run), batch, compiled)
    rows = step_profile.op_rows(ops, top=50)
    assert rows and any(op["matmul"].startswith(("NN", "NT", "TN")) for op in rows)
    # Any op can rank high when the OS pauses it, so outputs are checked as HLO shapes, not as float32 ones.
    assert all(
        op["milliseconds"] >= 0 and op["calls"] >= 1 and re.match(r"\(|(f32|s32|u32|pred)\[", op["output"])
        for op in rows
    )

    matmuls = step_profile.matmul_rows(ops, peak=1e11, repeats=1)
    each = [m for m in matmuls if not m["matmul"].startswith("all ")]
    per_form, total = matmuls[len(each) : -1], matmuls[-1]
    assert {m["form"] for m in each} <= {"NN", "NT", "TN", "TT", "batched"} and "TN" in {m["form"] for m in each}
    assert all(m["alone_ms"] > 0 and m["calls"] >= 1 for m in each)
    assert [m["matmul"] for m in per_form] == [f"all {f}" for f in sorted({m["form"] for m in each})]
    assert total["matmul"] == "all matmuls" and total["alone_ms"] == pytest.approx(sum(m["alone_ms"] for m in each))
    assert sum(m["gflop"] for m in per_form) == pytest.approx(total["gflop"])
    # The matmuls XLA compiled, counted by the trace, are exactly the FLOPs `scaling.accounting` charges a step.
    assert total["gflop"] * 1e9 == pytest.approx(run.flops_per_example * run.config.batch_size, rel=1e-9)


def test_step_profile_reads_matmuls_from_optimized_hlo():
    import step_profile

    hlo = """
%fused_computation.65 (param_0.87: f32[1024,2048], param_1.105: f32[512,2048]) -> f32[1024,512] {
  %param_0.87 = f32[1024,2048]{1,0} parameter(0)
  %param_1.105 = f32[512,2048]{1,0} parameter(1)
  ROOT %dot_general.229 = f32[1024,512]{1,0} dot(%param_0.87, %param_1.105), lhs_contracting_dims={1}, \
rhs_contracting_dims={1}, metadata={op_name="dot_general"}
}
  %x.1 = f32[8,8,128,128]{3,2,1,0} parameter(0)
  %y.2 = f32[8,8,128,64]{3,2,1,0} parameter(1)
  %dot.7 = f32[8,8,128,64]{3,2,1,0} dot(%x.1, %y.2), lhs_batch_dims={0,1}, lhs_contracting_dims={3}, \
rhs_batch_dims={0,1}, rhs_contracting_dims={2}
  %a.3 = f32[1024,512]{1,0} parameter(2)
  %b.4 = f32[1024,2048]{1,0} parameter(3)
  %dot.132 = f32[512,2048]{1,0} dot(%a.3, %b.4), lhs_contracting_dims={0}, rhs_contracting_dims={0}
"""
    body = hlo[hlo.index("%fused") : hlo.index("}\n") + 1]
    nt = step_profile.parse_matmul(body, hlo)
    assert (nt.lhs, nt.rhs, nt.form, nt.flops) == ((1024, 2048), (512, 2048), "NT", 2 * 1024 * 512 * 2048)
    batched = step_profile.parse_matmul(hlo[hlo.index("  %dot.7") :], hlo)
    assert batched.form == "batched" and batched.flops == 2 * 8 * 8 * 128 * 64 * 128
    tn = step_profile.parse_matmul(hlo[hlo.index("  %dot.132") :], hlo)
    assert (tn.form, tn.flops, tn.dimension_numbers) == ("TN", 2 * 512 * 2048 * 1024, (((0,), (0,)), ((), ())))
    assert step_profile.parse_matmul("  %add.1 = f32[4]{0} add(%p, %q)", hlo) is None
