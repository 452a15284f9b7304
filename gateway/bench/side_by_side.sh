#!/usr/bin/env bash
# Side-by-side CPU per request of several proxies: gateway binaries (and nginx, optionally)
# all running at once on the same core in front of the same upstream (the echo function),
# wrk rotating over them round by round, each one's CPU time (utime + stime from
# /proc/<pid>/stat, children included) divided by the requests it served. Consecutive runs
# of proxy.sh on a shared machine differ by more than a change of a few percent; running
# the candidates together and comparing them round by round does not.
#
#   bash gateway/bench/side_by_side.sh before=/path/to/old/apiroutes-gateway \
#        after=$CARGO_TARGET_DIR/release/apiroutes-gateway nginx=nginx
#
# Prints each run, each proxy's median over the rounds, and the median per-round ratio of
# each to the first. Build the binaries first (cargo build --release -p apiroutes-gateway
# -p apiroutes-example-echo; for an older commit, a git worktree). `nginx=nginx` adds
# nginx configured as in proxy.sh. Only 127.0.0.1 is used; every run is bounded by timeout.
#
# Knobs (env): ROUNDS=3 DURATION=8 WARMUP=2 ROUTES=1000 CONNECTIONS=32 PROXY_CPU=1
#   LOAD_CPUS=0 ECHO=<$CARGO_TARGET_DIR/release/echo> EXTRA_ARGS="" (to every gateway)
#   PERF=<name> PERF_OUT=<file>: `perf record -e cpu-clock -g` that proxy in round 1.
#   WRK_ARGS="" extra wrk arguments, e.g. WRK_ARGS="-H 'Connection: close'" for a new
#   connection per request.
set -euo pipefail
ROUNDS="${ROUNDS:-3}"; DURATION="${DURATION:-8}"; WARMUP="${WARMUP:-2}"; ROUTES="${ROUTES:-1000}"; CONNECTIONS="${CONNECTIONS:-32}"
# Extra wrk arguments, split as the shell would (quotes kept).
eval "wrk_args=(${WRK_ARGS:-})"
PROXY_CPU="${PROXY_CPU:-1}"; LOAD_CPUS="${LOAD_CPUS:-0}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=gateway/bench/common.sh
source "$here/common.sh"
ECHO="${ECHO:-${CARGO_TARGET_DIR:-$here/../../target}/release/echo}"
(( $# > 0 )) || { echo "usage: $0 name=binary... [nginx=nginx]" >&2; exit 2; }
work="$(mktemp -d /tmp/apiroutes-ab.XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_http() { for _ in $(seq $(($2 * 10))); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done; echo "$1 not ready" >&2; return 1; }
UP_PORT="$(free_port)"
HOST=127.0.0.1 PORT="$UP_PORT" taskset -c "$LOAD_CPUS" "$ECHO" >"$work/echo.log" 2>&1 & pids+=($!)
wait_http "http://127.0.0.1:$UP_PORT/healthz" 20
static_table "$work/static.yaml" "$ROUTES" "$UP_PORT"
read -r -a extra <<<"${EXTRA_ARGS:-}" # split on spaces, like a command line
names=(); ports=(); gpids=()
for spec in "$@"; do
  name="${spec%%=*}"; bin="${spec#*=}"
  port="$(free_port)"; admin="$(free_port)"
  if [[ "$name" == nginx ]]; then
    nginx_conf "$work/nginx" "$port" "$UP_PORT"
    taskset -c "$PROXY_CPU" "$(command -v nginx || echo /usr/sbin/nginx)" -c "$work/nginx/nginx.conf" -p "$work/nginx" >"$work/nginx.log" 2>&1 &
    gpids+=($!); pids+=($!); names+=("$name"); ports+=("$port")
    wait_http "http://127.0.0.1:$port/api/users/1/posts/2" 20
    continue
  fi
  taskset -c "$PROXY_CPU" "$bin" --static "$work/static.yaml" --worker-threads 1 --listen "127.0.0.1:$port" \
    --admin-listen "127.0.0.1:$admin" --log-level warn "${extra[@]}" >"$work/$name.log" 2>&1 &
  gpids+=($!); pids+=($!); names+=("$name"); ports+=("$port")
  wait_http "http://127.0.0.1:$admin/readyz" 30
  curl -fsS "http://127.0.0.1:$port/api/users/1/posts/2" | grep -q 'x-apiroute-pattern' || { echo "$name did not route" >&2; exit 1; }
done
cat >"$work/paths.lua" <<'LUA'
math.randomseed(42)
request = function()
  return wrk.format("GET", "/api/users/" .. math.random(1, 100000) .. "/posts/" .. math.random(1, 1000000))
end
LUA
ticks() { # utime + stime of a process and its children (nginx's worker)
  local t=0 p
  for p in "$1" $(pgrep -P "$1" || true); do t=$((t + $(sed 's/.*) //' "/proc/$p/stat" | awk '{ print $12 + $13 }'))); done
  echo "$t"
}
hz="$(getconf CLK_TCK)"
n=${#names[@]}
for r in $(seq "$ROUNDS"); do
  for k in $(seq 0 $((n - 1))); do
    i=$(( (k + r - 1) % n ))
    port=${ports[$i]}; pid=${gpids[$i]}; name=${names[$i]}
    timeout $((WARMUP + 5)) taskset -c "$LOAD_CPUS" wrk -t1 -c"$CONNECTIONS" -d"${WARMUP}s" "${wrk_args[@]}" -s "$work/paths.lua" "http://127.0.0.1:$port" >/dev/null
    c0="$(ticks "$pid")"
    if [[ "${PERF:-}" == "$name" && $r == 1 ]]; then
      perf record -e cpu-clock -F 1999 -g -p "$pid" -o "${PERF_OUT:-/tmp/perf-$name.data}" -- sleep "$DURATION" 2>/dev/null &
      perfpid=$!
    fi
    out="$(timeout $((DURATION + 10)) taskset -c "$LOAD_CPUS" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" "${wrk_args[@]}" -s "$work/paths.lua" "http://127.0.0.1:$port")"
    c1="$(ticks "$pid")"
    [[ -n "${perfpid:-}" ]] && { wait "$perfpid" || true; perfpid=; }
    grep -q 'Non-2xx' <<<"$out" && { echo "$name non-2xx" >&2; echo "$out" >&2; exit 1; }
    reqs="$(awk '/requests in/ { print $1 }' <<<"$out")"
    us="$(awk -v d="$((c1 - c0))" -v hz="$hz" -v n="$reqs" 'BEGIN { printf "%.2f", d / hz / n * 1e6 }')"
    rps="$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")"
    printf 'round %d %-10s %10s req/s %7s us/req\n' "$r" "$name" "$rps" "$us"
    echo "$name $us $rps" >>"$work/results"
  done
done
python3 - "$work/results" <<'PY'
import statistics, sys
rows=[l.split() for l in open(sys.argv[1])]
names=[]
for r in rows:
    if r[0] not in names: names.append(r[0])
import collections
byround=collections.defaultdict(dict)
cnt=collections.Counter()
for r in rows:
    cnt[r[0]]+=1; byround[cnt[r[0]]][r[0]]=float(r[1])
base=None
for nm in names[1:]:
    ratios=[d[nm]/d[names[0]] for d in byround.values() if nm in d and names[0] in d]
    print(f"{nm:10} per-round ratio to {names[0]}: median {statistics.median(ratios):.3f}  ({' '.join(f'{x:.3f}' for x in ratios)})")
for nm in names:
    us=[float(r[1]) for r in rows if r[0]==nm]; rps=[float(r[2]) for r in rows if r[0]==nm]
    m=statistics.median(us)
    if base is None: base=m
    print(f"{nm:10} median {m:6.2f} us/req ({', '.join(f'{u:.2f}' for u in us)})  {statistics.median(rps):8.0f} req/s  {100*(m-base)/base:+.1f}%")
PY
