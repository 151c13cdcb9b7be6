"""What a shape costs, derived from the shape alone: parameters, FLOPs, memory.

Parameter counts are exact (tests compare them with the initialised parameter tree and with the released
T5 checkpoints). FLOPs come in two conventions, chosen by name:

* ``"matmul"`` (default; Kaplan et al. 2020, Hoffmann et al. 2022): 2 FLOPs per multiply-add of every
  matrix multiply, attention score and value products included, embedding lookups free; training costs
  3 × forward (the backward pass is two matmuls per forward matmul).
* ``"electra"``: the counter of ELECTRA's ``flops_computation.py`` that *Train Large, Then Compress* used —
  dense embedding lookups, non-matmul ops (softmax, GELU, layer norm, dropout) counted, output softmax on
  a fraction of tokens, training = 2 × forward.

XLA's ``cost_analysis()`` of the compiled forward pass agrees with the ``"matmul"`` forward count: the
ratio XLA / analytic is 1.002 for a one-layer T5-small and 1.006 for a one-layer BERT-base at length 64
(the remainder is elementwise work XLA counts and we leave out). Compare at one layer: XLA counts the body
of the scanned layer stack once, whatever its trip count (``tests/test_accounting.py``).

*Scale Efficiently*'s Table 4 TFLOPs column comes from Mesh TensorFlow's own counter and is not
reproduced by either convention (our forward FLOPs per 128-example step are 1.2–2.6× its figures, the gap
growing with width); compare shapes within one convention.
"""

from __future__ import annotations

import dataclasses
import math

from scaling.shapes import Shape

CONVENTIONS = ("matmul", "electra")


@dataclasses.dataclass(frozen=True)
class ParamCounts:
    total: int
    embedding: int  # vocabulary- and position-sized tables (input embedding, untied output layer, biases)

    @property
    def non_embedding(self) -> int:
        return self.total - self.embedding


@dataclasses.dataclass(frozen=True)
class SequenceLengths:
    """Tokens per example: encoder inputs and decoder targets (targets = 0 for encoder-only models).

    `predicted` is how many positions per example reach the output layer: all targets for T5, the masked
    positions for a BERT with sparse prediction, every input otherwise.
    """

    inputs: int
    targets: int = 0
    predicted: int | None = None

    @staticmethod
    def default_for(shape: Shape, inputs: int = 512, targets: int = 114, mask_rate: float = 0.15) -> SequenceLengths:
        if shape.is_encoder_decoder:
            return SequenceLengths(inputs, targets)
        inputs = min(inputs, shape.max_length)
        predicted = math.ceil(mask_rate * inputs) if shape.sparse_prediction else inputs
        return SequenceLengths(inputs, 0, predicted)

    @property
    def output_positions(self) -> int:
        if self.predicted is not None:
            return self.predicted
        return self.targets if self.targets else self.inputs

    @property
    def tokens(self) -> int:
        return self.inputs + self.targets


@dataclasses.dataclass(frozen=True)
class Flops:
    """FLOPs per example (one input sequence and its targets) and per token (per input + target token)."""

    forward_per_example: float
    train_per_example: float
    tokens_per_example: int

    @property
    def forward(self) -> float:
        return self.forward_per_example / self.tokens_per_example

    @property
    def train(self) -> float:
        return self.train_per_example / self.tokens_per_example

    def per_step(self, batch_size: int) -> float:
        return self.train_per_example * batch_size


# ----------------------------------------------------------------------------------------------- params


def _attention_params(s: Shape) -> int:
    d, h, k, kvh = s.d_model, s.num_heads, s.d_kv, s.num_kv_heads
    kv_projections = 1 if s.tied_kv else 2
    n = d * h * k + kv_projections * d * kvh * k + h * k * d
    if s.attention_bias:
        n += h * k + kv_projections * kvh * k + d
    return n


def _mlp_params(s: Shape) -> int:
    inputs = 2 if s.ffn_gating == "gated" else 1
    n = inputs * s.d_model * s.d_ff + s.ffn_hidden * s.d_model
    if s.linear_bias:
        n += s.d_ff + s.d_model
    return n


def _norm_params(s: Shape) -> int:
    return s.d_model * (2 if s.norm_kind == "layer" else 1)


def param_counts(s: Shape) -> ParamCounts:
    """Exact parameter counts of `scaling.models.build(s)`."""
    d, v = s.d_model, s.vocab_size
    attn, mlp, norm = _attention_params(s), _mlp_params(s), _norm_params(s)
    embedding = v * d + (0 if s.tie_embeddings else d * v)
    if s.is_encoder_decoder:
        encoder = s.num_encoder_layers * (attn + mlp + 2 * norm)
        decoder = s.num_decoder_layers * (2 * attn + mlp + 3 * norm)
        other = 2 * s.relpos_buckets * s.num_heads + 2 * norm
        return ParamCounts(embedding + encoder + decoder + other, embedding)
    if s.position_embedding == "learned":
        embedding += s.max_length * d
    embedding += s.type_vocab_size * d + (v if s.decoder_bias else 0)
    n = s.num_encoder_layers
    if s.layer_sharing == "all":
        layers = attn + mlp + 2 * norm
    elif s.layer_sharing == "attention":
        layers = attn + n * (mlp + 2 * norm)
    else:
        layers = n * (attn + mlp + 2 * norm)
    other = (s.position_embedding == "scaled-sinusoidal") + norm * (s.embedding_norm + s.final_norm)
    if s.head_transform:
        other += d * d + (d if s.linear_bias else 0) + norm
    return ParamCounts(embedding + layers + other, embedding)


# ------------------------------------------------------------------------------------------------ FLOPs


def _matmul_forward(s: Shape, seq: SequenceLengths) -> float:
    d, h, k, kvh = s.d_model, s.num_heads, s.d_kv, s.num_kv_heads
    kv_proj = 1 if s.tied_kv else 2
    q_o = 2 * (2 * d * h * k)  # query and output projections, per query token
    kv = 2 * kv_proj * d * kvh * k  # key/value projections, per key token
    mlp = 2 * ((2 if s.ffn_gating == "gated" else 1) * d * s.d_ff + s.ffn_hidden * d)

    def attend(context: int) -> float:  # scores and weighted values, per query token
        return 2 * 2 * context * h * k

    i, t = seq.inputs, seq.targets
    encoder = s.num_encoder_layers * i * (q_o + kv + attend(i) + mlp)
    head = seq.output_positions * 2 * d * s.vocab_size
    if not s.is_encoder_decoder:
        if s.head_transform:
            head += seq.output_positions * 2 * d * d
        return encoder + head
    decoder = s.num_decoder_layers * (t * (q_o + kv + attend(t) + q_o + attend(i) + mlp) + i * kv)
    return encoder + decoder + head


_DROPOUT, _LAYER_NORM, _ACTIVATION, _SOFTMAX = 4, 5, 8, 5  # ELECTRA's per-element op counts


def _electra_stack(
    h: int, layers: int, s: int, v: int, i: int, kqv: int, heads: int, output_frac: float, decoder: bool
) -> float:
    """Forward FLOPs of one stack, term by term as ELECTRA's `TransformerHparams` counts them."""
    m = 2 if decoder else 1
    block = (
        3 * 2 * h * kqv * m
        + 3 * kqv * m
        + 2 * kqv * s * m
        + _SOFTMAX * s * heads * m
        + _DROPOUT * s * heads * m
        + s * heads * m
        + 2 * h * s * m
        + 2 * h * h * m
        + h * m
        + _DROPOUT * h * m
        + h * m
        + _LAYER_NORM * m
        + 2 * h * i
        + _ACTIVATION * i
        + i
        + 2 * h * i
        + h
        + _DROPOUT * h
        + h
        + _LAYER_NORM * h
    )
    embed_in = 2 * h * v + 2 * h * (s + 2) + 2 * h + _LAYER_NORM * h + _DROPOUT * h
    embed_out = output_frac * (2 * h * v + 2 * h * h + h + _ACTIVATION * h + _LAYER_NORM * h + _SOFTMAX * v + 2 * v)
    return (layers * block + embed_in + embed_out) * s


def _electra_forward(sh: Shape, seq: SequenceLengths) -> float:
    kqv = sh.num_heads * sh.d_kv
    if not sh.is_encoder_decoder:
        frac = seq.output_positions / seq.inputs
        return _electra_stack(
            sh.d_model,
            sh.num_encoder_layers,
            seq.inputs,
            sh.vocab_size,
            sh.d_ff,
            kqv,
            sh.num_heads,
            frac,
            decoder=False,
        )
    # As ELECTRA counts T5: an encoder without output softmax plus a decoder with one on every position.
    return _electra_stack(
        sh.d_model, sh.num_encoder_layers, seq.inputs, sh.vocab_size, sh.d_ff, kqv, sh.num_heads, 0.0, decoder=False
    ) + _electra_stack(
        sh.d_model, sh.num_decoder_layers, seq.targets, sh.vocab_size, sh.d_ff, kqv, sh.num_heads, 1.0, decoder=True
    )


def flops_per_token(s: Shape, seq: SequenceLengths, convention: str = "matmul") -> Flops:
    """Analytic FLOPs of one example in the named convention (see the module docstring)."""
    if convention == "matmul":
        forward = _matmul_forward(s, seq)
        return Flops(forward, 3 * forward, seq.tokens)
    if convention == "electra":
        forward = _electra_forward(s, seq)
        return Flops(forward, 2 * forward, seq.tokens)
    raise ValueError(f"unknown FLOPs convention {convention!r}; choose one of {CONVENTIONS}")


# ----------------------------------------------------------------------------------------------- memory


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
    """Bytes for a training step, an estimate to pick micro-batch sizes (not a measurement)."""

    params: int
    gradients: int
    optimizer: int
    activations_per_example: int

    def total(self, micro_batch: int) -> int:
        return self.params + self.gradients + self.optimizer + micro_batch * self.activations_per_example


OPTIMIZER_STATE_FLOATS = {"adamw": 2.0, "adafactor": 0.0, "sgd": 0.0}


def memory_estimate(
    s: Shape, seq: SequenceLengths, *, optimizer: str = "adafactor", compute_bytes: int = 4, remat: str = "none"
) -> MemoryEstimate:
    """Float32 parameters, gradients and optimizer state, plus the activations a layer saves for backward.

    Adafactor's factored second moments are counted exactly (a row and a column vector per matrix is far
    below 1 float per parameter, so they are estimated as sum of matrix sides); AdamW keeps two floats per
    parameter. Saved activations per token and layer: the layer input, normed inputs, q/k/v, context,
    attention probabilities (heads × context), and the FFN hidden activations; `remat="full"` keeps only
    the layer input.
    """
    if optimizer not in OPTIMIZER_STATE_FLOATS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {tuple(OPTIMIZER_STATE_FLOATS)}")
    p = param_counts(s).total
    opt = int(OPTIMIZER_STATE_FLOATS[optimizer] * p * 4)
    if optimizer == "adafactor":
        opt = 4 * _adafactor_factored_floats(s)
    d, h, k = s.d_model, s.num_heads, s.d_kv
    ffn = s.d_ff * (2 if s.ffn_gating == "gated" else 1) + s.ffn_hidden

    def layer(tokens: int, context: int, cross_context: int = 0) -> int:
        if remat == "full":
            return tokens * d
        attn = 3 * d + 4 * h * k + h * context
        cross = (d + 2 * h * k + h * cross_context) if cross_context else 0
        return tokens * (attn + cross + 2 * d + ffn)

    acts = s.num_encoder_layers * layer(seq.inputs, seq.inputs)
    if s.is_encoder_decoder:
        acts += s.num_decoder_layers * layer(seq.targets, seq.targets, seq.inputs)
    acts += seq.output_positions * s.vocab_size * 2  # logits and their softmax (float32 → counted as 2 units)
    return MemoryEstimate(4 * p, 4 * p, opt, acts * compute_bytes)


def _adafactor_factored_floats(s: Shape) -> int:
    """Row + column accumulators for each weight matrix (vectors keep a full second moment)."""
    d, h, k, f = s.d_model, s.num_heads, s.d_kv, s.d_ff
    attn = 4 * (d + h * k)
    mlp = (2 if s.ffn_gating == "gated" else 1) * (d + f) + (s.ffn_hidden + d)
    layers = s.num_encoder_layers * (attn + mlp) + s.num_decoder_layers * (2 * attn + mlp)
    return layers + 2 * (s.vocab_size + d) + 4 * d * (s.num_encoder_layers + s.num_decoder_layers)
