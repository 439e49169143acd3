#!/usr/bin/env bash
# Orders/s of the shop measured from outside it, as a ratio of the same
# server's /healthz: the shop pinned to core 0, wrk pinned to core 1 with 64
# connections, every order a new buyer (bench/buy.lua) for a product with
# ample stock, so each order pays for a durable write. The multi-process
# setup (PostgreSQL and Redis) is run again with 1,024 connections: at 64
# it waits on its round trips, not on the CPU. Each setup runs
# ROUNDS times (default 3) for DURATION (default 5s) and the medians are
# printed; any answer that is not 2xx is counted and shown. Beside them,
# the CPU time an order cost the shop, Redis and PostgreSQL (read from
# /proc; every redis-server and postgres process on the machine counts),
# which says which of them a setup is waiting for.
#
#   bench/shop.sh                       # or: ROUNDS=5 DURATION=10s bench/shop.sh
#   KEYS=random bench/shop.sh           # keys as random as clients' UUIDs
#
# PostgreSQL and Redis are not pinned: they share the machine with both.
# Installs wrk with apt-get when root and it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || die "needs two cores: one for the shop, one for wrk"
if ! command -v wrk >/dev/null; then
  [ "$(id -u)" = 0 ] || die "wrk is missing (apt-get install wrk)"
  say "installing wrk"; apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
. scripts/backends.sh
ensure_postgres
ensure_redis
rounds=${ROUNDS:-3}
ulimit -n 8192 2>/dev/null || true # wrk holds 1,024 connections in one setup
dur=${DURATION:-5s}

dir=$(mktemp -d /tmp/stampede-shopbench.XXXXXX)
. bench/pinned_shop.sh
finish() {
  stop_shop
  drop_stores
  rm -rf "$dir"
  cleanup
}
trap finish EXIT
go build -o "$dir/stampede" ./cmd/stampede
port=$(free_port 18280)

# ticks NAME: "pid ticks" for every process named NAME (CPU time, user
# and system, in clock ticks).
ticks() {
  local p
  for p in $(pgrep -x "$1"); do echo "$p $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)"; done
}

# per_order BEFORE AFTER N: the CPU µs an order cost the processes of two
# ticks lists; a process started in between (a connection's PostgreSQL
# backend) counts from zero.
per_order() {
  awk -v n="$3" -v hz="$(getconf CLK_TCK)" 'NR == FNR { t[$1] = $2; next } { used += $2 - t[$1] } END { printf "%.1f", used / hz * 1e6 / n }' \
    <(echo "$1") <(echo "$2")
}

# run NAME SHOP-FLAGS…: one setup, ROUNDS times, with $conns connections;
# appends "NAME<tab>healthz orders non2xx shop-µs redis-µs postgres-µs"
# lines, the last three the CPU each spent an order (every redis-server
# and postgres process on this machine counts).
conns=64
run() {
  local name=$1; shift
  for r in $(seq "$rounds"); do
    start_shop "$name" "$@"
    local id=$product
    local h o s0 s1 r0 r1 p0 p1 n
    h=$(taskset -c 1 wrk -t1 -c64 -d"$dur" "http://127.0.0.1:$port/healthz" | awk '/Requests\/sec/ {print $2}')
    s0="$shop_pid $(awk '{print $14 + $15}' "/proc/$shop_pid/stat")"; r0=$(ticks redis-server); p0=$(ticks postgres)
    o=$(PRODUCT=$id RUN=$$$RANDOM$RANDOM taskset -c 1 wrk -t1 -c"$conns" -d"$dur" -s bench/buy.lua "http://127.0.0.1:$port/api/orders")
    s1="$shop_pid $(awk '{print $14 + $15}' "/proc/$shop_pid/stat")"; r1=$(ticks redis-server); p1=$(ticks postgres)
    n=$(echo "$o" | awk '/requests in/ {print $1}')
    printf '%s\t%s %s %s %s %s %s\n' "$name" "$h" "$(echo "$o" | awk '/Requests\/sec/ {print $2}')" \
      "$(echo "$o" | awk '/Non-2xx/ {n = $NF} END {print n + 0}')" \
      "$(per_order "$s0" "$s1" "$n")" "$(per_order "$r0" "$r1" "$n")" "$(per_order "$p0" "$p1" "$n")" >>"$dir/results"
    say "$name round $r: $(tail -1 "$dir/results" | cut -f2)"
    stop_shop
  done
}
: >"$dir/results"
run "sqlite reserve (default)" sqlite
run "sqlite atomic" sqlite --strategy atomic
run "postgres reserve" postgres
run "postgres reserve+redis" postgres --strategy reserve --redis "$STAMPEDE_TEST_REDIS"
run "postgres atomic" postgres --strategy atomic
conns=1024 run "postgres reserve+redis, 1024 connections" postgres --strategy reserve --redis "$STAMPEDE_TEST_REDIS"

printf '\nmachine: %s, %s cores, %s; shop on core 0, wrk on core 1 (64 connections unless named), %s × %s rounds, medians\n\n' \
  "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')" "$(nproc)" "$(go version | cut -d' ' -f3)" "$dur" "$rounds"
awk -F'\t' '
  function median(list,   a, n, i, j, t) {
    n = split(list, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  {
    name = $1; split($2, f, " ")
    if (!(name in seen)) { seen[name] = 1; order[++k] = name }
    h[name] = h[name] " " f[1]; o[name] = o[name] " " f[2]; r[name] = r[name] " " (f[2] / f[1])
    bad[name] += f[3]; s[name] = s[name] " " f[4]; rd[name] = rd[name] " " f[5]; pg[name] = pg[name] " " f[6]
  }
  END {
    printf "| store and strategy | /healthz req/s | orders/s | × /healthz | non-2xx | CPU µs an order: shop | Redis | PostgreSQL |\n|---|---:|---:|---:|---:|---:|---:|---:|\n"
    for (i = 1; i <= k; i++) {
      n = order[i]
      printf "| %s | %.0f | %.0f | %.2f | %d | %.1f | %.1f | %.1f |\n", n, median(h[n]), median(o[n]), median(r[n]), bad[n], median(s[n]), median(rd[n]), median(pg[n])
    }
  }' "$dir/results"
