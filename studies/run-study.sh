#!/bin/sh
# The reproduction study of issue 8: every method, 3 seeds, the preset's shipped teacher and tuned per-method
# learning rates, evaluated by `art-rslad compare` (clean, FGSM, PGD_SAT, PGD_TRADES, CW_inf, standard AA).
#
#   studies/run-study.sh fashion-mnist [SEED...]   # Fashion-MNIST, eps 0.1, AA on the first 1,000 test images
#   studies/run-study.sh digits [SEED...]          # scikit-learn's digits, eps 0.1, the whole 359-image test split
#
# Resumable: run it again after any interruption and it continues from the finished runs and the last checkpoints
# in studies/<preset>. Seeds default to 0 1 2; two processes on different seeds use both cores. METHODS=... in the
# environment replaces the method list (e.g. ART's trainers for issue 11, added to the same folder and table).
# Then `python studies/full_test.py studies/<preset> --out docs/results-<preset>` adds the whole test set.
set -e
cd "$(dirname "$0")/.."
preset="${1:?usage: studies/run-study.sh fashion-mnist|digits [SEED...]}"
shift
seeds="${*:-0 1 2}"
methods="${METHODS:-natural sat trades ard iad adaad rslad}"
case "$preset" in
    fashion-mnist) sizes="--val-size 1000 --test-size 1000" ;;
    digits) sizes="--val-size 144 --test-size 359" ;;
    *) echo "unknown study preset $preset (fashion-mnist or digits)" >&2; exit 2 ;;
esac
resume=""
[ -f "studies/$preset/compare.json" ] && resume="--resume"
# shellcheck disable=SC2086
OMP_NUM_THREADS=1 exec .venv/bin/art-rslad compare --preset "$preset" --methods $methods --seeds $seeds $sizes \
    --out "studies/$preset" --quiet $resume
