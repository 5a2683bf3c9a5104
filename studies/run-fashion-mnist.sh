#!/bin/sh
# The reproduction study of issue 8 on Fashion-MNIST (eps 0.1): every method, 3 seeds, the shipped teacher, the
# preset's tuned per-method learning rates. Resumable: run it again after any interruption and it continues from
# the finished runs and the last checkpoints in studies/fashion-mnist. Optional arguments: the seeds to run
# (default 0 1 2); two processes on different seeds use both cores, e.g. `run-fashion-mnist.sh 0 1 & run-fashion-mnist.sh 2`.
set -e
cd "$(dirname "$0")/.."
seeds="${*:-0 1 2}"
resume=""
[ -f studies/fashion-mnist/compare.json ] && resume="--resume"
# shellcheck disable=SC2086
OMP_NUM_THREADS=1 exec .venv/bin/art-rslad compare --preset fashion-mnist \
    --methods natural sat trades ard iad adaad rslad --seeds $seeds \
    --val-size 1000 --test-size 1000 --out studies/fashion-mnist --quiet $resume
