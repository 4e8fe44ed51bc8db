# The data of the controlled double-seesaw benchmark, shared by scripts/seesaw_benchmark.sh and
# scripts/seesaw_tuned.sh (sourced, not run): the `seesaw` preset at 400k rows with every term
# on (`all_on`), and once with each term off (`<term>_off`: the same seed, so every other term
# and the base data are identical). `seesaw_data VARIANT` generates data/seesaw/VARIANT once.
SEESAW_SIZE=(--rows 400000 --set num_users=2000 --set num_items=4000 --set num_authors=500 --set files_per_split=4)
declare -A SEESAW_OFF=([all_on]="" [user_groups_off]=user_group_scale [domain_dims_off]=domain_dim_scale
                       [conflict_off]=conflict_fraction [capacity_off]=capacity_scale)

seesaw_data() {
  local variant=$1 data=data/seesaw/$1 off=()
  [ -f "$data/generator.json" ] && return 0
  [ -n "${SEESAW_OFF[$variant]+set}" ] || { echo "seesaw_data: no variant '$variant'" >&2; return 2; }
  [ -n "${SEESAW_OFF[$variant]}" ] && off=(--set "${SEESAW_OFF[$variant]}=0")
  "$PY" -m ray_jobs.generate --preset seesaw --out "$data" "${SEESAW_SIZE[@]}" "${off[@]}"
}
