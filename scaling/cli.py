"""What every `--config`-driven command (`scaling.train`, `scaling.finetune`, `scaling.study`) checks first."""

from __future__ import annotations

from absl import app, flags, logging


def start(argv: list[str], usage: str, *required: object) -> None:
    """Refuses positional arguments, and `usage` when a `required` flag's value is None; logs at WARNING unless
    `--verbosity` was given, because orbax logs every file it writes at INFO."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; pass settings as --config.FIELD=VALUE")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    if any(value is None for value in required):
        raise app.UsageError(usage)
