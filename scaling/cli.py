"""The one command-line convention of every ``python -m scaling.…`` command.

- **Flags** are argparse's (:func:`parser`), spelled with underscores like the config fields they mirror
  (``--max_length``, ``--inputs_length``, ``--max_eval_examples``); ``--help`` exits 0 and lists every flag with
  its help text.
- **Config-driven commands** (:func:`config_parser`: train, finetune, sweep, study, profile) take
  ``--config=FILE[:ARG]`` (a ``configs/`` file's ``get_config([ARG])``) and any number of
  ``--config.FIELD=VALUE`` (or ``--config.FIELD VALUE``) overrides, which :mod:`scaling.experiments.configfiles`
  applies; a budget is ``--config.budget=UNIT:AMOUNT`` everywhere (``steps``, ``tokens``, ``flops``, ``seconds``,
  ``hours``).
- **Exit codes** (:func:`run`): 0 done; 2 a usage mistake — a flag, a config field, a file, a task or shape
  name (:class:`scaling.errors.UserError`) — and 1 a failure of the work (:class:`scaling.errors.ScalingError`),
  each as one line ``error: …`` on stderr that names the fix; 130 interrupted. Anything else is a bug and keeps
  its traceback.
- **Logs** at WARNING unless ``-v`` / ``--verbosity`` asks for more (orbax logs every file it writes at INFO).

This module imports no jax or TensorFlow (``python -m scaling.analysis.studies`` uses it and stays jax-free).
TensorFlow's C++ logging is quieted in ``scaling/__init__.py``, not here: ``TF_CPP_MIN_LOG_LEVEL`` is read when
TensorFlow is first imported, and ``python -m scaling.data.inspect`` imports it (through ``scaling.data``)
before its command module — and so before this one — runs; the package's ``__init__`` runs before any of them.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from scaling.errors import ScalingError, UserError

CONFIG_PREFIX = "--config."
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_ABSL_LEVELS = {"1": "debug", "0": "info", "-1": "warning", "-2": "error", "-3": "error"}  # absl's --verbosity=N
INTERRUPTED = 130


class UsageError(UserError):
    """A command line that does not parse: a missing, unknown or malformed flag."""


def _level(text: str) -> int:
    name = _ABSL_LEVELS.get(text.strip(), text.strip().lower())
    if name not in LEVELS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a log level; use one of {', '.join(LEVELS)}")
    return LEVELS[name]


def set_verbosity(level: int) -> None:
    """Python's and absl's loggers (jax, orbax and tfds log through them) at ``level``."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    root.setLevel(level)
    try:  # absl's own logger (orbax, tfds) follows absl's verbosity, not the root level
        from absl import logging as absl_logging
    except ImportError:
        return
    absl_logging.set_verbosity(logging.getLevelName(level).lower())


class Parser(argparse.ArgumentParser):
    """argparse with the convention: errors are one :class:`UsageError` line (exit 2), the verbosity flags,
    and, for config-driven commands, ``--config.FIELD=VALUE`` overrides collected into ``args.overrides``."""

    def __init__(self, prog: str, doc: str | None, *, overrides: bool = False):
        super().__init__(
            prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
        )
        self.overrides = overrides
        self.add_argument(
            "-v",
            action="count",
            default=0,
            dest="verbose",
            help="log more: -v at INFO, -vv at DEBUG (default: WARNING and above)",
        )
        self.add_argument(
            "--verbosity",
            type=_level,
            default=None,
            metavar="LEVEL",
            help=f"log level: {', '.join(LEVELS)} (or absl's 1, 0, -1, -2); default warning",
        )

    def error(self, message: str):
        raise UsageError(f"{message} (see {self.prog} --help)")

    def parse_args(self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None):
        argv = list(sys.argv[1:] if args is None else args)
        overrides: list[tuple[str, str]] = []
        if self.overrides:
            argv, overrides = split_overrides(argv)
        parsed = super().parse_args(argv, namespace)
        if self.overrides:
            parsed.overrides = overrides
        level = (
            parsed.verbosity
            if parsed.verbosity is not None
            else (logging.WARNING if not parsed.verbose else logging.INFO if parsed.verbose == 1 else logging.DEBUG)
        )
        set_verbosity(level)
        return parsed


def parser(prog: str, doc: str | None = None) -> Parser:
    """A command's parser: ``prog`` is ``python -m scaling.NAME``, ``doc`` (the module docstring) heads ``--help``."""
    return Parser(prog, doc)


def config_parser(prog: str, doc: str | None = None, *, config_help: str, required: bool = True) -> Parser:
    """A config-driven command's parser: ``--config=FILE[:ARG]`` and ``--config.FIELD=VALUE`` overrides
    (``args.config``, ``args.overrides``: (FIELD, VALUE) pairs in order, for
    :func:`scaling.experiments.configfiles.load_with_overrides`)."""
    result = Parser(prog, doc, overrides=True)
    result.add_argument("--config", required=required, metavar="FILE[:ARG]", help=config_help)
    # Documentation only: overrides are taken out of the command line before argparse sees it.
    result.add_argument(
        "--config.FIELD",
        dest="_override_help",
        metavar="VALUE",
        help="override one field of the config file, e.g. --config.batch_size=16, "
        "--config.optimizer.learning_rate=1e-3 or the budget --config.budget=steps:1000 "
        "(UNIT one of steps, tokens, flops, seconds, hours); repeatable, applied in order",
    )
    return result


def split_overrides(argv: Sequence[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """(the other arguments, (FIELD, VALUE) of every ``--config.FIELD=VALUE`` or ``--config.FIELD VALUE``)."""
    rest, overrides = [], []
    items = iter(argv)
    for item in items:
        if item == "--":
            rest += [item, *items]
            break
        if not item.startswith(CONFIG_PREFIX):
            rest.append(item)
            continue
        field, sep, value = item[len(CONFIG_PREFIX) :].partition("=")
        if not sep:
            value = next(items, None)
            if value is None or (value.startswith("--") and len(value) > 2):
                raise UsageError(f"{item} needs a value: {item}=VALUE")
        if not field:
            raise UsageError(f"{item}: name the field, e.g. --config.batch_size=16")
        overrides.append((field, value))
    return rest, overrides


def _one_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def _quiet_tensorflow() -> None:
    """Imports TensorFlow with file descriptor 2 closed, and hides the GPUs from it.

    TensorFlow only runs tf.data on the host here. On import its C++ side writes absl's pre-initialisation banner,
    the CUDA stub's "no GPU" notes and CPU-feature advice straight to fd 2, before any setting (not even
    ``TF_CPP_MIN_LOG_LEVEL``) can stop them; and on a GPU machine it would reserve accelerator memory that jax
    needs. A failing import still raises (after fd 2 is restored). ``TF_CPP_MIN_LOG_LEVEL=0`` shows everything.
    """
    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL") in ("0", "1"):
        return
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf

        tf.config.set_visible_devices([], "GPU")
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class _DropSeqioCacheAdvice(logging.Filter):
    """seqio advises caching every FunctionDataset "for shuffling on restarts"; our pipeline resumes by position
    and shuffles deterministically (scaling.data.pipeline), so the advice — printed per split — is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "uncached FunctionDataset" not in record.getMessage()


def run(
    command: Callable[[list[str]], int | None], argv: Sequence[str] | None = None, *, tensorflow: bool = True
) -> int:
    """Runs ``command(argv)`` (default ``sys.argv[1:]``) under the convention and returns the exit code.

    Commands that read data (``tensorflow=True``) get TensorFlow imported quietly first; the analysis commands
    pass False and never import it.

    A :class:`ScalingError` becomes ``error: MESSAGE`` on stderr and its ``exit_code`` (2 for a
    :class:`UserError`, 1 otherwise). A ``FileNotFoundError`` or ``FileExistsError`` of the project's own checks
    names a path the command was given (a checkpoint, an output directory, a vocabulary): exit 2 the same way.
    ``--help`` returns 0; Ctrl-C 130.
    """
    set_verbosity(logging.WARNING)
    try:
        if tensorflow:
            _quiet_tensorflow()
            logging.getLogger("absl").addFilter(_DropSeqioCacheAdvice())
        code = command(list(sys.argv[1:] if argv is None else argv))
    except ScalingError as e:
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return e.exit_code
    except (FileNotFoundError, FileExistsError) as e:
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return UserError.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return INTERRUPTED
    except SystemExit as e:  # --help, or a library's own exit
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return 0 if code is None else int(code)
