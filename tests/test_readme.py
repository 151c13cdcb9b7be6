"""Every command the README prints runs as written, so documentation cannot rot silently.

Each command of an indented block in README.md is matched to exactly one rule below; a new README command with
no rule fails `test_every_readme_command_has_a_rule`. A rule runs the command in a subprocess exactly as printed,
with only these changes: `/tmp/` becomes a test directory (runs must not collide), inputs that exist only off
this machine are stood in for (a tiny Hugging Face checkpoint made here for `/path/to/…`), and where the real
thing is long a budget override, a smaller measurement (`--peak_sizes`) or `--dry-run`/`--dry_run` is appended —
the parser takes the last value, so the command as written is still what is parsed. Rules that depend on each
other (train → finetune → compress) run in order within one test.
"""

import dataclasses
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"


def readme_commands() -> list[str]:
    """Commands of the README's indented code blocks (continuation lines joined, trailing comments dropped)."""
    lines, commands, fenced, i = README.read_text().splitlines(), [], False, 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r" {4}(python|launch/)", line):
            command = line.strip()
            while command.endswith("\\"):
                i += 1
                command = command[:-1].rstrip() + " " + lines[i].strip()
            commands.append(re.sub(r"\s+#.*$", "", command))
        i += 1
    return commands


@dataclasses.dataclass(frozen=True)
class Rule:
    pattern: str  # matched against the command as printed
    group: str  # rules of a group run in README order, in one test
    append: tuple[str, ...] = ()  # arguments added at the end
    code: int = 0  # expected exit code
    says: str = ""  # text expected in the output
    last: bool = False  # run only the part after the last `&&` (the setup before it is what .ci/run does)


RULES = (
    Rule(r"pip install -e \"\.\[test\]\".*pytest", "ci"),  # checked against .ci/run, not run (it is this suite)
    Rule(
        r"pip install -e \. && python -m scaling.train --config=configs/demo.py",
        "train",
        ("--config.budget=steps:3",),
        last=True,
    ),
    Rule(
        r"scaling.train --config=configs/small_nl24.py --workdir=/tmp/small_nl24$", "quick", code=1, says="tfds build"
    ),
    Rule(r"scaling.shapes ", "quick", says="small-nl24"),
    Rule(r"scaling.data.inspect ", "quick", says="noise_density"),
    Rule(r"scaling.train --config=configs/demo.py --workdir=/tmp/demo-seconds", "train", ("--config.budget=steps:3",)),
    Rule(r"scaling.convert import-hf ", "convert"),
    Rule(r"scaling.convert import-mesh-tf ", "convert", code=2, says="gs-copy/bi_v1_small_nl24_DATE"),
    Rule(r"scaling.convert export-hf ", "convert"),
    Rule(r"scaling.decode ", "convert", says="<extra_id_0>"),
    Rule(r"scaling.train --config=configs/small_nl24.py .*--config.init_from", "convert", code=1, says="tfds build"),
    Rule(r"scaling.train --config=configs/demo_bert.py", "downstream", ("--config.budget=steps:3",)),
    Rule(
        r"scaling.finetune ",
        "downstream",
        ("--config.max_train_examples=64", "--config.max_eval_examples=32", "--config.epochs=1"),
        says="aggregate",
    ),
    Rule(
        r"scaling.compress ",
        "downstream",
        ("--bits=8", "--sparsities=0.3", "--combined_bits=4", "--max_eval_examples=32", "--max_train_examples=64"),
        says="compression.csv",
    ),
    Rule(r"scaling.sweep ", "sweep", ("--config.budget=steps:2",), says="results.csv"),
    Rule(r"scaling.profile ", "profile", ("--steps=1", "--warmup=0", "--peak_sizes=256"), says="steps/s"),
    Rule(r"scaling.analysis.figures", "quick", ("--out=/tmp/figures",)),
    Rule(r"scaling.study ", "quick", ("--dry_run",), says="pretrain "),
    Rule(r"scaling.plan --budget=flops:1e19 --base=small .*--plot=", "quick", says="best: small-nl8-dm1k-ff4k"),
    Rule(
        r"scaling.plan --budget=flops:1e19 .*--law=notebooks/results/demo_nl_sweep",
        "quick",
        ("--bootstrap=0",),
        says="10^7.1× beyond the largest fitted compute",
    ),
    Rule(
        r"scaling.plan --config=configs/demo.py --budget=seconds:600", "quick", ("--bootstrap=0",), says="(estimated)"
    ),
    Rule(
        r"scaling.translate --config=configs/translate_offline.py",
        "translate",
        (
            "--config.budget=steps:2",
            "--config.eval_every_steps=0",
            "--config.translation.bleu_examples=2",
            "--config.translation.eval_examples=2",
            "--config.translation.beam=1",
        ),
        says="nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0",
    ),
    Rule(r"scaling.translate --checkpoint=", "translate", ("--max_examples=2",), says="BLEU"),
    Rule(
        r"scaling.translate --config=configs/translate_wmt14.py",
        "translate",
        code=1,
        says="tfds build wmt14_translate/fr-en --data_dir=",
    ),
    Rule(r"^launch/", "quick", ("--dry-run",)),
)


def rule_for(command: str) -> Rule | None:
    matches = [r for r in RULES if re.search(r.pattern, command)]
    return matches[0] if len(matches) == 1 else None


def test_every_readme_command_has_a_rule():
    commands = readme_commands()
    assert len(commands) >= 20
    unmatched = [c for c in commands if rule_for(c) is None]
    assert not unmatched, f"add one rule each to {__file__} for: {unmatched}"


def test_the_readme_test_command_is_what_ci_runs():
    (setup,) = [c for c in readme_commands() if rule_for(c).group == "ci"]

    def normal(text: str) -> str:  # .ci/run spells pip as `python -m pip … --quiet`
        return " ".join(text.replace('"', "").replace("python -m pip", "pip").replace("--quiet ", "").split())

    ci = normal((REPO / ".ci" / "run").read_text())
    for part in setup.split("&&")[2:]:  # after creating and activating the venv
        assert normal(part) in ci, part


def hf_checkpoint(directory: Path) -> None:
    """A tiny random Hugging Face T5 with the shipped sentencepiece model: stands in for a downloaded one."""
    import torch
    import transformers

    from scaling.data import vocab

    torch.manual_seed(0)
    config = transformers.T5Config(
        vocab_size=8192, d_model=32, d_ff=64, num_layers=1, num_heads=2, d_kv=16, decoder_start_token_id=0
    )
    transformers.T5ForConditionalGeneration(config).save_pretrained(directory)
    shutil.copy(vocab.DEFAULT_SPM_PATH, directory / "spiece.model")


def run(command: str, rule: Rule, tmp: Path) -> None:
    if rule.last:
        command = command.split("&&")[-1].strip()
    command = command.replace("/tmp/", f"{tmp}/").replace("/path/to/", f"{tmp}/path/to/")
    argv = shlex.split(command) + [a.replace("/tmp/", f"{tmp}/") for a in rule.append]
    if argv[0] == "python":
        argv[0] = sys.executable
    elif argv[0].startswith("launch/"):
        argv = ["bash", *argv]
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=900)
    output = proc.stdout + proc.stderr
    assert proc.returncode == rule.code, f"{command}\n{output[-3000:]}"
    assert rule.says in output, f"{command}\n{output[-3000:]}"
    if rule.code:
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, proc.stderr[-2000:]  # a mistake or failure is one line, never a traceback
        assert "Traceback" not in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("group", ["quick", "train", "convert", "downstream", "sweep", "profile", "translate"])
def test_readme_commands_run_as_written(group, tmp_path):
    if group == "convert":
        hf_checkpoint(tmp_path / "path/to/t5-efficient-small-nl24")
    commands = [(c, rule_for(c)) for c in readme_commands()]
    selected = [(c, r) for c, r in commands if r is not None and r.group == group]
    assert selected
    for command, rule in selected:
        run(command, rule, tmp_path)
