#!/usr/bin/env bash
# The controlled double-seesaw benchmark (issue 22, docs/results_seesaw.md): the `seesaw` preset
# at 400k rows with every term on, and once with each term off (same seed: every other term,
# and the base data, are identical), then each comparison: the model built for a term against
# SharedBottom and MMoE, same budget (configs/seesaw.yaml), 3 seeds; then PEPNet's two gates
# apart on all_on and user_groups_off. About 90 s per run on 2 cores; --reuse keeps finished runs.
#   bash scripts/seesaw_benchmark.sh                # ~2 h on 2 cores
#   OFF_SEEDS=0,1 bash scripts/seesaw_benchmark.sh  # ~90 min: 2 seeds for the term-off variants
set -euo pipefail
PY=${PY:-.venv/bin/python}
SEEDS=${SEEDS:-0,1,2}          # all_on
OFF_SEEDS=${OFF_SEEDS:-$SEEDS}  # the term-off variants
source "$(dirname "$0")/seesaw_data.sh"
declare -A MODELS=([all_on]=sharedbottom,mmoe,pepnet,stem,smes [user_groups_off]=sharedbottom,mmoe,pepnet
                   [domain_dims_off]=sharedbottom,mmoe,pepnet [conflict_off]=sharedbottom,mmoe,stem
                   [capacity_off]=sharedbottom,mmoe,smes)
for variant in all_on user_groups_off domain_dims_off conflict_off capacity_off; do
  data=data/seesaw/$variant
  seesaw_data "$variant"
  seeds=$SEEDS; [ "$variant" != all_on ] && seeds=$OFF_SEEDS
  $PY -m ray_jobs.compare --models "${MODELS[$variant]}" --config configs/seesaw.yaml --data "$data" \
      --seeds "$seeds" --reuse --runs-dir runs/seesaw/$variant --out reports/seesaw/$variant
  # The same runs (same prefix, --reuse: nothing is trained), the gains measured against MMoE.
  $PY -m ray_jobs.compare --models "${MODELS[$variant]}" --config configs/seesaw.yaml --data "$data" \
      --seeds "$seeds" --reuse --runs-dir runs/seesaw/$variant --runs-prefix "$variant" --baseline mmoe \
      --out reports/seesaw/$variant-vs-mmoe
done
# PEPNet's two gates apart (which one wins where), on the same runs plus the two one-gate variants
GATES='sharedbottom,pepnet,epnet_only=pepnet{"use_ppnet": false},ppnet_only=pepnet{"use_epnet": false}'
for variant in all_on user_groups_off; do
  $PY -m ray_jobs.compare --models "$GATES" --config configs/seesaw.yaml --data data/seesaw/$variant \
      --seeds "$OFF_SEEDS" --reuse --runs-dir runs/seesaw/$variant --runs-prefix "$variant" \
      --out reports/seesaw/$variant-gates
done
$PY -m ray_jobs.reports.mechanisms reports/seesaw
