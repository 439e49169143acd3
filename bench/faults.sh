#!/usr/bin/env bash
# Faults × strategies: `stampede verify` runs the same flash sale (300
# units, 600 purchases by 200 users with a limit of 2, over 6 s) for each
# setup under each fault that applies to it, and prints a Markdown table of
# the verdicts: "holds", or the invariants the sale broke. Every backend a
# fault touches is private (verify starts its own redis-server and
# PostgreSQL), so nothing shared is killed or frozen.
#
#   bench/faults.sh          # about 8 minutes
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf 'bench: %s\n' "$*" >&2; }
dir=$(mktemp -d /tmp/stampede-faults.XXXXXX)
trap 'rm -rf "$dir"' EXIT
go build -o "$dir/stampede" ./cmd/stampede

# label=schedule; "combined" is the sequence that once oversold: PostgreSQL
# frozen, Redis restarted empty meanwhile, then the whole shop killed.
faults=(none=none kill-worker=kill-worker@2s kill-shop=kill-shop@2s redis-restart=redis-restart@2s
  pg-pause=pg-pause@2s/2s combined=pg-pause@1s/3s,redis-restart@2s,kill-shop@4.5s)
# name | flags; the race-window strategies get --gap 20ms (real work
# between read and write), as their lesson needs.
setups=(
  "naive, SQLite|--strategy naive --gap 20ms"
  "mutex, SQLite, 4 processes|--strategy mutex --procs 4 --gap 20ms"
  "atomic, PostgreSQL, 2 processes|--strategy atomic --store postgres --procs 2"
  "row-lock, PostgreSQL, 2 processes|--strategy row-lock --store postgres --procs 2"
  "redis-lock, PostgreSQL + Redis, 2 processes|--strategy redis-lock --store postgres --redis private --procs 2"
  "reserve, SQLite (embedded)|--strategy reserve"
  "reserve, PostgreSQL + Redis, 2 processes|--strategy reserve --store postgres --redis private --procs 2"
)

applies() { # label flags
  case $1 in
    kill-worker) [[ $2 == *"--procs"* ]] ;;
    redis-restart) [[ $2 == *"--redis private"* ]] ;;
    pg-pause) [[ $2 == *"--store postgres"* ]] ;;
    combined) [[ $2 == *"--store postgres"* && $2 == *"--redis private"* ]] ;;
    *) true ;;
  esac
}

printf '| setup |' >"$dir/table"
for f in "${faults[@]}"; do printf ' %s |' "${f%%=*}" >>"$dir/table"; done
printf '\n|---|' >>"$dir/table"
for f in "${faults[@]}"; do printf -- '---|' >>"$dir/table"; done
printf '\n' >>"$dir/table"
for setup in "${setups[@]}"; do
  name=${setup%%|*} flags=${setup#*|}
  printf '| %s |' "$name" >>"$dir/table"
  for entry in "${faults[@]}"; do
    label=${entry%%=*} f=${entry#*=}
    if ! applies "$label" "$flags"; then
      printf ' – |' >>"$dir/table"
      continue
    fi
    args=()
    [ "$f" = none ] || args=(--faults "$f")
    say "$name, $f"
    # shellcheck disable=SC2086 # flags are words
    if "$dir/stampede" verify -q $flags "${args[@]}" >"$dir/out" 2>"$dir/err"; then
      cell=holds
    elif grep -q '^verdict: VIOLATED: ' "$dir/out"; then
      cell=$(sed -n 's/^verdict: VIOLATED: //p' "$dir/out")
    else
      cell="could not run: $(tail -1 "$dir/err")"
    fi
    printf ' %s |' "$cell" >>"$dir/table"
  done
  printf '\n' >>"$dir/table"
done
cat "$dir/table"
