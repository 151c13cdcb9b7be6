"""Released checkpoints in and out: Hugging Face T5 (`hf`, tokenizers in `tokenizer`) and Mesh TensorFlow T5
(`mesh_tf`), each producing or consuming the one model artifact (:mod:`scaling.training.artifact`).

    from scaling.convert import hf
    model, shape = hf.load_t5("t5-efficient-small-nl24/")   # logits = model(encoder_tokens, decoder_tokens)

Command line: `python -m scaling.convert import-hf SRC DST | import-mesh-tf SRC DST | export-hf SRC DST`.
Modules import torch / tensorflow only when a format needs them.
"""

from scaling.convert.params import ConversionError

__all__ = ["ConversionError"]
