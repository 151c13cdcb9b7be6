"""Translation: train an encoder-decoder on a translation task with BLEU curves, or score a model with BLEU.

    python -m scaling.translate --config=configs/translate_offline.py --workdir=DIR [--config.FIELD=VALUE ...]
    python -m scaling.translate --checkpoint=DIR [--task=wmt14_en_fr] [--split=validation] [--beam=4]

With --config and --workdir it trains as `python -m scaling.train` does (same loop, checkpoints, resume and
budget), and every evaluation also logs `eval_bleu`, greedy BLEU on the first `config.translation.bleu_examples`
validation pairs (Li et al.'s Figure 5 plots it against steps and seconds); at the end the eval split is
translated with beam search (`config.translation.beam`) and scored into DIR/bleu_TASK_SPLIT.json.

With --checkpoint (any model directory: training workdir, converted or finetuned T5) it translates --split of
--task (by default the task and lengths the workdir trained with) and writes BLEU, sacreBLEU's signature, the
settings and every (source, reference, hypothesis) to --out (default CHECKPOINT/bleu_TASK_SPLIT.json).

Tasks: `wmt14_en_fr` (tfds, where prepared), `sotu_en_pseudofr` (offline) and your own parallel files
(scaling.data.translation.register_translation_tasks, called in your --config file; to score such a model, pass
--module=M, a module that registers the task).
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from scaling import cli
from scaling.errors import UserError

DEFAULT_LENGTH = 128


def _out_name(task: str, split: str) -> str:
    return f"bleu_{task}_{split}.json"


def _train(args) -> int:
    import jax
    from flax import nnx

    from scaling import parallel
    from scaling.data import tasks
    from scaling.downstream import translation
    from scaling.experiments import configfiles
    from scaling.training import trainer

    config = configfiles.load(args.config)
    if "translation" not in config:  # any training config translates with the defaults
        config.translation = translation.default_config()
    configfiles.apply_overrides(config, args.overrides)
    config.lock()
    parallel.initialize_distributed(config.parallel)
    options = config.translation
    run = trainer.build_run(config)
    max_length = options.max_length or config.data.targets_length
    job = translation.translation_job(
        run,
        examples=options.bleu_examples,
        max_length=max_length,
        batch_size=options.batch_size,
        tokenize=options.tokenize,
    )
    fitted = trainer.fit(job, args.workdir)
    result = translation.evaluate(
        nnx.merge(run.graphdef, fitted.state["params"]),
        tasks.vocabulary(config.data.task),
        config.data.task,
        config.data.eval_split,
        beam=options.beam,
        max_length=max_length,
        inputs_length=config.data.inputs_length,
        batch_size=options.batch_size,
        max_examples=options.eval_examples,
        tokenize=options.tokenize,
    )
    path = Path(args.workdir) / _out_name(config.data.task, config.data.eval_split)
    if jax.process_index() == 0:
        translation.write(result, path, checkpoint=str(args.workdir), step=fitted.metrics.get("step"))
        print(translation.summary_line(result, path))
    return 0


def _trained_with(checkpoint: str) -> dict:
    """The data settings of a training workdir (its config.json), or {} for other model directories."""
    path = Path(checkpoint) / "config.json"
    return json.loads(path.read_text()).get("data", {}) if path.is_file() else {}


def _evaluate(args) -> int:
    from scaling.data import translation as translation_tasks
    from scaling.downstream import decode, translation

    for module in args.module:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise UserError(f"--module={module}: cannot import it ({e}); check the name and PYTHONPATH") from None
    data = _trained_with(args.checkpoint)
    task = args.task or data.get("task")
    if task is None:
        raise UserError(f"{args.checkpoint} records no training task: name one with --task (e.g. --task=wmt14_en_fr)")
    translation_tasks.translation_spec(task)  # a UserError naming the translation tasks
    model, vocabulary = decode.load_for_decoding(args.checkpoint, args.vocabulary)
    result = translation.evaluate(
        model,
        vocabulary,
        task,
        args.split,
        beam=args.beam,
        max_length=args.max_length or data.get("targets_length") or DEFAULT_LENGTH,
        inputs_length=args.inputs_length or data.get("inputs_length") or DEFAULT_LENGTH,
        batch_size=args.batch_size,
        max_examples=args.max_examples,
        tokenize=args.tokenize,
    )
    path = Path(args.out) if args.out else Path(args.checkpoint) / _out_name(task, args.split)
    translation.write(result, path, checkpoint=str(args.checkpoint))
    print(translation.summary_line(result, path))
    return 0


def _translate(argv: list[str]) -> int:
    parser = cli.config_parser(
        "python -m scaling.translate",
        __doc__,
        config_help="train: experiment file, e.g. configs/translate_offline.py or configs/translate_wmt14.py:l6-h512",
        required=False,
    )
    parser.add_argument("--workdir", help="train: where checkpoints, metrics.jsonl, summary.json and BLEU go")
    parser.add_argument("--checkpoint", help="evaluate: a T5 model directory (training workdir, converted, finetuned)")
    parser.add_argument("--task", help="evaluate: a translation task (default: the one the workdir trained on)")
    parser.add_argument(
        "--module", action="append", default=[], help="evaluate: a module to import first, which registers the task"
    )
    parser.add_argument("--split", default="validation", help="evaluate: the split (default %(default)s)")
    parser.add_argument("--beam", type=int, default=4, help="evaluate: beams; 1 is greedy (default %(default)s)")
    parser.add_argument("--max_length", type=int, help="evaluate: decoded tokens (default: the trained targets length)")
    parser.add_argument("--inputs_length", type=int, help="evaluate: input tokens (default: the trained inputs length)")
    parser.add_argument(
        "--batch_size", type=int, default=32, help="evaluate: rows decoded at once (default %(default)s)"
    )
    parser.add_argument("--max_examples", type=int, help="evaluate: the first N pairs only (default: all)")
    parser.add_argument("--tokenize", default="13a", help="evaluate: sacreBLEU tokenizer (default %(default)s)")
    parser.add_argument("--vocabulary", help="evaluate: sentencepiece model instead of the one stored with the model")
    parser.add_argument("--out", help="evaluate: the JSON file to write (default CHECKPOINT/bleu_TASK_SPLIT.json)")
    args = parser.parse_args(argv)
    training = args.config is not None or args.workdir is not None
    if training == (args.checkpoint is not None):
        raise UserError(
            "give either --config and --workdir (train, then evaluate) or --checkpoint (evaluate a model); "
            "see python -m scaling.translate --help"
        )
    if training:
        if args.config is None or args.workdir is None:
            raise UserError("training needs both --config=FILE and --workdir=DIR")
        return _train(args)
    if args.overrides:
        raise UserError(f"--config.{args.overrides[0][0]} only applies when training (--config, --workdir)")
    return _evaluate(args)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_translate, argv)


if __name__ == "__main__":
    sys.exit(main())
