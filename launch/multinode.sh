#!/usr/bin/env bash
# Multi-node training without SLURM (torchrun style): start this on every node with the same coordinator
# and process count and its own process id; each process drives all GPUs of its node.
set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "$0")/common.sh"

usage() {
  cat <<'USAGE'
usage: launch/multinode.sh --coordinator HOST:PORT --num-processes N --process-id I --config PATH --workdir DIR
                           [--model-parallel N] [--dry-run] [-- --config.FIELD=VALUE ...]

Run it once per node (process id 0 on the coordinator's node). The workdir must be on a filesystem every
node sees; checkpoints and metrics go there, and rerunning the same commands resumes.

options, as --name=VALUE or --name VALUE (all required except --model-parallel, --dry-run and --help):
  --coordinator HOST:PORT  address of process 0, reachable from every node (jax.distributed)
  --num-processes N        number of processes (nodes) in the run
  --process-id I           this process's id, 0 … N-1
  --config PATH            experiment file, e.g. configs/base.py
  --workdir DIR            shared-filesystem workdir (checkpoints, metrics) visible from every node
  --model-parallel N       tensor-parallel degree inside a node (parallel.model, default 1); data fills the rest
  --dry-run                print the training command instead of running it
  -h, --help               this text

exit code: the trainer's own (the script becomes the trainer process, so a SIGTERM sent to it reaches the
trainer): 0 finished; 75 (EX_TEMPFAIL) preempted: checkpoint saved, rerun the same commands to resume;
2 bad arguments; anything else a failure.
USAGE
}

COORDINATOR="" NUM="" ID="" CONFIG="" WORKDIR="" MODEL_PARALLEL=1
VALUE_OPTIONS=(--coordinator:COORDINATOR --num-processes:NUM --process-id:ID --config:CONFIG --workdir:WORKDIR
  --model-parallel:MODEL_PARALLEL)
parse_options "$@"

require "coordinator address" "$COORDINATOR" --coordinator
require "process count" "$NUM" --num-processes
require "process id" "$ID" --process-id
require "config" "$CONFIG" --config
require "workdir" "$WORKDIR" --workdir
[[ "$COORDINATOR" =~ ^[^:]+:[0-9]+$ ]] || die "--coordinator must be HOST:PORT, got $COORDINATOR"
[[ "$NUM" =~ ^[1-9][0-9]*$ && "$ID" =~ ^[0-9]+$ ]] || die "--num-processes and --process-id take integers"
(( ID < NUM )) || die "--process-id $ID must be below --num-processes $NUM"

cd "$(dirname "$0")/.."
COMMAND=(python -m scaling.train "--config=$CONFIG" "--workdir=$WORKDIR" "${OVERRIDES[@]}"
  "--config.parallel.coordinator_address=$COORDINATOR" "--config.parallel.num_processes=$NUM"
  "--config.parallel.process_id=$ID" "--config.parallel.model=$MODEL_PARALLEL")
if [[ "$DRY_RUN" == 1 ]]; then
  run "${COMMAND[@]}"
  echo "# exec: this script exits with the trainer's code (0 finished, $EXIT_PREEMPTED preempted: rerun to resume)"
else
  exec "${COMMAND[@]}"
fi
