#!/usr/bin/env bash
# Shared helpers for the launch scripts: the one option parser, argument checks and a dry-run-aware command
# runner. Sourced, not executed.

DRY_RUN=${DRY_RUN:-0}

# The trainer's exit code after a preemption (SIGTERM): the checkpoint is saved, rerun the same command to
# resume. 75 is EX_TEMPFAIL from sysexits.h. 0 means the run finished; anything else is a failure.
# shellcheck disable=SC2034  # used by the scripts that source this file
EXIT_PREEMPTED=75

die() {
  echo "error: $*" >&2
  exit 2
}

# parse_options ARG...: parse the script's options, spelled `--name=VALUE` or `--name VALUE`.
# The calling script declares them before the call, each as "--name:VARIABLE":
#   VALUE_OPTIONS  options that take a value, stored in VARIABLE
#   FLAG_OPTIONS   flags without a value; VARIABLE is set to 1
# --dry-run (sets DRY_RUN=1) and -h/--help (calls the script's usage and exits 0) are always there. Everything
# after `--` goes to OVERRIDES (training overrides such as --config.FIELD=VALUE). An unknown option, a
# missing or empty value, a value given to a flag or a stray argument is one line naming it, exit 2.
parse_options() {
  # shellcheck disable=SC2034  # OVERRIDES is read by the calling script
  OVERRIDES=()
  local arg name value spec
  while (($# > 0)); do
    arg=$1
    shift
    case "$arg" in
      --)
        # shellcheck disable=SC2034
        OVERRIDES=("$@")
        return 0
        ;;
      -h | --help)
        usage
        exit 0
        ;;
    esac
    name=${arg%%=*}
    for spec in --dry-run:DRY_RUN ${FLAG_OPTIONS[@]+"${FLAG_OPTIONS[@]}"}; do
      if [[ "$name" == "${spec%%:*}" ]]; then
        [[ "$arg" != *=* ]] || die "option $name takes no value, got $arg"
        printf -v "${spec#*:}" 1
        continue 2
      fi
    done
    for spec in ${VALUE_OPTIONS[@]+"${VALUE_OPTIONS[@]}"}; do
      if [[ "$name" == "${spec%%:*}" ]]; then
        if [[ "$arg" == *=* ]]; then
          value=${arg#*=}
        elif (($# > 0)) && [[ "$1" != -* ]]; then
          value=$1
          shift
        else
          value=""
        fi
        [[ -n "$value" ]] || die "option $name needs a value (see --help)"
        printf -v "${spec#*:}" '%s' "$value"
        continue 2
      fi
    done
    [[ "$arg" != -* ]] || die "unknown option $name (see --help)"
    die "unexpected argument $arg (see --help; training overrides go after --)"
  done
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
