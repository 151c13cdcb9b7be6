#!/usr/bin/env bash
# Shared helpers for the launch scripts: argument checks and a dry-run-aware command runner.
# Sourced, not executed.

DRY_RUN=${DRY_RUN:-0}

die() {
  echo "error: $*" >&2
  exit 2
}

# require NAME VALUE FLAG: refuse to start without a required setting, naming the flag that sets it.
require() {
  [[ -n "$2" ]] || die "missing $1: pass $3 (see --help)"
}

# run CMD...: print the command (shell-quoted) under --dry-run, execute it otherwise.
run() {
  if [[ "$DRY_RUN" == 1 ]]; then
    printf '%q ' "$@"
    printf '\n'
  else
    "$@"
  fi
}

# train_command CONFIG WORKDIR [OVERRIDE...]: the one training command every process runs.
train_command() {
  local config=$1 workdir=$2
  shift 2
  printf 'python -m scaling.train --config=%q --workdir=%q' "$config" "$workdir"
  local override
  for override in "$@"; do
    printf ' %q' "$override"
  done
}
