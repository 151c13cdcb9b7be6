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

options (required: --partition --config --workdir, or --commands instead of --config/--workdir):
  --partition NAME       SLURM partition
  --account NAME         SLURM account (optional)
  --nodes N              nodes per run (default 1)
  --gpus-per-node N      GPUs per node (default 8); one process per GPU
  --time HH:MM:SS        wall-clock limit (default 24:00:00); a requeued job resumes from the checkpoint
  --config PATH          experiment file, e.g. configs/base.py
  --workdir DIR          shared-filesystem workdir (checkpoints, metrics) visible from every node
  --model-parallel N     tensor-parallel degree inside a node (parallel.model); data fills the rest
  --commands FILE        a sweep: one `--config=... --workdir=... [overrides]` line per run (job array)
  --venv DIR             virtualenv to activate on the nodes (default: .venv in this checkout)
  --dry-run              print the batch script and the sbatch command instead of submitting
  -h, --help             this text
USAGE
}

PARTITION="" ACCOUNT="" NODES=1 GPUS=8 TIME="24:00:00" CONFIG="" WORKDIR="" MODEL_PARALLEL=1 COMMANDS=""
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV="$ROOT/.venv"
OVERRIDES=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --partition) PARTITION=$2; shift 2 ;;
    --account) ACCOUNT=$2; shift 2 ;;
    --nodes) NODES=$2; shift 2 ;;
    --gpus-per-node) GPUS=$2; shift 2 ;;
    --time) TIME=$2; shift 2 ;;
    --config) CONFIG=$2; shift 2 ;;
    --workdir) WORKDIR=$2; shift 2 ;;
    --model-parallel) MODEL_PARALLEL=$2; shift 2 ;;
    --commands) COMMANDS=$2; shift 2 ;;
    --venv) VENV=$2; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; OVERRIDES=("$@"); break ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

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
srun --kill-on-bad-exit=1 bash -c 'export CUDA_VISIBLE_DEVICES=\$SLURM_LOCALID; exec $TRAIN'
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
