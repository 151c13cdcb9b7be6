"""Shape names, presets and validation against Scale Efficiently's Tables 1 and 4."""

import csv
import dataclasses
import json
from importlib import resources

import pytest

from scaling import accounting, shapes
from scaling.shapes import __main__ as shapes_cli


def reference(name: str) -> list[dict]:
    text = resources.files("scaling").joinpath("reference", name).read_text()
    return list(csv.DictReader(line for line in text.splitlines() if not line.startswith("#")))


@pytest.mark.parametrize(
    "spelling,canonical",
    [
        ("small_nl24", "small-nl24"),
        ("small-nl24", "small-nl24"),
        ("NL32-XL", "xl-nl32"),
        ("NL16-SM", "small-nl16"),
        ("DM2K-BA", "base-dm2k"),
        ("base-ff2k", "base-ff2k"),
        ("small-el16-dl4", "small-el16-dl4"),
        ("Small 16L", "small-nl16"),
        ("Mini-8L", "mini-nl8"),
        ("Small 32EL", "small-el32"),
        ("Base 36L", "base-nl36"),
        ("XL 32L", "xl-nl32"),
        ("small-el8-dl8", "small-nl8"),
        ("small-nl6", "small"),
        ("tiny-sh-skv", "tiny-sh-skv"),
        ("base-kv128-nh8", "base-nh8-kv128"),
        ("small-v1_1", "small-v1_1"),
        ("bert-base-nl6", "bert-base-nl6"),
        ("roberta-l12-h768", "roberta-l12-h768"),
        ("crammed-bert", "crammed-bert"),
        ("bert_large", "bert-large"),
    ],
)
def test_names_parse_to_canonical_and_round_trip(spelling, canonical):
    shape = shapes.parse(spelling)
    assert shape.name == canonical
    assert shapes.parse(shape.name) == shape


def test_knobs_change_the_fields_they_name():
    s = shapes.parse("base-el16-dl4-dm1k-ff2k-nh8-kv32-sh-skv")
    assert (s.num_encoder_layers, s.num_decoder_layers, s.d_model, s.d_ff, s.num_heads, s.d_kv) == (
        16,
        4,
        1024,
        2048,
        8,
        32,
    )
    assert s.shared_heads and s.tied_kv and s.num_kv_heads == 1
    assert shapes.parse("base-ff2000").d_ff == 2000  # plain numbers are literal, k = 1024


def test_bert_heads_follow_width():
    s = shapes.parse("bert-base-dm1536")
    assert (s.num_heads, s.d_kv) == (12, 128)
    with pytest.raises(shapes.ShapeError, match="does not divide"):
        shapes.parse("bert-base-nh7")


@pytest.mark.parametrize(
    "bad,message",
    [
        ("huge", "no preset"),
        ("small-nl24-el8", "contradicts"),
        ("small-nl4-nl8", "twice"),
        ("small-xx3", "unknown knob"),
        ("bert-base-dl4", "encoder-only"),
        ("bert-base-kv32", "KV is for T5"),
        ("", "empty"),
    ],
)
def test_bad_names_fail_with_what_is_accepted(bad, message):
    with pytest.raises(shapes.ShapeError, match=message):
        shapes.parse(bad)


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("num_heads", 0, "num_heads must be a positive integer"),
        ("d_model", -4, "d_model"),
        ("vocab_size", 90, "sentinels"),
        ("ffn_gating", "odd", "ffn_gating must be one of"),
        ("dropout_rate", 1.5, "dropout_rate"),
        ("num_decoder_layers", 0, "num_decoder_layers"),
    ],
)
def test_invalid_fields_fail_before_any_array(field, value, message):
    with pytest.raises(shapes.ShapeError, match=message):
        dataclasses.replace(shapes.parse("small"), **{field: value})


def test_split_gating_needs_even_ffn():
    with pytest.raises(shapes.ShapeError, match="even"):
        dataclasses.replace(shapes.parse("crammed-bert"), d_ff=3071)


def test_table1_param_counts_within_rounding():
    for row in reference("scale_efficiently_table1_shapes.csv"):
        s = shapes.parse(row["model"])
        assert (s.num_encoder_layers, s.num_decoder_layers, s.d_ff, s.d_model, s.d_kv, s.num_heads) == tuple(
            int(row[k]) for k in ("num_encoder_layers", "num_decoder_layers", "d_ff", "d_model", "d_kv", "num_heads")
        )
        printed = row["params_paper"]
        paper = float(printed[:-1]) * {"M": 1e6, "B": 1e9}[printed[-1]]
        tolerance = 0.10 if s.preset == "xxxl" else 0.05
        assert abs(accounting.param_counts(s).total / paper - 1) < tolerance, row["model"]


def test_table4_param_counts_within_two_percent():
    rows = reference("scale_efficiently_table4.csv")
    assert len(rows) == 14
    for row in rows:
        counted = accounting.param_counts(shapes.parse(row["model"])).total
        assert abs(counted / float(row["params"]) - 1) < 0.02, (row["model"], counted)


def test_released_t5_v1_0_checkpoint_sizes_exact():
    released = {"tiny": 15_570_688, "mini": 31_220_480, "small": 60_506_624, "base": 222_903_552, "large": 737_668_096}
    for name, count in released.items():
        assert accounting.param_counts(shapes.parse(name)).total == count


def test_li_grid_and_cramming_presets():
    for depth in shapes.LI_DEPTHS:
        for width in shapes.LI_WIDTHS:
            s = shapes.parse(f"roberta-l{depth}-h{width}")
            assert (s.num_encoder_layers, s.d_model, s.d_ff, s.num_heads, s.d_kv) == (
                depth,
                width,
                4 * width,
                width // 64,
                64,
            )
    c = shapes.parse("crammed-bert")
    assert (c.num_encoder_layers, c.norm_position, c.ffn_gating, c.position_embedding) == (
        16,
        "pre",
        "split",
        "scaled-sinusoidal",
    )
    assert not (c.attention_bias or c.linear_bias or c.decoder_bias or c.head_transform)
    assert c.sparse_prediction and c.final_norm and c.embedding_norm and c.vocab_size == 2**15


def test_cli_json(capsys):
    assert shapes_cli.main(["small_nl24", "NL32-XL", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in records] == ["small-nl24", "xl-nl32"]
    required = {
        "name",
        "num_encoder_layers",
        "num_decoder_layers",
        "d_model",
        "d_ff",
        "num_heads",
        "d_kv",
        "vocab_size",
        "params",
        "params_non_embedding",
        "flops_per_token_train",
    }
    assert required <= records[0].keys()
    # small (60,506,624) plus 18 encoder layers (3,146,752 each) and 18 decoder layers (4,195,840 each).
    assert records[0]["num_encoder_layers"] == 24
    assert records[0]["params"] == 60_506_624 + 18 * (3_146_752 + 4_195_840)


def test_cli_rejects_unknown_name(capsys):
    assert shapes_cli.main(["small-zz9"]) == 2
    assert "unknown knob" in capsys.readouterr().err


def test_switches_parse_typed_and_refuse_knobs_and_unknown_fields():
    assert shapes.parse_switches(" norm_position=pre, linear_bias=False,norm_eps=1e-6,relpos_buckets=16 ") == {
        "norm_position": "pre",
        "linear_bias": False,
        "norm_eps": 1e-6,
        "relpos_buckets": 16,
    }
    assert shapes.parse_switches("") == {}
    with pytest.raises(shapes.ShapeError, match="set by the shape name"):
        shapes.parse_switches("d_model=128")
    with pytest.raises(shapes.ShapeError, match="not a Shape field; switches are"):
        shapes.parse_switches("norm_pos=pre")
    with pytest.raises(shapes.ShapeError, match="use true or false"):
        shapes.parse_switches("linear_bias=yes")
    with pytest.raises(shapes.ShapeError, match="write FIELD=VALUE"):
        shapes.parse_switches("sparse_prediction")
    crammed = shapes.parse("crammed-bert", **shapes.parse_switches("norm_position=post,linear_bias=true"))
    assert (crammed.norm_position, crammed.linear_bias, crammed.name) == ("post", True, "crammed-bert")


def test_config_switches_reach_the_trained_shape_and_bad_ones_are_named():
    from scaling.training import trainer

    config = trainer.default_config()
    config.model.name, config.data.task = "bert-mini", "sotu_mlm"
    config.model.switches = "norm_position=pre,sparse_prediction=true"
    shape = trainer.resolve_shape(config)
    assert (shape.norm_position, shape.sparse_prediction, shape.num_encoder_layers) == ("pre", True, 4)
    config.model.switches = "norm_position=middle"
    with pytest.raises(trainer.ConfigError, match=r"config.model.switches = 'norm_position=middle'.*'pre', 'post'"):
        trainer.validate(config)
