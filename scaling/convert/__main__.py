"""`python -m scaling.convert import-hf SRC DST | import-mesh-tf SRC DST | export-hf SRC DST`.

import-*: SRC is a Hugging Face T5 directory or a Mesh TF checkpoint (directory or `model.ckpt-N` prefix, with
`operative_config.gin` beside it); DST becomes a converted checkpoint that `python -m scaling.train
--config.init_from=DST` starts from. export-hf: SRC is a converted checkpoint or a training workdir (its
latest checkpoint); DST becomes a directory `transformers.T5ForConditionalGeneration.from_pretrained` loads.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from scaling.convert import hf, mesh_tf, store
from scaling.convert.params import ConversionError
from scaling.models.t5 import T5


def load_workdir(workdir: str | os.PathLike) -> T5:
    """The model in a training workdir's latest checkpoint, rebuilt from the run's own config.json."""
    import jax
    from flax import nnx

    from scaling import checkpoints, trainer

    workdir = Path(workdir)
    if not (workdir / "config.json").is_file():
        raise FileNotFoundError(f"{workdir / 'config.json'} not found: {workdir} is neither a converted checkpoint "
                                f"(no {store.SHAPE_FILE}) nor a training workdir")
    config = trainer.default_config()
    config.update(json.loads((workdir / "config.json").read_text()))
    run = trainer.build_run(config)
    if run.shape.family != "t5":
        raise ConversionError(f"{workdir}: shape {run.shape.name} is not a T5; only T5 exports to Hugging Face")
    with checkpoints.Checkpointer(workdir / "checkpoints", async_save=False) as ckpt:
        if ckpt.latest_step() is None:
            raise FileNotFoundError(f"{workdir / 'checkpoints'} holds no checkpoint")
        abstract = checkpoints.abstract_like(jax.eval_shape(lambda: trainer.init_state(run)), run.state_shardings)
        params = ckpt.restore(abstract).state["params"]
    return nnx.merge(run.graphdef, params)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scaling.convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("import-hf", "import-mesh-tf", "export-hf"))
    parser.add_argument("src")
    parser.add_argument("dst")
    parser.add_argument("--gin", default=None, help="import-mesh-tf: operative_config.gin if not beside SRC")
    args = parser.parse_args(argv)
    try:
        if args.command == "export-hf":
            model = store.load(args.src) if store.is_converted(args.src) else load_workdir(args.src)
            out = hf.export(model, args.dst)
        else:
            if args.command == "import-hf":
                model, _ = hf.load_t5(args.src)
            else:
                model, _ = mesh_tf.load_t5(args.src, args.gin)
            out = store.save(model, args.dst, source=str(Path(args.src).absolute()))
    except (ConversionError, FileNotFoundError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{args.command}: {model.shape.name} → {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
