#!/usr/bin/env bash
# The accelerator check (issue 19): on a machine with an NVIDIA GPU, installs what it needs and, within eight
# minutes, prints
#   1. the bfloat16 matmul peak and attention alone, cuDNN against XLA (bench/kernels.py);
#   2. bench/mfu.py for T5-base at 512/114 in bfloat16 at the largest batch that fits: the batch the memory
#      estimate (scaling.accounting) allows, halved until a step runs;
#   3. the same step with cuDNN's attention instead of XLA's (the A/B inside the train step);
#   4. bench/train_step.py against transformers on CUDA (bfloat16; the peer under torch.autocast).
# Each step has a time limit inside the eight minutes; a step that fails or does not fit is reported at the end
# (exit 1) and does not stop the others. --dry-run builds the same command lines at tiny sizes and runs them on
# the CPU in one Python process (imports and compilations once), so the whole script is checked in well under a
# minute.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bash bench/accelerator_check.sh [--dry-run] [--no-install] [--help]

On a GPU machine: pip install -e '.[cuda]' and the CUDA torch and transformers, then the four measurements
(bf16 matmul peak and attention alone; T5-base MFU at 512/114 in bfloat16 at the largest batch that fits; cuDNN
against XLA attention in that step; the train step against transformers on CUDA), within eight minutes.

  --dry-run     everything on the CPU at tiny sizes, without installing (checks the script; well under a minute)
  --no-install  use the packages already installed (a machine without network access)
  -h, --help    this message
EOF
}

DRY_RUN=0
INSTALL=1
for arg in "$@"; do
    case "$arg" in
    --dry-run) DRY_RUN=1 INSTALL=0 ;;
    --no-install) INSTALL=0 ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        echo "accelerator_check.sh: unknown option '$arg'; see --help" >&2
        exit 2
        ;;
    esac
done

cd "$(dirname "$0")/.."
BUDGET_SECONDS=480
FAILED=()
DEFERRED=$(mktemp) # dry run: one line per step, "NAME python SCRIPT ARGS..." shell-quoted
trap 'rm -f "$DEFERRED"' EXIT

# step NAME LIMIT COMMAND...: the command within LIMIT seconds or what is left of the budget, whichever is less.
step() {
    local name=$1 limit=$2 left
    shift 2
    if ((DRY_RUN)); then
        printf '%q ' "$name" "$@" >>"$DEFERRED"
        echo >>"$DEFERRED"
        return 0
    fi
    left=$((BUDGET_SECONDS - SECONDS))
    if ((left < 30)); then
        echo "== $name: skipped, the eight minutes are spent"
        FAILED+=("$name (no time left)")
        return 1
    fi
    ((limit > left)) && limit=$left
    echo "== $name (at most ${limit}s)"
    if ! timeout "$limit" "$@"; then
        FAILED+=("$name")
        return 1
    fi
}

if ((DRY_RUN)); then
    # The CPU, and cheap compilation: the dry run checks the steps, not the speed of what XLA makes of them.
    export JAX_PLATFORMS=cpu CUDA_VISIBLE_DEVICES=""
    export XLA_FLAGS="${XLA_FLAGS:-} --xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
    SHAPE=tiny-nl1-dm32-ff64-nh2-kv16 INPUTS=16 TARGETS=4 MATMUL=256 DEVICE=cpu
    KERNELS=(--batch 2 --length 16 --repeats 2 --impls einsum xla cudnn)
    MFU=(--steps 1 --peak-sizes 64) # unoptimised XLA takes minutes over the full-size matmuls of the limit
    TRAIN_STEP=(--batch 2 --rounds 1 --steps 1 --warmup 1)
    BATCHES=(2)
else
    SHAPE=base INPUTS=512 TARGETS=114 MATMUL=8192 DEVICE=cuda
    KERNELS=(--batch 32 --length 512 --repeats 10 --impls xla cudnn)
    MFU=(--steps 5)
    TRAIN_STEP=(--batch 32 --rounds 3 --steps 3 --warmup 2)
    if ((INSTALL)); then
        echo "== install"
        python -m pip install --quiet -e '.[cuda]'
        python -m pip install --quiet 'torch==2.13.0' 'transformers==5.23.0' # pip's Linux torch is the CUDA build
    fi
    if ! python -c 'import jax, sys; sys.exit(jax.default_backend() != "gpu")'; then
        echo "accelerator_check.sh: jax sees no GPU (backend: $(python -c 'import jax; print(jax.default_backend())')); run it on a GPU machine, or use --dry-run" >&2
        exit 1
    fi
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    # The largest power-of-two batch whose estimated step memory fits in 60% of the device (XLA adds temporaries).
    mapfile -t BATCHES < <(
        python - "$SHAPE" "$INPUTS" "$TARGETS" <<'EOF'
import sys

import jax

from scaling import accounting, shapes

shape, inputs, targets = shapes.parse(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
limit = 0.6 * jax.devices()[0].memory_stats()["bytes_limit"]
estimate = accounting.memory_estimate(shape, accounting.SequenceLengths(inputs, targets), compute_bytes=2)
batch = 1
while estimate.total(2 * batch) <= limit:
    batch *= 2
print("\n".join(str(max(batch >> i, 1)) for i in range(3)))
EOF
    )
fi
echo "shape $SHAPE at $INPUTS/$TARGETS; batches to try: ${BATCHES[*]}"

step "1. bf16 matmul peak; attention alone, cuDNN against XLA" 90 \
    python bench/kernels.py --shape "$SHAPE" --dtype bfloat16 --matmul-size "$MATMUL" "${KERNELS[@]}" || true

# The step is the only user of the device here, so let XLA take nearly all of its memory.
BATCH=""
for batch in "${BATCHES[@]}"; do
    if XLA_PYTHON_CLIENT_MEM_FRACTION=0.95 step "2. T5 MFU, bfloat16, XLA attention, batch $batch" 150 \
        python bench/mfu.py --shapes "$SHAPE" --batch "$batch" --inputs-length "$INPUTS" --targets-length "$TARGETS" \
        --dtype bfloat16 --attention xla "${MFU[@]}"; then
        BATCH=$batch
        break
    fi
done

if [[ -n "$BATCH" ]]; then
    ATTENTION=cudnn
    ((DRY_RUN)) && ATTENTION=einsum # cuDNN needs a GPU; the dry run takes the other path through the same code
    XLA_PYTHON_CLIENT_MEM_FRACTION=0.95 step "3. the same step with $ATTENTION attention, batch $BATCH" 150 \
        python bench/mfu.py --shapes "$SHAPE" --batch "$BATCH" --inputs-length "$INPUTS" --targets-length "$TARGETS" \
        --dtype bfloat16 --attention "$ATTENTION" "${MFU[@]}" || true
else
    FAILED+=("3. cuDNN attention in the step (no batch fitted)")
fi

# Both libraries share the device: jax takes memory as it needs it instead of 75% up front.
XLA_PYTHON_CLIENT_PREALLOCATE=false step "4. train step against transformers on $DEVICE" 150 \
    python bench/train_step.py --shapes "$SHAPE" --inputs-length "$INPUTS" --targets-length "$TARGETS" \
    --device "$DEVICE" --dtype bfloat16 "${TRAIN_STEP[@]}" || true

if ((DRY_RUN)); then
    python - "$DEFERRED" <<'EOF' || FAILED+=("a dry-run step")
import runpy
import shlex
import sys
import traceback

failed = False
for line in open(sys.argv[1]):
    name, _, *argv = shlex.split(line)  # NAME python SCRIPT ARGS...
    print(f"== {name}", flush=True)
    sys.argv = argv
    try:
        runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as e:
        failed |= bool(e.code)
    except Exception:
        traceback.print_exc()
        failed = True
sys.exit(failed)
EOF
fi

echo "== done in ${SECONDS}s"
if ((${#FAILED[@]})); then
    printf 'failed or skipped: %s\n' "${FAILED[@]}" >&2
    exit 1
fi
