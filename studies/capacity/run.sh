#!/bin/sh
# The preregistered capacity study: PREREGISTRATION.md beside this file fixes its settings, rules and analysis.
#
#   studies/capacity/run.sh tune-sat                # SAT's lr at every width (validation only)
#   studies/capacity/run.sh sat [SEED...]           # SAT's study runs at every width (default seeds 0 1 2)
#   studies/capacity/run.sh teacher                 # the teacher's validation numbers and its test numbers
#   studies/capacity/run.sh gap                     # the size G by the gap rule (validation only): gap.json
#   studies/capacity/run.sh tune WIDTH METHOD...     # the tuning rule for METHOD at WIDTH (validation only)
#   studies/capacity/run.sh leaderboard 1/2         # every method at G, tuned then run (another process: 2/2)
#   studies/capacity/run.sh choose                  # the capacity curve's third method: third.json
#   studies/capacity/run.sh capacity 1/2            # RSLAD and the third method at every width (another: 2/2)
#   studies/capacity/run.sh table                   # docs/results-capacity.{md,json} and its figures, from the runs
#   studies/capacity/run.sh commit                  # git add the finished records (not unfinished runs)
#
# Every step resumes from its own output: run it again after any interruption. OMP_NUM_THREADS=1 per process.
set -e
cd "$(dirname "$0")/../.."
here=studies/capacity
step="${1:?usage: run.sh tune-sat|sat|teacher|gap|tune|leaderboard|choose|capacity|table|commit [ARGS...]}"
export OMP_NUM_THREADS=1 PYTHONPATH=.
case "$step" in
    commit)
        # Finished runs and tunings (compacted first), and the step records; an unfinished run resumes from its own
        # folder instead. A finished run still being evaluated or compacted holds its folder's lock: it waits for the
        # next commit.
        .venv/bin/python studies/compact.py "$here/tune" "$here/runs" > /dev/null
        find "$here/runs" "$here/tune" -name run.json 2>/dev/null | while read -r marker; do
            folder="$(dirname "$marker")"
            if grep -q '"status": "finished"' "$marker"; then
                flock -n "$folder/.art-rslad.lock" git add "$folder" || echo "$folder is in use: left for the next commit"
            fi
        done
        find "$here/tune" -name tuning.json -exec git add {} + 2>/dev/null || true
        for record in gap.json third.json teacher-val.json teacher timing; do
            [ -e "$here/$record" ] && git add "$here/$record"
        done
        exit 0 ;;
    table) exec .venv/bin/python "$here/table.py" --out docs/results-capacity ;;
    *) exec .venv/bin/python "$here/study.py" "$@" ;;
esac
