#!/bin/sh
# The preregistered long-schedule study: PREREGISTRATION.md beside this file fixes its settings and analysis.
# PART is digits-small (part A) or fashion-mnist (part B).
#
#   studies/long-schedule/run.sh PART tune 1/2              # learning rates, half the methods (2/2: the others)
#   studies/long-schedule/run.sh PART config                # PART.toml from both halves' tuning.json
#   studies/long-schedule/run.sh digits-small run 0 1 2     # one compare per seed (another process: run 3 4)
#   studies/long-schedule/run.sh fashion-mnist run 0 1      # (another process: run 2)
#   studies/long-schedule/run.sh fashion-mnist width        # part B's student width, on validation data only;
#                                                           # before its tune, config and run steps
#   studies/long-schedule/run.sh digits-small table         # docs/results-long-schedule-digits-small.{md,json} and
#                                                           # its -curves.png and -bars.png, from the finished runs
#   studies/long-schedule/run.sh fashion-mnist table        # the same, after clean to CW_inf on all 10,000 test
#                                                           # images (resumable, full_best/full_last in each run)
#
# Every step resumes from its own output: run it again after any interruption. OMP_NUM_THREADS=1 per process.
set -e
cd "$(dirname "$0")/../.."
here=studies/long-schedule
part="${1:?usage: run.sh digits-small|fashion-mnist width|tune K/2|config|run SEED...|table}"
step="${2:?usage: run.sh PART width|tune K/2|config|run SEED...|table}"
shift 2
export OMP_NUM_THREADS=1
cli=".venv/bin/art-rslad"
case "$part" in
    digits-small)
        preset=digits; width=4; train=10000; val=144; test=359; epochs=300; tune_epochs=30; seeds="0 1 2 3 4"
        full_test=""  # test=359 is the whole test set
        methods="natural sat trades ard iad adaad rslad rslad+igdm adaiad adaiad+igdm peeraid sat+ema rslad+ema" ;;
    fashion-mnist)
        preset=fashion-mnist; width=$(sed -n 's/.*"chosen_width": \([0-9]*\).*/\1/p' "$here/fashion-mnist-width.json" 2>/dev/null || true); train=10000; val=1000; test=1000; epochs=30; tune_epochs=6
        seeds="0 1 2"; methods="sat trades ard rslad rslad+igdm adaiad+igdm peeraid sat+ema rslad+ema"
        full_test="--full-test" ;;  # AA on the compare's 1,000 test images, the other attacks on all 10,000
    *) echo "unknown part $part (digits-small or fashion-mnist)" >&2; exit 2 ;;
esac
case "$step" in width|table) ;; *)
    [ -n "$width" ] || { echo "no chosen width in $here/fashion-mnist-width.json: run the width step first" >&2; exit 2; } ;;
esac
case "$step" in
    tune)
        half="${1:?tune needs K/2}"; k="${half%/2}"
        # shellcheck disable=SC2086
        chosen=$(echo $methods | tr ' ' '\n' | awk -v k="$k" 'NR % 2 == k % 2')
        # shellcheck disable=SC2086
        exec $cli tune --preset "$preset" --student-option "width=$width" --methods $chosen \
            --epochs "$tune_epochs" --train-size "$train" --val-size "$val" --out "$here/$part-tune-$k" --quiet ;;
    config)
        exec .venv/bin/python - "$preset" "$epochs" "$here/$part.toml" "$here/$part-tune-1" "$here/$part-tune-2" <<'PY'
import json, sys
from pathlib import Path
from art_rslad.experiments.config import get_preset
preset, epochs, out, *tunings = sys.argv[1:]
chosen = {}
for folder in tunings:
    chosen.update(json.loads((Path(folder) / "tuning.json").read_text())["chosen"])
note = (f"Chosen by the validation rule with art-rslad tune (the tuning.json files in {', '.join(tunings)}), "
        "as PREREGISTRATION.md says.")
config = get_preset(preset).with_overrides([f"nb_epochs={epochs}"])
config = type(config)(**{**config.__dict__, "name": Path(out).stem, "method_lr": chosen, "method_lr_note": note})
config.validate()
config.save(out)
print(f"{out}: method_lr {chosen}")
PY
        ;;
    run)
        list="$*"
        [ -n "$list" ] || list="$seeds"
        for seed in $list; do
            resume=""
            [ -f "$here/$part/seed-$seed/compare.json" ] && resume="--resume"
            # shellcheck disable=SC2086
            $cli compare --config "$here/$part.toml" --student-option "width=$width" --methods $methods \
                --seeds "$seed" --train-size "$train" --val-size "$val" --test-size "$test" \
                --out "$here/$part/seed-$seed" --quiet $resume
        done ;;
    width)
        [ "$part" = fashion-mnist ] || { echo "the width rule is part B's (fashion-mnist)" >&2; exit 2; }
        exec .venv/bin/python "$here/width_rule.py" ;;
    table)
        export PYTHONPATH=.  # table.py imports studies/full_test.py
        # shellcheck disable=SC2086
        exec .venv/bin/python "$here/table.py" "$here/$part" $full_test \
            --out "docs/results-long-schedule-$part" ;;
    *) echo "unknown step $step" >&2; exit 2 ;;
esac
