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
USAGE
}

COORDINATOR="" NUM="" ID="" CONFIG="" WORKDIR="" MODEL_PARALLEL=1
OVERRIDES=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --coordinator) COORDINATOR=$2; shift 2 ;;
    --num-processes) NUM=$2; shift 2 ;;
    --process-id) ID=$2; shift 2 ;;
    --config) CONFIG=$2; shift 2 ;;
    --workdir) WORKDIR=$2; shift 2 ;;
    --model-parallel) MODEL_PARALLEL=$2; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; OVERRIDES=("$@"); break ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

require "coordinator address" "$COORDINATOR" --coordinator
require "process count" "$NUM" --num-processes
require "process id" "$ID" --process-id
require "config" "$CONFIG" --config
require "workdir" "$WORKDIR" --workdir
[[ "$COORDINATOR" =~ ^[^:]+:[0-9]+$ ]] || die "--coordinator must be HOST:PORT, got $COORDINATOR"
[[ "$NUM" =~ ^[1-9][0-9]*$ && "$ID" =~ ^[0-9]+$ ]] || die "--num-processes and --process-id take integers"
(( ID < NUM )) || die "--process-id $ID must be below --num-processes $NUM"

cd "$(dirname "$0")/.."
run python -m scaling.train "--config=$CONFIG" "--workdir=$WORKDIR" "${OVERRIDES[@]}" \
  "--config.parallel.coordinator_address=$COORDINATOR" "--config.parallel.num_processes=$NUM" \
  "--config.parallel.process_id=$ID" "--config.parallel.model=$MODEL_PARALLEL"
