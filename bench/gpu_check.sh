#!/usr/bin/env bash
# The GPU checks in one command: on one H100/H200 it finishes in under 6 minutes (a lent machine's 15 minutes hold
# its start, one run and a rerun).
#
#   bash bench/gpu_check.sh [OUT_DIR]            # on a machine with a CUDA GPU (default OUT_DIR: bench/gpu-results)
#   bash bench/gpu_check.sh --dry-run [OUT_DIR]  # the same steps on the CPU at tiny sizes (~1 CPU minute)
#
# Run it from the repository root. It installs nothing (the GPU machine may be offline) and runs `python3`
# (or $PYTHON) with this checkout importable through PYTHONPATH=. That Python needs: torch with CUDA (2.2 or later;
# measured here with 2.14), torchvision, numpy, adversarial-robustness-toolbox 1.20, pyautoattack, tqdm, pytest
# (the CUDA tests), and art_rslad's other dependencies (see pyproject.toml); a C compiler for torch.compile's
# inductor backend. No dataset download: the training and AutoAttack steps use random CIFAR-shaped inputs, the
# torchrun smoke the Fashion-MNIST files the data module finds (the Debian package, $ART_RSLAD_DATA or the cache;
# probed under a time limit with torchvision's download disabled) or else scikit-learn's bundled digits.
#
# Steps, in this order, each under its own time limit (at most what is left of the budget), each writing
# OUT_DIR/<step>.log (and <step>.json where it measures); the correctness checks come first and the compile step
# last, so a slow compile can only run out its own time:
#   environment     versions and the device
#   cuda-tests      the CUDA variants of the tests (pytest -k cuda on the test files that have them)
#   nccl            bench/gpu_paths.py nccl under torchrun: two ranks where two GPUs exist, else one rank; NCCL
#                   (gloo in the dry run), a DDP step, sync_buffers, an all_reduce, an all_gather, SyncBatchNorm
#                   forward/backward; its JSON lists what one rank could not cover
#   torchrun-smoke  `art-rslad train` under torchrun (the ranks of the nccl step): 1 epoch on a few hundred
#                   Fashion-MNIST images (scikit-learn's digits where no Fashion-MNIST files are found;
#                   OUT_DIR/torchrun-preset.txt says)
#   resume          a small RSLAD fit interrupted and resumed: the largest weight difference to the uninterrupted
#                   fit without and with `deterministic`; its last.pt loaded on the CPU
#   syncs           host-device synchronisations per training step (torch.cuda.set_sync_debug_mode), with
#                   identity and with (mean, std) preprocessing
#   autoattack      standard AutoAttack through our report against pyautoattack directly, 500 CIFAR-shaped inputs
#   train-*         RSLAD through ART (AdversarialTrainerRSLAD.fit) against the plain PyTorch loop: ResNet-18
#                   student, WRN-34-10 teacher, batch 128, random 32x32x3 inputs, PGD-10; fp32, bf16 autocast,
#                   channels_last, both; images/s and torch.cuda.max_memory_allocated
#   train-compile   the plain loop with torch.compile(student) against the plain loop (our trainer has no compile
#                   option: this says whether one would pay)
# Then bench/gpu_report.py writes OUT_DIR/gpu-check.json and OUT_DIR/gpu-check.md. Exit status 1 if a step failed.
set -u

DRY_RUN=0
OUT=bench/gpu-results
for argument in "$@"; do
    case "$argument" in
        --dry-run) DRY_RUN=1 ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0"; exit 0 ;;
        -*) echo "gpu_check.sh: unknown option $argument (see --help)" >&2; exit 2 ;;
        *) OUT=$argument ;;
    esac
done
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

if [ "$DRY_RUN" = 1 ]; then
    DEVICE=cpu SETTING=cifar-tiny BATCH=4 NB_BATCHES=1 REPEATS=1 MAX_ITER=2 BACKEND=eager
    AA=(--model cnn-small --nb-images 8 --batch-size 8 --repeats 1)
    SMOKE=(--train-size 64 --val-size 16 --test-size 16 --attacks clean --student-option width=2)
    LIMIT=120 BUDGET=600 NPROC=1 NB_INPUTS=96
else
    DEVICE=cuda SETTING=cifar-resnet18 BATCH=128 NB_BATCHES=10 REPEATS=2 MAX_ITER=10 BACKEND=inductor
    AA=(--model resnet18 --nb-images 500 --batch-size 500 --repeats 2)
    SMOKE=(--train-size 512 --val-size 128 --test-size 128 --attacks clean pgd_sat)
    LIMIT=60 BUDGET=330  # seconds for all steps together: the whole check stays under 6 minutes
    NB_INPUTS=256
    NPROC=$("$PY" -c "import torch; print(min(2, torch.cuda.device_count()))" 2>/dev/null || echo 1)
fi

if ! "$PY" -c "import torch, art, pyautoattack, pytest, art_rslad" 2>/dev/null; then
    echo "gpu_check.sh: $PY cannot import torch, art, pyautoattack, pytest and art_rslad (this checkout);" \
         "install the packages listed at the top of this script." >&2
    exit 2
fi
if [ "$DEVICE" = cuda ] && ! "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    echo "gpu_check.sh: torch sees no CUDA device; run with --dry-run to check the steps on the CPU." >&2
    exit 2
fi
mkdir -p "$OUT"
: > "$OUT/steps.jsonl"

# step NAME SECONDS COMMAND...: run COMMAND under a time limit (at most what is left of BUDGET), its output in
# OUT/NAME.log, its exit status (124: out of time) in OUT/steps.jsonl
step() {
    local name=$1 limit=$2
    shift 2
    local started=$SECONDS
    if [ $((BUDGET - SECONDS)) -lt "$limit" ]; then limit=$((BUDGET - SECONDS)); fi
    if [ "$limit" -lt 5 ]; then limit=5; fi
    echo "== $name (limit ${limit}s)"
    timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
    local status=$?
    echo "{\"step\": \"$name\", \"rc\": $status, \"seconds\": $((SECONDS - started))}" >> "$OUT/steps.jsonl"
    tail -n 3 "$OUT/$name.log"
}

step environment 60 "$PY" -c "
import json, sys, art, pyautoattack, torch, art_rslad
from bench.common import environment
info = {**environment(torch.device('$DEVICE')), 'art': art.__version__, 'art_rslad': art_rslad.__version__,
        'pyautoattack': getattr(pyautoattack, '__version__', '?'), 'cuda': torch.version.cuda}
json.dump(info, open('$OUT/environment.json', 'w'), indent=1)
print(info)"

mapfile -t CUDA_TESTS < <(grep -l "cuda.is_available" tests/test_*.py)
step cuda-tests 90 "$PY" -m pytest -q -rs -p no:cacheprovider -k cuda "${CUDA_TESTS[@]}"

TORCHRUN=("$PY" -m torch.distributed.run --standalone --nproc-per-node "$NPROC")
step nccl 60 "${TORCHRUN[@]}" bench/gpu_paths.py nccl --device "$DEVICE" --json "$OUT/nccl.json"

# Fashion-MNIST where the data module finds it, within 60 s and with torchvision's download disabled; else
# scikit-learn's digits, which need no file (an offline machine)
PRESET=digits
if timeout --kill-after=5 60 "$PY" -c "
import torchvision.datasets.mnist as mnist
def refuse(*args, **kwargs):
    raise RuntimeError('no download in the GPU check')
mnist.download_and_extract_archive = mnist.download_url = refuse
from art_rslad.data import load_dataset
load_dataset('fashion-mnist', 'train')" > /dev/null 2>&1; then
    PRESET=fashion-mnist
fi
echo "torchrun smoke on the $PRESET preset, $NPROC process(es)" > "$OUT/torchrun-preset.txt"
step torchrun-smoke "$LIMIT" "${TORCHRUN[@]}" -m art_rslad train --preset "$PRESET" --method rslad \
    --set nb_epochs=1 "${SMOKE[@]}" --checkpoint-interval 0 --device "$DEVICE" --quiet --overwrite \
    --out "$OUT/torchrun-smoke"

step resume 90 "$PY" bench/gpu_paths.py resume --device "$DEVICE" --nb-inputs "$NB_INPUTS" --json "$OUT/resume.json"
step syncs 45 "$PY" bench/gpu_paths.py syncs --device "$DEVICE" --nb-inputs "$NB_INPUTS" --json "$OUT/syncs.json"

step autoattack "$LIMIT" "$PY" -m bench.bench_eval --setting cifar --device "$DEVICE" --threads 1 "${AA[@]}" \
    --json "$OUT/autoattack.json"

TRAIN=(-m bench.bench_training --setting "$SETTING" --device "$DEVICE" --batch-size "$BATCH"
       --nb-batches "$NB_BATCHES" --repeats "$REPEATS" --max-iter "$MAX_ITER" --threads 1)
step train-fp32 "$LIMIT" "$PY" "${TRAIN[@]}" --variants a,b --json "$OUT/train-fp32.json"
step train-bf16 "$LIMIT" "$PY" "${TRAIN[@]}" --variants a,b --amp-dtype bf16 --json "$OUT/train-bf16.json"
step train-channels-last "$LIMIT" "$PY" "${TRAIN[@]}" --variants a,b --channels-last \
    --json "$OUT/train-channels-last.json"
step train-bf16-channels-last "$LIMIT" "$PY" "${TRAIN[@]}" --variants a,b --amp-dtype bf16 --channels-last \
    --json "$OUT/train-bf16-channels-last.json"
# last: a slow first compile can only use up the time that is left
step train-compile $((LIMIT + 30)) "$PY" "${TRAIN[@]}" --variants b,d --compile-backend "$BACKEND" \
    --json "$OUT/train-compile.json"

"$PY" -m bench.gpu_report "$OUT"
