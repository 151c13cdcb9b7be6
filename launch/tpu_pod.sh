#!/usr/bin/env bash
# Train on a Cloud TPU pod slice: create it, install the project on every worker, run the same training
# command on all of them (jax.distributed finds the slice by itself), follow the logs, resume after a
# preemption, delete it.
set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "$0")/common.sh"

usage() {
  cat <<'USAGE'
usage: launch/tpu_pod.sh ACTION [options] [-- --config.FIELD=VALUE ...]

actions:
  create    create the slice (plain, or --queued for a queued resource; --spot for spot capacity)
  setup     copy this checkout (git archive HEAD) to every worker, install it, mount the bucket
  train     start `python -m scaling.train` on every worker, in the background, logging to ~/train.log
  logs      print the last lines of every worker's log
  watch     poll the slice; when it is preempted or gone, recreate it, set it up and train again
            (training resumes from the workdir's latest checkpoint); stop when the run completes
  delete    delete the slice (and its queued resource)
  all       create, setup, train, watch
  sweep     one slice per line of --commands FILE (NAME-0, NAME-1, …), each created, set up and started
            with `python -m scaling.train LINE`; put the lines' workdirs under /mnt/scaling

options (required: --project --zone --name --accelerator --bucket, and --config for train/watch/all):
  --project ID          Google Cloud project
  --zone ZONE           e.g. europe-west4-a
  --name NAME           slice name
  --accelerator TYPE    e.g. v3-32 (16 chips, the paper's smallest setting), v4-32, v5litepod-64
  --version VERSION     TPU VM runtime (default: tpu-ubuntu2204-base)
  --bucket gs://B       bucket mounted at /mnt/scaling on every worker (gcsfuse); workdirs live there
  --config PATH         experiment file, e.g. configs/small_nl24.py
  --run NAME            workdir name under the bucket (default: the config's file name)
  --spot                spot / preemptible capacity
  --queued              create through a queued resource (waits for capacity)
  --model-parallel N    tensor-parallel degree inside each host (parallel.model); data fills the rest
  --commands FILE       for sweep: one `--config=... --workdir=... [overrides]` line per run
  --dry-run             print the commands instead of running them
  -h, --help            this text
USAGE
}

ACTION=${1:-}
[[ -z "$ACTION" || "$ACTION" == -h || "$ACTION" == --help ]] && { usage; exit 0; }
shift
PROJECT="" ZONE="" NAME="" ACCELERATOR="" VERSION="tpu-ubuntu2204-base" BUCKET="" CONFIG="" RUN="" SPOT=0 QUEUED=0
MODEL_PARALLEL=1 COMMANDS=""
OVERRIDES=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --project) PROJECT=$2; shift 2 ;;
    --zone) ZONE=$2; shift 2 ;;
    --name) NAME=$2; shift 2 ;;
    --accelerator) ACCELERATOR=$2; shift 2 ;;
    --version) VERSION=$2; shift 2 ;;
    --bucket) BUCKET=$2; shift 2 ;;
    --config) CONFIG=$2; shift 2 ;;
    --run) RUN=$2; shift 2 ;;
    --spot) SPOT=1; shift ;;
    --queued) QUEUED=1; shift ;;
    --model-parallel) MODEL_PARALLEL=$2; shift 2 ;;
    --commands) COMMANDS=$2; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; OVERRIDES=("$@"); break ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

require "project" "$PROJECT" --project
require "zone" "$ZONE" --zone
require "slice name" "$NAME" --name
require "accelerator type" "$ACCELERATOR" --accelerator
require "bucket" "$BUCKET" --bucket
[[ "$BUCKET" == gs://* ]] || die "--bucket must be a gs:// URI, got $BUCKET"
[[ "$MODEL_PARALLEL" =~ ^[1-9][0-9]*$ ]] || die "--model-parallel must be a positive integer, got $MODEL_PARALLEL"

MOUNT=/mnt/scaling
GCLOUD_TPU=(gcloud compute tpus tpu-vm --project="$PROJECT" --zone="$ZONE")

on_all_workers() {
  run "${GCLOUD_TPU[@]}" ssh "$NAME" --worker=all --command="$1"
}

create() {
  local capacity=()
  [[ "$SPOT" == 1 ]] && capacity=(--spot)
  if [[ "$QUEUED" == 1 ]]; then
    run gcloud compute tpus queued-resources create "$NAME" --project="$PROJECT" --zone="$ZONE" --node-id="$NAME" \
      --accelerator-type="$ACCELERATOR" --runtime-version="$VERSION" "${capacity[@]}"
  else
    run "${GCLOUD_TPU[@]}" create "$NAME" --accelerator-type="$ACCELERATOR" --version="$VERSION" "${capacity[@]}"
  fi
}

setup() {
  local archive=/tmp/scaling-src.tar.gz
  run git -C "$(dirname "$0")/.." archive --format=tar.gz --output="$archive" HEAD
  run "${GCLOUD_TPU[@]}" scp "$archive" "$NAME:$archive" --worker=all
  on_all_workers "set -e; mkdir -p ~/scaling && tar -xzf $archive -C ~/scaling; cd ~/scaling; \
python3 -m venv .venv; . .venv/bin/activate; pip install -q -e '.[tpu]'; \
(command -v gcsfuse >/dev/null || (sudo apt-get update -q && sudo apt-get install -y -q gcsfuse)); \
sudo mkdir -p $MOUNT && sudo chown \$USER $MOUNT; mountpoint -q $MOUNT || gcsfuse --implicit-dirs ${BUCKET#gs://} $MOUNT"
}

workdir() {
  echo "$MOUNT/$(run_name)"
}

train() {
  require "config" "$CONFIG" --config
  local command
  command=$(train_command "$CONFIG" "$(workdir)" "--config.parallel.model=$MODEL_PARALLEL" "${OVERRIDES[@]}")
  on_all_workers "cd ~/scaling && . .venv/bin/activate && nohup $command > ~/train.log 2>&1 &"
}

logs() {
  on_all_workers "tail -n 20 ~/train.log"
}

delete() {
  if [[ "$QUEUED" == 1 ]]; then
    run gcloud compute tpus queued-resources delete "$NAME" --project="$PROJECT" --zone="$ZONE" --force --quiet
  else
    run "${GCLOUD_TPU[@]}" delete "$NAME" --quiet
  fi
}

run_name() {
  echo "${RUN:-$(basename "${CONFIG%.py}")}"
}

completed() {
  # The trainer's summary.json says completed=true once the budget is spent.
  gcloud storage cat "$BUCKET/$(run_name)/summary.json" 2>/dev/null | grep -q '"completed": true'
}

watch() {
  require "config" "$CONFIG" --config
  if [[ "$DRY_RUN" == 1 ]]; then
    echo "# every 5 minutes: describe the slice; on PREEMPTED or missing: delete, create, setup, train (resumes)"
    run "${GCLOUD_TPU[@]}" describe "$NAME" --format='value(state)'
    return
  fi
  while ! completed; do
    local state
    state=$("${GCLOUD_TPU[@]}" describe "$NAME" --format='value(state)' 2>/dev/null || echo MISSING)
    case "$state" in
      READY|CREATING|STARTING|RESTARTING) ;;
      *)
        echo "slice $NAME is $state: recreating it; training resumes from the latest checkpoint"
        delete || true
        create
        setup
        train
        ;;
    esac
    sleep 300
  done
  echo "run complete: $(workdir)/summary.json"
}

sweep() {
  require "commands file" "$COMMANDS" --commands
  [[ -f "$COMMANDS" ]] || die "--commands file $COMMANDS does not exist"
  local base=$NAME index=0 line
  while IFS= read -r line; do
    [[ -n "$line" ]] || continue
    NAME="$base-$index"
    create
    setup
    on_all_workers "cd ~/scaling && . .venv/bin/activate && nohup python -m scaling.train $line \
--config.parallel.model=$MODEL_PARALLEL > ~/train.log 2>&1 &"
    index=$((index + 1))
  done < "$COMMANDS"
  NAME=$base
}

case "$ACTION" in
  create) create ;;
  setup) setup ;;
  train) train ;;
  logs) logs ;;
  watch) watch ;;
  delete) delete ;;
  all) create; setup; train; watch ;;
  sweep) sweep ;;
  *) die "unknown action $ACTION (see --help)" ;;
esac
