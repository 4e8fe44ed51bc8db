#!/usr/bin/env bash
# The controlled double-seesaw benchmark with tuned models (issue 22, docs/results_seesaw.md):
# every model (SharedBottom and MMoE included) gets a Ray Tune search of its own on the all_on
# data's validation split (ASHA, the budget of configs/seesaw.yaml), and its best config then
# trains with the comparison's seeds on all_on and on the term-off variants (hyper-parameters
# chosen once, on all_on validation; test metrics never seen by the search).
# The data: scripts/seesaw_data.sh, the same directories as scripts/seesaw_benchmark.sh's.
#   bash scripts/seesaw_tuned.sh                       # 8 trials a model, 3 seeds, all variants
#   TRIALS=4 OFF_SEEDS=0,1 bash scripts/seesaw_tuned.sh
set -euo pipefail
PY=${PY:-.venv/bin/python}
TRIALS=${TRIALS:-8}
SEEDS=${SEEDS:-0,1,2}          # all_on
OFF_SEEDS=${OFF_SEEDS:-$SEEDS}  # the term-off variants
VARIANTS=${VARIANTS:-"all_on user_groups_off domain_dims_off conflict_off capacity_off"}
TUNE=runs/seesaw-tune
source "$(dirname "$0")/seesaw_data.sh"
declare -A MODELS=([all_on]="sharedbottom mmoe pepnet stem smes" [user_groups_off]="sharedbottom mmoe pepnet"
                   [domain_dims_off]="sharedbottom mmoe pepnet" [conflict_off]="sharedbottom mmoe stem"
                   [capacity_off]="sharedbottom mmoe smes")
for variant in $VARIANTS; do
  seesaw_data "$variant"
done
# One search per model on all_on (running it again resumes a finished or interrupted search)
for model in ${MODELS[all_on]}; do
  $PY -m ray_jobs.tune --space "tune_spaces/$model.py" --config configs/seesaw.yaml --data data/seesaw/all_on \
      --num-samples "$TRIALS" --max-concurrent 1 --storage "$TUNE" --name "$model"
done
for variant in $VARIANTS; do
  seeds=$SEEDS; [ "$variant" != all_on ] && seeds=$OFF_SEEDS
  models=$(for m in ${MODELS[$variant]}; do printf '%s=@%s/%s/best_config.yaml,' "$m" "$TUNE" "$m"; done)
  $PY -m ray_jobs.compare --models "${models%,}" --config configs/seesaw.yaml --data "data/seesaw/$variant" \
      --seeds "$seeds" --reuse --runs-dir "runs/seesaw-tuned/$variant" --out "reports/seesaw-tuned/$variant"
  $PY -m ray_jobs.compare --models "${models%,}" --config configs/seesaw.yaml --data "data/seesaw/$variant" \
      --seeds "$seeds" --reuse --runs-dir "runs/seesaw-tuned/$variant" --runs-prefix "$variant" --baseline mmoe \
      --out "reports/seesaw-tuned/$variant-vs-mmoe"
done
$PY -m ray_jobs.reports.mechanisms reports/seesaw-tuned
