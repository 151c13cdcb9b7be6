"""The compression experiment end to end on a finetuned tiny BERT: table, error statistics, masks, resume, errors."""

import csv

import jax
import numpy as np
import pytest
from test_finetune import pretrained, small_config  # noqa: F401  (pretrained is a fixture)
from test_trainer import quiet

from scaling import compress as compress_command
from scaling.analysis import runs
from scaling.downstream import compress, finetune
from scaling.training import artifact


@pytest.fixture(scope="module")
def finetuned(pretrained, tmp_path_factory):  # noqa: F811  the imported fixture, by name
    workdir = tmp_path_factory.mktemp("finetuned")
    finetune.run(small_config(pretrained["bert"]), workdir, print_fn=quiet)
    return workdir / "sms_spam" / "seed_0"


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_sweep_writes_the_compression_table_and_resumes(finetuned, tmp_path):
    settings = compress.SweepSettings(bits=(8, 2), sparsities=(0.3, 0.6), combined_bits=(4,), recovery_epochs=1.0)
    path = compress.sweep(finetuned, tmp_path, settings, max_eval_examples=40, print_fn=quiet)
    table = runs.load_compression(path)
    assert list(zip(table["method"], table["level"].astype(str))) == [
        ("none", "32"),
        ("quantize", "8"),
        ("quantize", "2"),
        ("prune", "0.3"),
        ("prune+quantize", "0.3/4"),
        ("prune", "0.6"),
        ("prune+quantize", "0.6/4"),
    ]
    n = int(table["params"][0])
    by = {(m, str(lv)): row for m, lv, row in zip(table["method"], table["level"], table.to_dict("records"))}
    assert by[("none", "32")]["memory_bits"] == 32 * n
    assert by[("quantize", "2")]["memory_bits"] < by[("quantize", "8")]["memory_bits"] < 32 * n
    for level in (0.3, 0.6):
        kept = by[("prune", str(level))]["nonzero_params"]
        assert kept <= n - round(level * n)  # exactly round(level·n) weights are masked, some others may be 0
        assert by[("prune+quantize", f"{level}/4")]["nonzero_params"] <= kept  # quantizing keeps pruned zeros
    assert table["score"].between(-1, 1).all()

    errors = read(tmp_path / compress.ERRORS_FILE)
    types = {r["module_type"] for r in errors if r["method"] == "quantize" and r["level"] == "2"}
    assert {"attention_in", "attention_out", "ffn_in", "ffn_out", "embedding"} <= types
    two, eight = (
        {r["module_type"]: float(r["mean"]) for r in errors if r["method"] == "quantize" and r["level"] == b}
        for b in ("2", "8")
    )
    assert all(two[t] > eight[t] for t in types)  # fewer bits, larger error

    level = artifact.load(tmp_path / "pruned" / "0.6")  # a recovery run is a masked training workdir
    assert level.masks is not None
    for p, m in zip(jax.tree.leaves(level.params), jax.tree.leaves(level.masks)):
        assert not np.any(np.asarray(p)[~np.asarray(m)])

    rows_before = (tmp_path / compress.TABLE_FILE).read_text()
    compress.sweep(finetuned, tmp_path, settings, max_eval_examples=40, print_fn=quiet)
    assert (tmp_path / compress.TABLE_FILE).read_text() == rows_before  # resumed: nothing recomputed


def test_recovery_finetuning_keeps_pruned_weights_at_zero(finetuned, tmp_path):
    model = finetune.load_finetuned(finetuned)
    config = small_config(finetuned)
    session = finetune.make_session(model.shape, model.vocabulary, model.task, config)
    pruned, masks = compress.magnitude_prune(model.params, 0.5)
    trained, _, steps = finetune.finetune(
        session, tmp_path, seed=0, steps=3, params=lambda: pruned, masks=masks, print_fn=quiet
    )
    trained = jax.device_get(trained)
    assert steps == 3 and compress.nonzero_params(trained) <= compress.count_params(trained) - round(
        0.5 * compress.count_params(trained)
    )
    changed = [not np.allclose(a, b) for a, b in zip(jax.tree.leaves(trained), jax.tree.leaves(pruned))]
    assert any(changed)  # it did train the kept weights


@pytest.mark.parametrize(
    "args, message",
    [
        (["--sparsities=0.3,1.0"], "sparsity"),
        (["--sparsities=0.6,0.3"], "must increase"),
        (["--bits=0"], "bits"),
        (["--bits=8,four"], "--bits='8,four': use comma-separated int values"),
        (["--recovery_target=1.5"], "recovery_target"),
    ],
)
def test_cli_rejects_bad_levels(finetuned, tmp_path, capsys, args, message):
    assert compress_command.main([str(finetuned), f"--out={tmp_path}", *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / compress.TABLE_FILE).exists()  # refused before anything was written


def test_cli_needs_a_task_head(pretrained, tmp_path, capsys):  # noqa: F811  the imported fixture
    assert compress_command.main([str(pretrained["t5"]), f"--out={tmp_path}"]) == 2
    assert "no task head" in capsys.readouterr().err
