#!/usr/bin/env bash
# Train on a SLURM GPU cluster: one process per GPU across nodes; jax.distributed.initialize() reads SLURM's
# environment (scaling.parallel detects it). With --commands FILE, a job array runs one line per task (a sweep).
set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "$0")/common.sh"

usage() {
  cat <<'USAGE'
usage: launch/gpu_slurm.sh [options] [-- --config.FIELD=VALUE ...]

Writes a batch script and submits it with sbatch (--dry-run prints both instead).

options, as --name=VALUE or --name VALUE (required: --partition --config --workdir, or --commands instead of
--config/--workdir):
  --partition NAME       SLURM partition
  --account NAME         SLURM account (optional)
  --nodes N              nodes per run (default 1)
  --gpus-per-node N      GPUs per node (default 8); one process per GPU
  --time HH:MM:SS        wall-clock limit (default 24:00:00)
  --config PATH          experiment file, e.g. configs/base.py
  --workdir DIR          shared-filesystem workdir (checkpoints, metrics) visible from every node
  --model-parallel N     tensor-parallel degree inside a node (parallel.model); data fills the rest
  --commands FILE        a sweep: one `--config=... --workdir=... [overrides]` line per run (job array)
  --venv DIR             virtualenv to activate on the nodes (default: .venv in this checkout)
  --dry-run              print the batch script and the sbatch command instead of submitting
  -h, --help             this text

Preemption and the time limit: SLURM sends SIGTERM two minutes before the limit (--signal=TERM@120) and on
preemption; the trainer then saves a checkpoint and exits 75 (EX_TEMPFAIL: "preempted, checkpoint saved,
rerun to resume"), and the batch script requeues the job (scontrol requeue; the job is --requeue), which
resumes from that checkpoint. Exit 0 ends the job as finished; any other code fails it without a requeue.
USAGE
}

PARTITION="" ACCOUNT="" NODES=1 GPUS=8 TIME="24:00:00" CONFIG="" WORKDIR="" MODEL_PARALLEL=1 COMMANDS=""
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV="$ROOT/.venv"
VALUE_OPTIONS=(--partition:PARTITION --account:ACCOUNT --nodes:NODES --gpus-per-node:GPUS --time:TIME
  --config:CONFIG --workdir:WORKDIR --model-parallel:MODEL_PARALLEL --commands:COMMANDS --venv:VENV)
parse_options "$@"

require "partition" "$PARTITION" --partition
for value in "$NODES" "$GPUS" "$MODEL_PARALLEL"; do
  [[ "$value" =~ ^[1-9][0-9]*$ ]] || die "--nodes, --gpus-per-node and --model-parallel take positive integers"
done
(( GPUS % MODEL_PARALLEL == 0 )) || die "--model-parallel $MODEL_PARALLEL must divide --gpus-per-node $GPUS"
if [[ -n "$COMMANDS" ]]; then
  [[ -f "$COMMANDS" ]] || die "--commands file $COMMANDS does not exist"
  RUNS=$(grep -c . "$COMMANDS") || die "--commands file $COMMANDS is empty"
  TRAIN="python -m scaling.train \$(sed -n \"\$((SLURM_ARRAY_TASK_ID + 1))p\" $(printf '%q' "$(realpath "$COMMANDS")"))"
else
  require "config" "$CONFIG" --config
  require "workdir" "$WORKDIR" --workdir
  TRAIN=$(train_command "$CONFIG" "$WORKDIR" "${OVERRIDES[@]}")
fi
TRAIN+=" --config.parallel.model=$MODEL_PARALLEL"

SCRIPT=$(cat <<BATCH
#!/usr/bin/env bash
#SBATCH --job-name=scaling
#SBATCH --partition=$PARTITION
${ACCOUNT:+#SBATCH --account=$ACCOUNT}
#SBATCH --nodes=$NODES
#SBATCH --ntasks-per-node=$GPUS
#SBATCH --gpus-per-node=$GPUS
#SBATCH --cpus-per-task=8
#SBATCH --time=$TIME
#SBATCH --requeue
#SBATCH --signal=TERM@120
${COMMANDS:+#SBATCH --array=0-$((${RUNS:-1} - 1))}
set -euo pipefail
cd $(printf '%q' "$ROOT")
source $(printf '%q' "$VENV")/bin/activate
# One process per GPU; each sees only its own GPU, and jax.distributed reads SLURM_* for the coordinator.
# SIGTERM (--signal above, or a preemption) reaches every process of the job; the trainer then saves a checkpoint
# and exits $EXIT_PREEMPTED (preempted, rerun to resume), and rank 0 requeues the job, which resumes from it.
# The shells here catch SIGTERM (trap) so they wait for the trainer instead of dying first. Every rank reports
# $EXIT_PREEMPTED to srun as 0 so that --kill-on-bad-exit does not kill a rank that is still finishing.
trap : TERM
task() {
  export CUDA_VISIBLE_DEVICES=\$SLURM_LOCALID
  trap : TERM
  local code=0
  $TRAIN || code=\$?
  if (( code == $EXIT_PREEMPTED )); then
    echo "rank \$SLURM_PROCID: preempted (exit $EXIT_PREEMPTED), checkpoint saved" >&2
    if (( SLURM_PROCID == 0 )); then
      scontrol requeue "\$SLURM_JOB_ID" || return $EXIT_PREEMPTED
    fi
    return 0
  fi
  return "\$code"
}
srun --kill-on-bad-exit=1 bash -c "\$(declare -f task); task"
BATCH
)

if [[ "$DRY_RUN" == 1 ]]; then
  echo "$SCRIPT"
  echo "# submit with:"
  run sbatch /tmp/scaling-slurm.sbatch
else
  printf '%s\n' "$SCRIPT" > /tmp/scaling-slurm.sbatch
  sbatch /tmp/scaling-slurm.sbatch
fi
