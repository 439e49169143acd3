#!/usr/bin/env bash
# Orders/s over HTTP for every strategy × store, as a ratio of the HTTP
# ceiling (the same server stack answering with a fixed 201) measured in
# the same run. Runs BenchmarkOrders ROUNDS times (default 3) and prints
# medians.
#
#   bench/shop.sh            # or: ROUNDS=5 BENCHTIME=10s bench/shop.sh
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }
. scripts/backends.sh
ensure_postgres
ensure_redis
export STAMPEDE_REQUIRE_BACKENDS=1

out=$(mktemp)
say "running BenchmarkOrders, ${ROUNDS:-3} rounds of ${BENCHTIME:-4s} each"
go test -run '^$' -bench 'Orders' -benchtime "${BENCHTIME:-4s}" -count "${ROUNDS:-3}" ./internal/shopd | tee "$out" >&2

printf '\nmachine: %s, %s cores, %s\n' "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')" "$(nproc)" "$(go version | cut -d' ' -f3)"
awk '
  /^BenchmarkOrders\// {
    name = $1; sub(/^BenchmarkOrders\//, "", name); sub(/-[0-9]+$/, "", name)
    for (i = 1; i <= NF; i++) if ($(i+1) == "orders/s") v = $i
    n[name]++; val[name, n[name]] = v
    if (!(name in seen)) { seen[name] = 1; order[++k] = name }
  }
  function median(name,   m, i, j, t, a) {
    m = n[name]
    for (i = 1; i <= m; i++) a[i] = val[name, i]
    for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
  }
  END {
    ceil = median("sqlite/ceiling")
    printf "\n| store | strategy | orders/s (median of %d) | × ceiling |\n|---|---|---:|---:|\n", n["sqlite/ceiling"]
    for (i = 1; i <= k; i++) {
      split(order[i], p, "/")
      printf "| %s | %s | %.0f | %.2f |\n", p[1], p[2], median(order[i]), median(order[i]) / ceil
    }
  }' "$out"
rm -f "$out"
