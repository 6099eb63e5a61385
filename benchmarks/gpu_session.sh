#!/usr/bin/env bash
# The GPU measurements of issue #15, ready for a session that is lent a GPU through the device tool.
#
# Here, on the CPU machine, once (writes .gpu/, which git ignores; about 3 MiB):
#
#     SPGD_REPO=/path/to/CityU-MLO/sPGD bash benchmarks/gpu_session.sh prepare CK_DIR [CK_DIR ...]
#
# copies the pyhessian wheel, the authors' sPGD code (its .py files) and each checkpoint directory's
# checkpoint.pt into .gpu/. Then one device `run` per stage, each well inside the 10-minute limit,
# with `carry: [".gpu"]`:
#
#     bash benchmarks/gpu_session.sh epoch        # one Fast-LS-l0 epoch of PreActResNet-18, CIFAR-10-shaped:
#                                                 # images/s and 100 epochs, eager and --compile
#     bash benchmarks/gpu_session.sh reference    # bench_reference.py at the issue's sizes on each checkpoint:
#                                                 # sPGD, sAA (float32 and bf16 search), HVP, a training step
#     bash benchmarks/gpu_session.sh lanczos      # Lanczos top-20 against PyHessian on 1,000 images
#
# Each stage writes its log and JSON under $OUT (the device tool brings them back; without $OUT,
# under .gpu/out). DEVICE=cpu and SMALL=1 run the same stages on the CPU at toy sizes: that is how the
# script itself is checked (it proves the commands run, not the GPU numbers).
set -euo pipefail
cd "$(dirname "$0")/.."
stage=${1:-}
shift || true
OUT=${OUT:-.gpu/out}
DEVICE=${DEVICE:-cuda}
SMALL=${SMALL:-0}
mkdir -p "$OUT"

setup_env() {
    if ls .gpu/whl/*.whl >/dev/null 2>&1 && ! python3 -c "import pyhessian" 2>/dev/null; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl
        export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
    fi
    export PYTHONPATH=$PWD:${PYTHONPATH:-}
    export PYTHONUNBUFFERED=1
    if [ -d .gpu/sPGD ]; then export SPGD_REPO=${SPGD_REPO:-$PWD/.gpu/sPGD}; fi
    { date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
      python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"; } | tee "$OUT/env.txt"
}

checkpoints() {
    local found=0
    for ck in .gpu/ck/*/checkpoint.pt; do
        [ -e "$ck" ] || continue
        found=1
        echo "$ck"
    done
    if [ $found = 0 ]; then echo "no checkpoint in .gpu/ck: run the prepare stage here first" >&2; exit 2; fi
}

case "$stage" in
prepare)
    [ $# -ge 1 ] || { echo "usage: SPGD_REPO=... bash benchmarks/gpu_session.sh prepare CK_DIR [CK_DIR ...]" >&2; exit 2; }
    [ -n "${SPGD_REPO:-}" ] && [ -d "$SPGD_REPO" ] || { echo "set SPGD_REPO to a checkout of CityU-MLO/sPGD" >&2; exit 2; }
    mkdir -p .gpu/whl .gpu/ck .gpu/sPGD
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux2014_x86_64 -d .gpu/whl pyhessian
    (cd "$SPGD_REPO" && find . -name '*.py' -print0 | tar --null -cf - -T -) | tar -xf - -C .gpu/sPGD
    for d in "$@"; do
        [ -f "$d/checkpoint.pt" ] || { echo "$d holds no checkpoint.pt" >&2; exit 2; }
        name=$(basename "$d")
        mkdir -p ".gpu/ck/$name"
        cp "$d/checkpoint.pt" ".gpu/ck/$name/checkpoint.pt"
    done
    du -sh .gpu
    echo "now: run(command='bash benchmarks/gpu_session.sh epoch', carry=['.gpu']), then reference, then lanczos"
    ;;
epoch)
    setup_env
    n=50000; extra=()
    if [ "$SMALL" = 1 ]; then n=256; extra=(--batch-size 64); fi
    python3 benchmarks/bench_epoch.py --device "$DEVICE" --n-train $n "${extra[@]}" \
        --json "$OUT/epoch_eager.json" 2>&1 | tee "$OUT/epoch.log"
    # two epochs: the first one compiles, the faster is reported
    python3 benchmarks/bench_epoch.py --device "$DEVICE" --n-train $n "${extra[@]}" --compile --epochs 2 \
        --json "$OUT/epoch_compiled.json" 2>&1 | tee -a "$OUT/epoch.log"
    ;;
reference)
    setup_env
    sizes=(--full); [ "$SMALL" = 1 ] && sizes=(--n-images 16 --steps 3 --queries 5 --hessian-images 16 --repeats 1)
    for ck in $(checkpoints); do
        name=$(basename "$(dirname "$ck")")
        python3 benchmarks/bench_reference.py --device "$DEVICE" --checkpoint "$ck" --sections spgd,saa,hvp,train \
            --precision both "${sizes[@]}" --json "$OUT/reference_$name.json" 2>&1 | tee "$OUT/reference_$name.log"
    done
    ;;
lanczos)
    setup_env
    sizes=(--hessian-images 1000 --hessian-batch 200); [ "$SMALL" = 1 ] && sizes=(--hessian-images 16 --hessian-batch 8 --topk 3)
    for ck in $(checkpoints); do
        name=$(basename "$(dirname "$ck")")
        python3 benchmarks/bench_reference.py --device "$DEVICE" --checkpoint "$ck" --sections lanczos \
            --lanczos-solver auto,arpack "${sizes[@]}" --json "$OUT/lanczos_$name.json" 2>&1 | tee "$OUT/lanczos_$name.log"
    done
    ;;
*)
    echo "usage: bash benchmarks/gpu_session.sh prepare CK_DIR... | epoch | reference | lanczos" >&2
    exit 2
    ;;
esac
