#!/usr/bin/env bash
# Where each shop setup peaks: the shop pinned to core 0, `stampede load
# --sweep` pinned to core 1 buying for new users (flash-sale scenario, a
# product with ample stock), each concurrency STEP long (default 2s, three
# runs each), then the Universal Scalability Law fitted to the medians.
# Prints sigma, kappa, lambda, the peak, R² and the capacity measured per
# setup. This is how to keep the load generator and the service apart:
# each on a core of its own, so that neither is measured as the other.
#
#   bench/usl.sh             # or: STEP=5s LEVELS=1,2,4,8,16,32,64 bench/usl.sh
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || die "needs two cores: one for the shop, one for the load"
. scripts/backends.sh
ensure_postgres
ensure_redis
step=${STEP:-2s}
levels=${LEVELS:-1,2,4,8,16,32,64,128}
dir=$(mktemp -d /tmp/stampede-usl.XXXXXX)
. bench/pinned_shop.sh
finish() {
  stop_shop
  drop_stores
  rm -rf "$dir"
  cleanup
}
trap finish EXIT
go build -o "$dir/stampede" ./cmd/stampede
port=$(free_port 18380)

printf '| setup | sigma | kappa | lambda (orders/s) | peak (users) | peak orders/s | R² | capacity measured (orders/s) |\n|---|---:|---:|---:|---:|---:|---:|---:|\n' >"$dir/table"
sweep() {
  local name=$1; shift
  start_shop "$name" "$@"
  local id=$product
  say "$name: sweeping $levels, $step each"
  taskset -c 1 "$dir/stampede" load --sweep "$levels" -d "$step" --warmup 500ms --quiet --output json \
    --scenario flash-sale --product "$id" --user-ids 1000000000 --html "$dir/$RANDOM.html" "http://127.0.0.1:$port" >"$dir/sweep.json"
  awk -v name="$name" '
    /"sigma":/ { gsub(/,/, "", $2); s = $2 } /"kappa":/ { gsub(/,/, "", $2); k = $2 } /"lambda":/ { gsub(/,/, "", $2); l = $2 }
    /"r2":/ { gsub(/,/, "", $2); r = $2 } /"peak_concurrency":/ { gsub(/,/, "", $2); p = $2 } /"peak_rps":/ { gsub(/,/, "", $2); x = $2 }
    /"capacity_rps":/ { gsub(/,/, "", $2); c = $2 }
    END { printf "| %s | %.3g | %.3g | %.0f | %s | %s | %.3f | %.0f |\n", name, s, k, l, (p > 0 ? sprintf("%.0f", p) : "none"), (p > 0 ? sprintf("%.0f", x) : "—"), r, c }' \
    "$dir/sweep.json" >>"$dir/table"
  stop_shop
}
sweep "sqlite reserve (default)" sqlite
sweep "sqlite atomic" sqlite --strategy atomic
sweep "postgres reserve+redis" postgres --strategy reserve --redis "$STAMPEDE_TEST_REDIS"
sweep "postgres atomic" postgres --strategy atomic

printf '\nmachine: %s, %s cores, %s; shop on core 0, load on core 1; %s a step at %s users\n\n' \
  "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')" "$(nproc)" "$(go version | cut -d' ' -f3)" "$step" "$levels"
cat "$dir/table"
