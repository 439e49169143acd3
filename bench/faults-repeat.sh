#!/usr/bin/env bash
# The faults that once stalled or misjudged a sale, ten runs each:
# `stampede verify` on the scaled-out setup (reserve, 2 shop processes,
# PostgreSQL and a private Redis) under kill-worker and redis-restart. The
# store is a fresh schema of the machine's PostgreSQL, so that after each
# run its rows are counted with psql, apart from verify, and held to what
# verify said. Prints one line a run and a summary a fault.
#
#   bench/faults-repeat.sh            # about 4 minutes
#   RUNS=3 bench/faults-repeat.sh
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf 'bench: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
. scripts/backends.sh
ensure_postgres
command -v psql >/dev/null || die "psql is needed to count the rows"
runs=${RUNS:-10}
dir=$(mktemp -d /tmp/stampede-faults-repeat.XXXXXX)
trap 'rm -rf "$dir"' EXIT
go build -o "$dir/stampede" ./cmd/stampede

sep='?'; [[ "$STAMPEDE_TEST_PG" == *\?* ]] && sep='&'
printf '%-14s %3s  %-6s %11s %8s  %-22s %s\n' fault run verdict sent/planned stall "verify stored/acked" "SQL orders units keys stock sold"
for fault in kill-worker@2s redis-restart@2s; do
  pass=0 match=0 worst=0
  for i in $(seq "$runs"); do
    schema="bench_faults_$$_$i"
    psql "$STAMPEDE_TEST_PG" -qc "CREATE SCHEMA $schema" >/dev/null
    dsn="$STAMPEDE_TEST_PG${sep}search_path=$schema"
    verdict=pass
    "$dir/stampede" verify -q --json "$dir/rep.json" --strategy reserve --store "$dsn" --redis private --procs 2 \
      --stock 1000 --purchases 3000 --users 1000 -d 10s --faults "$fault" >"$dir/out" 2>"$dir/err" || verdict=FAIL
    read -r sent planned stall stored acked < <(python3 -c '
import json,sys; r=json.load(open(sys.argv[1])); o=r["outcomes"]
print(r["sent"], r["planned"], "%.3f" % r["longest_stall_seconds"], o["stored_orders"], o["acknowledged"])' "$dir/rep.json")
    sql=$(PGOPTIONS="-c search_path=$schema" psql "$STAMPEDE_TEST_PG" -XAtc \
      "SELECT count(*) || ' ' || coalesce(sum(quantity),0) || ' ' || count(DISTINCT idempotency_key) || ' ' || (SELECT stock || ' ' || sold FROM products) FROM orders")
    PGOPTIONS="-c client_min_messages=warning" psql "$STAMPEDE_TEST_PG" -qc "DROP SCHEMA $schema CASCADE" >/dev/null
    read -r n units keys stock sold <<<"$sql"
    [ "$verdict" = pass ] && pass=$((pass + 1))
    # verify's stored orders are the rows; every unit sold once, no key twice.
    [ "$n" = "$stored" ] && [ "$n" = "$keys" ] && [ "$units" = "$sold" ] && [ $((stock + sold)) = 1000 ] && match=$((match + 1))
    worst=$(python3 -c "print(max($worst, $stall))")
    printf '%-14s %3d  %-6s %5s/%-5s %7ss  %-22s %s\n' "${fault%@*}" "$i" "$verdict" "$sent" "$planned" "$stall" "$stored/$acked" "$sql"
  done
  say "${fault%@*}: $pass of $runs passed, $match of $runs matched SQL, longest stall ${worst}s"
done
say "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(date -u +%F)"
