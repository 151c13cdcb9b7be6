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
            (its exit code goes to ~/train.exit)
  logs      print the last lines of every worker's log
  watch     poll the slice every --interval seconds until the run is done. A preempted or missing slice is
            recreated, set up and trained again; on a READY slice, worker 0's training exit code decides:
            0 done (watch exits 0), 75 preempted with the checkpoint saved (train again), no code and no
            process (train again), any other code a failure (watch stops and exits with it). Each new
            train resumes from the workdir's latest checkpoint.
  delete    delete the slice (and its queued resource)
  all       create, setup, train, watch
  sweep     one slice per line of --commands FILE (NAME-0, NAME-1, …), each created, set up and started
            with `python -m scaling.train LINE`; put the lines' workdirs under /mnt/scaling

options, as --name=VALUE or --name VALUE (required: --project --zone --name --accelerator --bucket, and
--config for train/watch/all):
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
  --interval SECONDS    for watch: seconds between polls (default 300)
  --dry-run             print the commands instead of running them
  -h, --help            this text

exit codes: 0 done; 2 bad arguments; watch exits with the trainer's failure code. The trainer exits 0 when
the run is finished and 75 (EX_TEMPFAIL) when it was preempted (SIGTERM): checkpoint saved, rerun to resume.
USAGE
}

ACTION=${1:-}
[[ -z "$ACTION" || "$ACTION" == -h || "$ACTION" == --help ]] && { usage; exit 0; }
[[ "$ACTION" != -* ]] || die "the first argument is the action (create, setup, train, …), got $ACTION (see --help)"
shift
PROJECT="" ZONE="" NAME="" ACCELERATOR="" VERSION="tpu-ubuntu2204-base" BUCKET="" CONFIG="" RUN="" SPOT=0 QUEUED=0
MODEL_PARALLEL=1 COMMANDS="" INTERVAL=300
VALUE_OPTIONS=(--project:PROJECT --zone:ZONE --name:NAME --accelerator:ACCELERATOR --version:VERSION --bucket:BUCKET
  --config:CONFIG --run:RUN --model-parallel:MODEL_PARALLEL --commands:COMMANDS --interval:INTERVAL)
FLAG_OPTIONS=(--spot:SPOT --queued:QUEUED)
parse_options "$@"

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

# start_training COMMAND: run the training command on every worker in the background, logging to ~/train.log;
# its exit code lands in ~/train.exit (0 finished, 75 preempted, else failed) and its pid in ~/train.pid. The
# wrapper shell outlives a SIGTERM (trap) so that it records the trainer's code after the checkpoint is saved.
start_training() {
  local inner="trap : TERM; $1; echo \$? > ~/train.exit"
  on_all_workers "rm -f ~/train.exit; cd ~/scaling && . .venv/bin/activate && \
nohup bash -c $(printf '%q' "$inner") > ~/train.log 2>&1 & echo \$! > ~/train.pid"
}

train() {
  require "config" "$CONFIG" --config
  local command
  command=$(train_command "$CONFIG" "$(workdir)" "--config.parallel.model=$MODEL_PARALLEL" "${OVERRIDES[@]}")
  start_training "$command"
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

# The training state on worker 0: its exit code, "running", or "gone" (no exit code and no process: the VM
# restarted, or training was never started).
# shellcheck disable=SC2016  # expanded on the worker
TRAINING_STATE='cat ~/train.exit 2>/dev/null || { kill -0 "$(cat ~/train.pid 2>/dev/null)" 2>/dev/null && echo running; } || echo gone'

watch() {
  require "config" "$CONFIG" --config
  [[ "$INTERVAL" =~ ^[0-9]+$ ]] || die "--interval must be a number of seconds, got $INTERVAL"
  if [[ "$DRY_RUN" == 1 ]]; then
    echo "# every $INTERVAL s until the run is done: the slice's state; PREEMPTED or missing: delete, create, setup, train"
    run "${GCLOUD_TPU[@]}" describe "$NAME" --format='value(state)'
    echo "# READY: worker 0's training exit code; 0: done, exit 0; $EXIT_PREEMPTED: preempted (checkpoint saved), train"
    echo "# again; no code and no process: train again; running: wait; other: stop and exit with that code"
    run "${GCLOUD_TPU[@]}" ssh "$NAME" --worker=0 --command="$TRAINING_STATE"
    echo "# each train resumes from the workdir's latest checkpoint"
    return
  fi
  local state code
  while ! completed; do
    state=$("${GCLOUD_TPU[@]}" describe "$NAME" --format='value(state)' 2>/dev/null || echo MISSING)
    case "$state" in
      READY)
        code=$("${GCLOUD_TPU[@]}" ssh "$NAME" --worker=0 --command="$TRAINING_STATE" 2>/dev/null | tail -n 1) ||
          code=unknown
        code=${code//[[:space:]]/}
        case "$code" in
          0) break ;;
          "$EXIT_PREEMPTED")
            echo "training on $NAME was preempted (exit $EXIT_PREEMPTED, checkpoint saved): training again"
            train
            ;;
          gone)
            echo "training on $NAME is not running and left no exit code (did the VM restart?): training again"
            train
            ;;
          running | unknown | "" | *[!0-9]*) ;;
          *)
            echo "training on $NAME failed with exit code $code: see \`launch/tpu_pod.sh logs\`; not retrying" >&2
            exit "$code"
            ;;
        esac
        ;;
      CREATING | STARTING | RESTARTING) ;;
      *)
        echo "slice $NAME is $state: recreating it; training resumes from the latest checkpoint"
        delete || true
        create
        setup
        train
        ;;
    esac
    sleep "$INTERVAL"
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
    start_training "python -m scaling.train $line --config.parallel.model=$MODEL_PARALLEL"
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
