"""`python -m scaling.finetune --config=configs/finetune.py --workdir=DIR --config.init_from=PRETRAIN_WORKDIR
[--config.tasks=rotten_tomatoes,trec] [--config.FIELD=VALUE ...]`

Finetunes a pretrained model on downstream tasks, several seeds each, and reports the medians; the library is
:mod:`scaling.downstream.finetune`. A finished (task, seed) under DIR is never redone.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from scaling import cli


def _finetune(argv: list[str]) -> int:
    parser = cli.config_parser(
        "python -m scaling.finetune",
        __doc__,
        config_help="finetuning file, e.g. configs/finetune.py or configs/finetune.py:demo",
    )
    parser.add_argument("--workdir", required=True, help="where results and finetuned models go")
    args = parser.parse_args(argv)
    from scaling.downstream import finetune
    from scaling.experiments import configfiles

    finetune.run(configfiles.load_with_overrides(args.config, args.overrides), args.workdir)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_finetune, argv)


if __name__ == "__main__":
    sys.exit(main())
