#!/usr/bin/env bash
# stampede load against wrk, in one go: nginx (one worker, pinned to core 0)
# serves a 13-byte file; each generator, pinned to core 1, runs 64
# connections for DURATION (default 5s), ROUNDS times (default 3),
# interleaved; stampede load runs with each of its engines (the epoll
# reactor, its default here, and a goroutine per connection). Prints
# medians of requests/s and of the generator's CPU time (user+sys) per
# request, and the ratios to wrk. Installs nginx-light and wrk with
# apt-get when root and they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || die "needs two cores: one for nginx, one for the generator"
for tool in nginx wrk taskset; do
  command -v "$tool" >/dev/null && continue
  [ "$(id -u)" = 0 ] || die "$tool is missing (apt-get install nginx-light wrk)"
  say "installing nginx-light and wrk"; apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk >/dev/null
done

dir=$(mktemp -d /tmp/stampede-loadbench.XXXXXX)
trap '[ -f "$dir/nginx.pid" ] && kill "$(cat "$dir/nginx.pid")" 2>/dev/null; rm -rf "$dir"' EXIT
printf 'hello, world\n' >"$dir/index.html"   # 13 bytes
port=18080
cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
daemon on;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000000;
  server { listen 127.0.0.1:$port; root $dir; }
}
CONF
taskset -c 0 nginx -c "$dir/nginx.conf" -p "$dir" -e "$dir/error.log"
url="http://127.0.0.1:$port/index.html"
for _ in $(seq 50); do curl -fs "$url" >/dev/null 2>&1 && break; sleep 0.1; done

go build -o "$dir/stampede" ./cmd/stampede
dur=${DURATION:-5s}
rounds=${ROUNDS:-3}
results="$dir/results"
: >"$results"
TIMEFORMAT='%U %S'
for r in $(seq "$rounds"); do
  { time taskset -c 1 wrk -t1 -c64 -d"$dur" "$url" >"$dir/wrk.out"; } 2>"$dir/wrk.time"
  rps=$(awk '/Requests\/sec/ {print $2}' "$dir/wrk.out")
  reqs=$(awk '/requests in/ {print $1}' "$dir/wrk.out")
  echo "wrk $rps $reqs $(cat "$dir/wrk.time")" >>"$results"
  for engine in epoll goroutines; do
    { time taskset -c 1 "$dir/stampede" load -c 64 -d "$dur" --engine "$engine" --quiet --output json "$url" >"$dir/st.out"; } 2>"$dir/st.time"
    rps=$(sed -n 's/.*"rps": \([0-9.]*\).*/\1/p' "$dir/st.out")
    reqs=$(sed -n 's/.*"requests": \([0-9]*\).*/\1/p' "$dir/st.out")
    echo "stampede-$engine $rps $reqs $(cat "$dir/st.time")" >>"$results"
  done
  say "round $r: $(tail -3 "$results" | tr '\n' ' ')"
done

printf '\nmachine: %s, %s cores; nginx on core 0, generator on core 1; 64 connections, %s × %s rounds\n\n' \
  "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')" "$(nproc)" "$dur" "$rounds"
awk '
  { name=$1; n[name]++; rps[name, n[name]]=$2; cpu[name, n[name]]=($4+$5)/$3*1e6 }
  function med(arr, name,   m, i, j, t, a) {
    m = n[name]; for (i = 1; i <= m; i++) a[i] = arr[name, i]
    for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
  }
  END {
    wr = med(rps, "wrk"); wc = med(cpu, "wrk")
    print "| generator | requests/s (median) | CPU µs/request (median) | × wrk requests/s | × wrk CPU/request |"
    print "|---|---:|---:|---:|---:|"
    split("wrk stampede-epoll stampede-goroutines", names, " ")
    for (k = 1; k <= 3; k++) { g = names[k]
      printf "| %s | %.0f | %.2f | %.2f | %.2f |\n", g, med(rps, g), med(cpu, g), med(rps, g) / wr, med(cpu, g) / wc }
  }' "$results"
