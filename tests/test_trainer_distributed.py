"""The trainer on many devices and many hosts: losses do not depend on the mesh; two processes train as one.

The tests run this file as the worker: `python test_trainer_distributed.py mesh OUT` (8 faked CPU devices) or
`python test_trainer_distributed.py host ID PORT WORKDIR` (one of two jax.distributed processes).
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from processes import cpu_env, free_port

HERE = Path(__file__).resolve().parent


def _mesh_worker(out: str) -> None:
    import jax
    from test_trainer import tiny_config

    from scaling.training import trainer

    assert jax.device_count() == 8
    result = {}
    for name, sizes, devices in (("one", (1, 1, 1), jax.devices()[:1]), ("eight", (4, 1, 2), jax.devices())):
        config = tiny_config()
        config.parallel.data, config.parallel.fsdp, config.parallel.model = sizes
        workdir = Path(out) / name
        trainer.train(config, workdir, devices=devices, print_fn=lambda _: None)
        result[name] = [json.loads(line)["loss"] for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    Path(out, "losses.json").write_text(json.dumps(result))


def _host_worker(process_id: int, port: int, workdir: str) -> None:
    import jax

    jax.config.update("jax_num_cpu_devices", 1)
    from test_trainer import tiny_config

    from scaling import parallel
    from scaling.training import trainer

    config = tiny_config(
        **{
            "budget.amount": 3,
            "parallel.coordinator_address": f"127.0.0.1:{port}",
            "parallel.num_processes": 2,
            "parallel.process_id": process_id,
        }
    )
    assert parallel.initialize_distributed(config.parallel) and jax.process_count() == 2
    trainer.train(config, workdir, print_fn=lambda _: None)
    jax.distributed.shutdown()


def test_losses_do_not_depend_on_the_mesh(tmp_path):
    env = cpu_env(devices=8)
    proc = subprocess.run(
        [sys.executable, __file__, "mesh", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=HERE,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    losses = json.loads((tmp_path / "losses.json").read_text())
    assert len(losses["one"]) == 6
    np.testing.assert_allclose(losses["eight"], losses["one"], rtol=1e-5)


def test_two_processes_train_together_and_write_one_checkpoint(tmp_path):
    port = free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "host", str(i), str(port), str(tmp_path)],
            env=cpu_env(),
            stderr=subprocess.PIPE,
            text=True,
            cwd=HERE,
        )
        for i in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    steps = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
    assert steps[-1] == 3
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]  # written once, by process 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["hardware"]["process_count"] == 2 and summary["final_metrics"]["completed"]


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    if sys.argv[1] == "mesh":
        _mesh_worker(sys.argv[2])
    else:
        _host_worker(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
