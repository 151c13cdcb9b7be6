"""Mesh TF T5 import: TF checkpoints written here with Mesh TF's variable names, checked against transformers.

The peer is a random transformers T5; its weights are renamed and re-laid-out the Mesh TF way (combined
heads, [in, out] kernels, [heads, buckets] position tables, Adafactor slots beside them), so the imported
model must reproduce transformers' logits. SH / SKV, which transformers cannot hold, are checked through a
transformers model whose heads share one key/value projection (tiled), which computes the same function.
"""

from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
torch = pytest.importorskip("torch")
from test_convert_hf import V1_0, V1_1, hf_logits, inputs, ours_logits, random_hf

from scaling.convert import ConversionError, mesh_tf
from scaling.convert.__main__ import import_mesh_tf
from scaling.data import vocab
from scaling.training import artifact

GIN = """\
import mesh_tensorflow.transformer.transformer_layers

# Macros:
# ==============================================================================
d_ff = {d_ff}
d_kv = {d_kv}
d_model = {d_model}
dropout_rate = 0.0
num_heads = {num_heads}
num_layers = {num_layers}

# Parameters for Bitransformer:
Bitransformer.shared_embedding = True

# Parameters for decoder/DenseReluDense:
decoder/DenseReluDense.activation = {activation}
decoder/DenseReluDense.hidden_size = %d_ff
encoder/DenseReluDense.activation = {activation}
encoder/DenseReluDense.hidden_size = %d_ff
decoder/EncDecAttention.relative_attention_type = None
decoder/make_layer_stack.layers = \\
    [@mesh_tensorflow.transformer.transformer_layers.SelfAttention,
     @mesh_tensorflow.transformer.transformer_layers.EncDecAttention,
     @mesh_tensorflow.transformer.transformer_layers.DenseReluDense]
decoder/make_layer_stack.num_layers = {num_decoder_layers}
encoder/make_layer_stack.num_layers = %num_layers
run.sequence_length = {{'inputs': 512, 'targets': 128}}
SelfAttention.key_value_size = %d_kv
SelfAttention.num_heads = %num_heads
SelfAttention.num_memory_heads = {memory_heads}
SelfAttention.relative_attention_num_buckets = 32
SelfAttention.relative_attention_type = 'bias_shared'
SelfAttention.shared_kv = {shared_kv}
sublayer_rms_norm.epsilon = 1e-06
decoder/Unitransformer.d_model = %d_model
decoder/Unitransformer.shared_embedding_and_softmax_weights = {tied}
encoder/Unitransformer.d_model = %d_model
"""


def mesh_tf_variables(
    peer, norm: str = "rms_norm", shared_heads: bool = False, tied_kv: bool = False
) -> dict[str, np.ndarray]:
    """The peer's weights under Mesh TF names and layouts."""
    heads, d_kv = peer.config.num_heads, peer.config.d_kv
    out = {}
    for name, w in peer.state_dict().items():
        w = w.numpy()
        parts = name.split(".")
        if name == "shared.weight":
            out["shared/embedding"] = w
        elif name == "lm_head.weight":
            if not peer.config.scale_decoder_outputs:
                out["decoder/logits/kernel"] = w.T
        elif parts[1] == "final_layer_norm":
            out[f"{parts[0]}/{'rms_norm' if norm == 'rms_norm' else 'final_layer_norm'}/scale"] = w
        elif parts[1] == "block":
            prefix = f"{parts[0]}/block_{int(parts[2]):03d}/layer_{int(parts[4]):03d}"
            if parts[5] == "layer_norm":
                out[f"{prefix}/{norm}/scale"] = w
            elif parts[6] == "relative_attention_bias":
                out[f"{prefix}/{parts[5]}/relative_attention_bias"] = w.T
            elif parts[5] == "DenseReluDense":
                out[f"{prefix}/DenseReluDense/{parts[6]}/kernel"] = w.T
            elif parts[6] in ("k", "v") and (shared_heads or tied_kv):
                kernel = w.T[:, :d_kv] if shared_heads else w.T
                if tied_kv:
                    if parts[6] == "k":
                        out[f"{prefix}/{parts[5]}/kv"] = kernel
                else:
                    out[f"{prefix}/{parts[5]}/{parts[6]}"] = kernel
            else:
                out[f"{prefix}/{parts[5]}/{parts[6]}"] = w.T
    assert heads * d_kv == out["encoder/block_000/layer_000/SelfAttention/q"].shape[1]
    return out


def write_checkpoint(directory: Path, variables: dict[str, np.ndarray], gin: str, step: int = 524288) -> None:
    """A TF1-style checkpoint (as Mesh TF writes) plus Adafactor slots and the operative config."""
    directory.mkdir(parents=True)
    with_slots = dict(variables)
    for name, value in variables.items():
        if value.ndim == 2:
            with_slots[f"{name}_slot_vr"] = np.ones(value.shape[:1], np.float32)
            with_slots[f"{name}_slot_vc"] = np.ones(value.shape[1:], np.float32)
    with tf.Graph().as_default():
        tf_vars = {n: tf.compat.v1.Variable(v.astype(np.float32), name=n) for n, v in with_slots.items()}
        tf_vars["global_step"] = tf.compat.v1.Variable(np.int64(step), name="global_step")
        saver = tf.compat.v1.train.Saver(var_list=tf_vars)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, str(directory / "model.ckpt"), global_step=step)
    (directory / "operative_config.gin").write_text(gin)


def gin_for(
    config: dict, *, gated: bool = False, tied: bool = True, memory_heads: int = 0, shared_kv: bool = False
) -> str:
    return GIN.format(
        **config,
        activation="['gelu', 'linear']" if gated else "'relu'",
        tied=tied,
        memory_heads=memory_heads,
        shared_kv=shared_kv,
    )


def tile_shared_kv(peer, tied_kv: bool) -> None:
    """Makes every head use head 0's key/value projection (and values = keys when `tied_kv`)."""
    d_kv, heads = peer.config.d_kv, peer.config.num_heads
    with torch.no_grad():
        for name, p in peer.named_parameters():
            if name.endswith((".k.weight", ".v.weight")):
                source = dict(peer.named_parameters())[name.replace(".v.weight", ".k.weight")] if tied_kv else p
                p.copy_(source[:d_kv].repeat(heads, 1))


def test_import_matches_transformers(tmp_path):
    peer = random_hf(tmp_path / "hf", **V1_0)
    write_checkpoint(tmp_path / "mtf", mesh_tf_variables(peer), gin_for(V1_0))
    model, shape = mesh_tf.load_t5(tmp_path / "mtf")
    assert shape.name == "tiny-el2-dl1-dm32-ff48-nh3-kv8" and shape.tie_embeddings
    enc, dec = inputs(V1_0["vocab_size"])
    np.testing.assert_allclose(ours_logits(model, enc, dec), hf_logits(peer, enc, dec), atol=1e-4, rtol=0)

    # The command's import writes a model artifact with its provenance; no sentencepiece file beside the
    # checkpoint means no vocabulary, and one that cannot be the model's is refused.
    out = import_mesh_tf(tmp_path / "mtf/model.ckpt-524288", tmp_path / "ours")
    loaded = artifact.load(out)
    assert loaded.shape == shape and loaded.vocabulary is None
    assert loaded.provenance["kind"] == "import-mesh-tf" and loaded.provenance["step"] == 524288
    np.testing.assert_allclose(ours_logits(loaded.model(), enc, dec), hf_logits(peer, enc, dec), atol=1e-4, rtol=0)
    with pytest.raises(artifact.VocabularyMismatchError, match="more ids than the model embeds"):
        import_mesh_tf(tmp_path / "mtf", tmp_path / "refused", vocabulary=vocab.DEFAULT_SPM_PATH)


def test_gated_untied_shared_heads_and_tied_kv(tmp_path):
    """v1.1 style with T5's older norm names, one key/value head (SH) and keys = values (SKV)."""
    peer = random_hf(tmp_path / "hf", **V1_1)
    tile_shared_kv(peer, tied_kv=True)
    variables = mesh_tf_variables(peer, norm="layer_norm", shared_heads=True, tied_kv=True)
    write_checkpoint(tmp_path / "mtf", variables, gin_for(V1_1, gated=True, tied=False, memory_heads=1, shared_kv=True))
    model, shape = mesh_tf.load_t5(tmp_path / "mtf/model.ckpt-524288")
    assert shape.name == "tiny-el1-dl2-dm32-ff40-kv16-sh-skv-v1_1" and shape.num_kv_heads == 1
    enc, dec = inputs(V1_1["vocab_size"])
    np.testing.assert_allclose(ours_logits(model, enc, dec), hf_logits(peer, enc, dec), atol=1e-4, rtol=0)


def test_bad_checkpoints_fail_with_the_variable_or_binding_named(tmp_path):
    peer = random_hf(tmp_path / "hf", **V1_0)
    variables = mesh_tf_variables(peer)
    with pytest.raises(FileNotFoundError, match="no readable TF checkpoint"):
        mesh_tf.load_t5(tmp_path / "nowhere")

    def attempt(name: str, gin: str, change=None):
        changed = dict(variables)
        if change:
            change(changed)
        write_checkpoint(tmp_path / name, changed, gin)
        return mesh_tf.load_t5(tmp_path / name)

    key = "decoder/block_000/layer_001/EncDecAttention/o"
    with pytest.raises(ConversionError, match=f"missing tensor '{key}'"):
        attempt("missing", gin_for(V1_0), lambda v: v.pop(key))
    with pytest.raises(ConversionError, match=rf"'{key}' has shape \[24, 31\], expected \[24, 32\]"):
        attempt("short", gin_for(V1_0), lambda v: v.update({key: v[key][:, :31]}))
    with pytest.raises(ConversionError, match="unexpected tensor.*encoder/block_002"):
        attempt(
            "extra",
            gin_for(V1_0),
            lambda v: v.update({"encoder/block_002/layer_000/rms_norm/scale": np.ones(32, np.float32)}),
        )
    with pytest.raises(ConversionError, match="num_memory_heads = 2"):
        attempt("mqa2", gin_for(V1_0, memory_heads=2))
    with pytest.raises(ConversionError, match="relative_attention_type = 'bias'"):
        attempt("perlayer", gin_for(V1_0).replace("'bias_shared'", "'bias'"))
    write_checkpoint(tmp_path / "nogin", variables, "")
    (tmp_path / "nogin/operative_config.gin").unlink()
    with pytest.raises(FileNotFoundError, match="operative_config.gin"):
        mesh_tf.load_t5(tmp_path / "nogin")
