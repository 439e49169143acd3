#!/usr/bin/env bash
# Lab figures as Go benchmarks, three runs each, printed as medians with
# ratios: context switches and creation against the goroutine's, and the
# synchronisation primitives against sync.Mutex at the same goroutine
# count. Usage: bench/lab.sh [COUNT]
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-3}
out=bench/out
mkdir -p "$out"

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, $(uname -sr), $(go env GOVERSION)" >&2
go test -run '^$' -bench 'Switch' -benchtime 20000x -count "$count" ./internal/lab/costs >"$out/switch.txt"
go test -run '^$' -bench 'Create' -benchtime 1x -count "$count" ./internal/lab/costs >"$out/create.txt"
go test -run '^$' -bench 'Primitive' -benchtime 1x -count "$count" ./internal/lab/syncbench >"$out/sync.txt" # each iteration is one 200 ms run

# median UNIT FILE: "name median" for every benchmark reporting UNIT.
median() {
  awk -v unit="$1" '
    /^Benchmark/ { for (i = 3; i < NF; i++) if ($(i+1) == unit) { name = $1; sub(/-[0-9]+$/, "", name); v[name] = v[name] " " $i; if (!(name in seen)) { seen[name] = 1; order[++n] = name } } }
    END {
      for (k = 1; k <= n; k++) {
        m = split(v[order[k]], a, " ")
        for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
        print order[k], (m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2)
      }
    }' "$2"
}

echo
echo "| switch (base taken off) | ns (median of $count) | × goroutine |"
echo "|---|---:|---:|"
median ns/switch "$out/switch.txt" | awk '{ split($1, p, "/"); c = p[3]; if (p[2] == "goroutine") base[c] = $2
  what = (c == "cores=1") ? "one CPU: context switch" : "two CPUs: cross-CPU wake-up"
  if (p[2] == "goroutine") what = (c == "cores=1") ? "one P" : "two Ps: a hand-off"
  printf "| %s, %s | %.0f | %.1f |\n", p[2], what, $2, $2 / base[c] }'

echo
echo "| create and hold | ns each | resident bytes each | × goroutine (time) | × goroutine (memory) |"
echo "|---|---:|---:|---:|---:|"
paste -d' ' <(median ns/item "$out/create.txt") <(median B/item "$out/create.txt") |
  awk '{ split($1, p, "/"); if (p[2] == "goroutine") { bt = $2; bm = $4 } printf "| %s | %.0f | %.0f | %.0f | %.0f |\n", p[2], $2, $4, $2 / bt, $4 / bm }'

echo
echo "| primitive | goroutines | ns/op, inverse throughput (median of $count) | × sync.Mutex | Jain's index |"
echo "|---|---:|---:|---:|---:|"
paste -d' ' <(median ns/op "$out/sync.txt") <(median jain "$out/sync.txt") |
  awk '{ split($1, p, "/"); if (p[2] == "mutex") base[p[3]] = $2; rows[++n] = $0 }
  END { for (i = 1; i <= n; i++) { split(rows[i], f, " "); split(f[1], p, "/"); printf "| %s | %s | %.1f | %.2f | %.2f |\n", p[2], substr(p[3], 3), f[2], f[2] / base[p[3]], f[4] } }'
