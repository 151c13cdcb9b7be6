"""One command-line convention: every `python -m scaling.…` command parses the same way, documents every flag,
exits 0 / 2 (usage mistake) / 1 (failure) with one `error:` line, and config-driven commands share one override
parser, in which a budget is written `--config.budget=UNIT:AMOUNT`."""

import importlib
import logging
import subprocess
import sys
from pathlib import Path

import ml_collections
import pytest

from scaling import cli, errors
from scaling.experiments import configfiles

ROOT = Path(__file__).resolve().parents[1]
TINY = str(Path(__file__).resolve().parent / "tiny_config.py")

# The module behind each `python -m` command.
COMMANDS = {
    "scaling.train": "scaling.train",
    "scaling.finetune": "scaling.finetune",
    "scaling.compress": "scaling.compress",
    "scaling.decode": "scaling.decode",
    "scaling.sweep": "scaling.sweep",
    "scaling.study": "scaling.study",
    "scaling.profile": "scaling.profile",
    "scaling.translate": "scaling.translate",
    "scaling.plan": "scaling.plan",
    "scaling.convert": "scaling.convert.__main__",
    "scaling.shapes": "scaling.shapes.__main__",
    "scaling.data.inspect": "scaling.data.inspect",
    "scaling.data.build_vocab": "scaling.data.build_vocab",
    "scaling.data.prepare_cramming": "scaling.data.prepare_cramming",
    "scaling.analysis.studies": "scaling.analysis.studies",
}


@pytest.fixture(autouse=True)
def in_repository(monkeypatch):
    """Commands name config files relative to the repository root, as the README writes them."""
    monkeypatch.chdir(ROOT)


def error_lines(text: str) -> list[str]:
    """stderr without the C++ notes TensorFlow's import prints before any Python runs (absl's
    'before absl::InitializeLog()' banner and I/W/E-prefixed lines such as a missing CUDA driver)."""
    return [
        line
        for line in text.splitlines()
        if line.strip() and "absl::InitializeLog" not in line and not (line[:1] in "IWE" and line[1:5].isdigit())
    ]


@pytest.fixture
def parsers(monkeypatch):
    """Every cli.Parser a command parses with, recorded."""
    seen = []
    original = cli.Parser.parse_args

    def parse_args(self, args=None, namespace=None):
        seen.append(self)
        return original(self, args, namespace)

    monkeypatch.setattr(cli.Parser, "parse_args", parse_args)
    return seen


@pytest.mark.parametrize("command", COMMANDS)
def test_help_exits_0_and_documents_every_flag(command, parsers, capsys):
    module = importlib.import_module(COMMANDS[command])
    assert module.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert f"python -m {command}" in out
    [parser] = parsers
    undocumented = [a.dest for a in parser._actions if not a.help]
    assert not undocumented, f"{command}: flags without help text: {undocumented}"
    for action in parser._actions:
        for flag in action.option_strings:
            assert flag in out
            assert "-" not in flag.lstrip("-"), f"{command}: {flag} is spelled with a dash; use underscores"


@pytest.mark.parametrize("command", COMMANDS)
def test_a_usage_mistake_is_one_line_and_exit_2(command, capsys):
    module = importlib.import_module(COMMANDS[command])
    assert module.main(["--no_such_flag=1"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and f"python -m {command} --help" in lines[0], lines


def test_analysis_command_stays_jax_free():
    code = (
        "import sys; from scaling.analysis import studies; assert studies.main(['--help']) == 0; "
        "assert 'jax' not in sys.modules and 'tensorflow' not in sys.modules, 'imported jax'"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "RESULTS_DIR" in done.stdout


def test_acceptance_typo_in_a_budget_field_is_one_line_exit_2(tmp_path):
    workdir = tmp_path / "W"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "scaling.train",
            "--config=configs/demo.py",
            f"--workdir={workdir}",
            "--config.budget.stepz=5",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    lines = error_lines(done.stderr)
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: --config.budget.stepz") and "Traceback" not in done.stderr
    assert "--config.budget=steps:5" in lines[0] and "budget.unit" in lines[0]
    assert not workdir.exists()


# ------------------------------------------------------------------------------------- config commands


@pytest.fixture
def trained(monkeypatch):
    """The config `python -m scaling.train` would train (nothing is trained)."""
    from scaling import parallel
    from scaling.training import trainer

    configs = []
    monkeypatch.setattr(parallel, "initialize_distributed", lambda config: None)
    monkeypatch.setattr(trainer, "train", lambda config, workdir, **_: configs.append(config))
    return configs


def train(*argv):
    from scaling import train as command

    return command.main([f"--config={TINY}", "--workdir=/nonexistent/never-written", *argv])


def test_budget_is_spelled_one_way_in_train_sweep_and_study(trained, monkeypatch, tmp_path, capsys):
    from scaling import study as study_command
    from scaling import sweep as sweep_command
    from scaling.experiments import study, sweep

    assert train("--config.budget=steps:3") == 0
    assert (trained[0].budget.unit, trained[0].budget.amount) == ("steps", 3)

    specs = []
    monkeypatch.setattr(sweep, "run", lambda spec, out, **_: specs.append(spec))
    assert (
        sweep_command.main(
            [f"--config={TINY}", "--base=tiny", "--op=nl", "--values=1", f"--out={tmp_path}", "--config.budget=steps:3"]
        )
        == 0
    )
    assert specs[0].budget == ("steps", 3) and specs[0].overrides == ()

    studies = []
    monkeypatch.setattr(study, "run_study", lambda config, out, results, **_: studies.append(config) or tmp_path)
    (tmp_path / "report.md").write_text("report\n")
    assert (
        study_command.main(["--config=configs/study_cramming.py:smoke", f"--out={tmp_path}", "--config.budget=steps:3"])
        == 0
    )
    budgets = {(c.budget.unit, c.budget.amount) for c in study.pretrain_configs(studies[0]).values()}
    assert budgets == {("steps", 3)}
    launch = sweep.launch_command(specs[0], sweep.Point("tiny-nl1", None), tmp_path)
    assert "--config.budget=steps:3" in launch


def test_hours_are_seconds_and_overrides_take_both_spellings(trained):
    assert train("--config.budget=hours:1.5", "--config.optimizer.learning_rate", "0.5", "--config.seed=7") == 0
    config = trained[0]
    assert (config.budget.unit, config.budget.amount) == ("seconds", 5400)
    assert (config.optimizer.learning_rate, config.seed) == (0.5, 7)


def test_verbosity_flags_set_the_log_level(trained):
    assert train() == 0 and logging.getLogger().level == logging.WARNING
    assert train("-v") == 0 and logging.getLogger().level == logging.INFO
    assert train("--verbosity=debug") == 0 and logging.getLogger().level == logging.DEBUG
    assert train("--verbosity=-1") == 0 and logging.getLogger().level == logging.WARNING


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--config.budget.steps=100"],
            "--config.budget.steps: no such field; write the budget as --config.budget=steps:100",
        ),
        (["--config.optimizer.lrate=1"], "did you mean --config.optimizer.learning_rate"),
        (["--config.batch_size=many"], "--config.batch_size=many: expected an integer"),
        (["--config.optimizer=3"], "--config.optimizer is a group of fields"),
        (["--config.budget=minutes:3"], "--config.budget=minutes:3: unknown unit 'minutes'"),
        (["--config.budget=steps:-5"], "--config.budget=steps:-5: amount -5 must be positive"),
        (["--config.budget.amount=-5"], "config.budget.amount=-5.0: use a positive"),
        (["--config.optimizer.learning_rate=-0.1"], "config.optimizer.learning_rate=-0.1: use a positive"),
        (["--config.data.task=sotu_spam_corruption"], "did you mean 'sotu_span_corruption'"),
        (["--config.model.name=small-zz9"], "config.model.name is not a valid shape"),
        (["--config.seed"], "--config.seed needs a value"),
    ],
)
def test_user_mistakes_are_one_line_exit_2_before_anything_is_written(args, message, tmp_path, monkeypatch, capsys):
    from scaling import parallel
    from scaling import train as command

    monkeypatch.setattr(parallel, "initialize_distributed", lambda config: None)
    workdir = tmp_path / "W"
    assert command.main([f"--config={TINY}", f"--workdir={workdir}", *args]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not workdir.exists()


def test_missing_config_file_and_unknown_finetuning_task(tmp_path, capsys):
    from scaling import finetune

    assert finetune.main(["--config=configs/finetun.py", f"--workdir={tmp_path / 'ft'}"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --config=configs/finetun.py: no file configs/finetun.py; did you mean --config=configs/finetune.py?"
    )
    assert (
        finetune.main(
            [
                "--config=configs/finetune.py:demo",
                f"--workdir={tmp_path / 'ft'}",
                "--config.init_from=/x",
                "--config.tasks=rotten_tomatos",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "config.tasks: Unknown downstream task 'rotten_tomatos'" in err[0]
    assert (
        finetune.main(
            [
                "--config=configs/finetune.py:demo",
                f"--workdir={tmp_path / 'ft'}",
                "--config.init_from=/x",
                "--config.optimizer.learning_rate=-1",
            ]
        )
        == 2
    )
    assert "optimizer.learning_rate=-1.0: use a positive" in capsys.readouterr().err
    assert not (tmp_path / "ft").exists()


def test_unknown_shape_and_task_in_other_commands(capsys):
    from scaling.data import inspect
    from scaling.shapes import __main__ as shapes_command

    assert shapes_command.main(["small-zz9"]) == 2
    assert capsys.readouterr().err.startswith("error: 'small-zz9': unknown knob")
    assert inspect.main(["--task=sotu_spam_corruption"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "did you mean 'sotu_span_corruption'" in err[0]


# --------------------------------------------------------------------------------------- the pieces


def test_run_maps_exceptions_to_exit_codes(capsys):
    def raising(error):
        def command(argv):
            raise error

        return command

    assert cli.run(lambda argv: None, []) == 0
    assert cli.run(raising(errors.UserError("--x: fix it")), []) == 2
    assert capsys.readouterr().err == "error: --x: fix it\n"
    assert cli.run(raising(errors.ScalingError("the loss diverged\nat step 3")), []) == 1
    assert capsys.readouterr().err == "error: the loss diverged; at step 3\n"
    assert cli.run(raising(KeyboardInterrupt()), []) == 130
    with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback
        cli.run(raising(ZeroDivisionError()), [])


def test_every_project_exception_has_one_base():
    from scaling import shapes
    from scaling.analysis.runs import RunError
    from scaling.convert.params import ConversionError
    from scaling.data.corpora import C4NotPreparedError
    from scaling.downstream.datasets import DownstreamDataError
    from scaling.downstream.finetune import FinetuneError
    from scaling.experiments.study import StudyError
    from scaling.experiments.sweep import SweepError
    from scaling.training.checkpoints import CheckpointError
    from scaling.training.trainer import ConfigError, NonFiniteLossError

    usage = (ConfigError, FinetuneError, shapes.ShapeError, SweepError, StudyError, cli.UsageError)
    failures = (NonFiniteLossError, CheckpointError, DownstreamDataError, ConversionError, RunError, C4NotPreparedError)
    assert all(issubclass(e, errors.UserError) and e.exit_code == 2 for e in usage)
    assert all(issubclass(e, errors.ScalingError) and e.exit_code == 1 for e in failures)
    assert issubclass(NonFiniteLossError, FloatingPointError) and issubclass(DownstreamDataError, FileNotFoundError)


def test_override_parser_types_and_study_mappings():
    config = configfiles.load(TINY)
    configfiles.apply_overrides(
        config,
        [
            ("log_every_steps", "5"),
            ("optimizer.learning_rate", "0.02"),
            ("checkpoint.async_save", "true"),
            ("micro_batch_size", "2"),
            ("model.dropout_rate", "0.1"),
            ("init_from", "None"),
        ],
    )
    assert (
        config.log_every_steps,
        config.optimizer.learning_rate,
        config.checkpoint.async_save,
        config.micro_batch_size,
        config.model.dropout_rate,
        config.init_from,
    ) == (5, 0.02, True, 2, 0.1, None)
    configfiles.override(config, "micro_batch_size", "none")  # a placeholder field may go back to None
    assert config.micro_batch_size is None
    with pytest.raises(errors.UserError, match=r"--config.batch_size=2.5: expected an integer \(now 4\)"):
        configfiles.override(config, "batch_size", "2.5")
    with pytest.raises(errors.UserError, match="--config.nan_policy.x: --config.nan_policy is a value"):
        configfiles.override(config, "nan_policy.x", "1")
    configfiles.apply_mapping(config, {"optimizer": {"name": "adafactor"}, "budget": {"amount": 7}})
    assert (config.optimizer.name, config.budget.amount) == ("adafactor", 7)
    with pytest.raises(
        errors.UserError,
        match=r"config.runs.a.optimizer.learning_rat: no such field; did you mean "
        r"config.runs.a.optimizer.learning_rate\?",
    ):
        configfiles.apply_mapping(config, {"optimizer": {"learning_rat": 1.0}}, "config.runs.a.")
    with pytest.raises(errors.UserError, match=r"config.common.batch_size=2.5: expected an integer"):
        configfiles.apply_mapping(config, {"batch_size": 2.5}, "config.common.")
    configfiles.set_value(config, "budget", "tokens:1e4")
    assert (config.budget.unit, config.budget.amount) == ("tokens", 1e4)
    assert configfiles.get(config, "optimizer.name") == "adafactor"


def test_config_files_that_cannot_load_name_the_file(tmp_path):
    (tmp_path / "empty.py").write_text("X = 1\n")
    (tmp_path / "plain.py").write_text(
        "import ml_collections\ndef get_config():\n    return ml_collections.ConfigDict({'a': 1})\n"
    )
    with pytest.raises(errors.UserError, match="has no get_config"):
        configfiles.load(str(tmp_path / "empty.py"))
    with pytest.raises(errors.UserError, match="takes no argument; drop ':x'"):
        configfiles.load(f"{tmp_path / 'plain.py'}:x")
    with pytest.raises(errors.UserError, match=r"--config=configs/li_roberta.py:deep: .*l<depth>-h<width>"):
        configfiles.load("configs/li_roberta.py:deep")
    with pytest.raises(errors.UserError, match="config.recipe=nowhere.py: no file"):
        configfiles.load("nowhere.py", where="config.recipe")
    assert isinstance(configfiles.load(str(tmp_path / "plain.py")), ml_collections.ConfigDict)


def test_budget_parse():
    from scaling import budget

    assert budget.parse("steps:1000") == ("steps", 1000.0)
    assert budget.parse("flops:3e15") == ("flops", 3e15)
    assert budget.parse(" Hours:2") == ("seconds", 7200.0)
    for bad, message in [
        ("20", "write UNIT:AMOUNT"),
        ("minutes:3", "unknown unit"),
        ("steps:x", "not a number"),
        ("steps:0", "must be positive"),
        ("seconds:inf", "must be positive and finite"),
    ]:
        with pytest.raises(errors.UserError, match=message):
            budget.parse(bad)
