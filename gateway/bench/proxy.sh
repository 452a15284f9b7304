#!/usr/bin/env bash
# Proxy benchmark: the gateway (static mode, one worker thread) against nginx (one worker,
# upstream keepalive) in front of the same upstream (the echo function), driven by wrk in
# interleaved rounds on /api/users/<id>/posts/<id>. Prints requests/s, p50, p99, CPU time
# per request on the proxy's core, and the gateway/nginx ratios. Figures, not a test.
#
#   bash gateway/bench/proxy.sh
#
# The proxy under test runs alone on one core (taskset); wrk and the upstream share the
# others, so a saturated load generator still yields a fair CPU-per-request figure (busy
# time of the proxy's core from /proc/stat divided by requests served).
#
# Knobs (env): ROUNDS=3 DURATION=10 (seconds per measured run) WARMUP=2 CONNECTIONS=32
#   WRK_THREADS=1 PROXY_CPU=<last cpu> ROUTES=1000 (routes in the gateway's table)
#   CARGO_TARGET_DIR (default <repo>/target) SKIP_BUILD=1 SKIP_INSTALL=1
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=gateway/bench/common.sh
source "$here/common.sh"
root="$(cd "$here/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-2}"
CONNECTIONS="${CONNECTIONS:-32}"
WRK_THREADS="${WRK_THREADS:-1}"
ROUTES="${ROUTES:-1000}"
ncpu="$(nproc)"
if (( ncpu < 2 )); then echo "proxy.sh: needs at least 2 CPUs (have $ncpu)" >&2; exit 2; fi
PROXY_CPU="${PROXY_CPU:-$((ncpu - 1))}"
LOAD_CPUS="$(seq -s, 0 $((ncpu - 1)) | tr ',' '\n' | grep -vx "$PROXY_CPU" | paste -sd,)"

# --- tools -------------------------------------------------------------------------------
if [[ "${SKIP_INSTALL:-0}" != 1 ]] && ! { command -v nginx && command -v wrk; } >/dev/null; then
  echo "proxy.sh: installing nginx and wrk from Debian"
  # Keep the package's init script from starting a system nginx on port 80.
  made_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=1
  fi
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light wrk >/dev/null ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx wrk >/dev/null
  (( made_policy )) && rm -f /usr/sbin/policy-rc.d
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
command -v wrk >/dev/null || { echo "proxy.sh: wrk missing" >&2; exit 2; }

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  echo "proxy.sh: cargo build --release -p apiroutes-gateway -p apiroutes-example-echo"
  (cd "$root" && cargo build --release --quiet -p apiroutes-gateway -p apiroutes-example-echo)
fi
GATEWAY="$CARGO_TARGET_DIR/release/apiroutes-gateway"
ECHO="$CARGO_TARGET_DIR/release/echo"

# --- setup -------------------------------------------------------------------------------
work="$(mktemp -d /tmp/apiroutes-proxy-bench.XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
wait_http() { # url seconds
  for _ in $(seq $(($2 * 10))); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "proxy.sh: $1 not ready" >&2; return 1
}

UP_PORT="$(free_port)"; GW_PORT="$(free_port)"; ADMIN_PORT="$(free_port)"; NG_PORT="$(free_port)"

# The upstream: the echo function, on the load cores.
HOST=127.0.0.1 PORT="$UP_PORT" taskset -c "$LOAD_CPUS" "$ECHO" >"$work/echo.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$UP_PORT/healthz" 20

static_table "$work/static.yaml" "$ROUTES" "$UP_PORT"

taskset -c "$PROXY_CPU" "$GATEWAY" --static "$work/static.yaml" --worker-threads 1 \
  --listen "127.0.0.1:$GW_PORT" --admin-listen "127.0.0.1:$ADMIN_PORT" --log-level warn \
  >"$work/gateway.log" 2>&1 &
GW_PID=$!
pids+=("$GW_PID")
wait_http "http://127.0.0.1:$ADMIN_PORT/readyz" 30

nginx_conf "$work/nginx" "$NG_PORT" "$UP_PORT"
taskset -c "$PROXY_CPU" "$NGINX" -c "$work/nginx/nginx.conf" -p "$work/nginx" >"$work/nginx.log" 2>&1 &
NG_PID=$!
pids+=("$NG_PID")
wait_http "http://127.0.0.1:$NG_PORT/api/users/1/posts/2" 20
curl -fsS "http://127.0.0.1:$GW_PORT/api/users/1/posts/2" | grep -q '"x-apiroute-pattern":"/api/users/\[id\]/posts/\[postId\]"' ||
  { echo "proxy.sh: the gateway did not route /api/users/1/posts/2" >&2; exit 1; }

cat >"$work/paths.lua" <<'LUA'
-- Random /api/users/<id>/posts/<id> paths.
math.randomseed(42)
request = function()
  return wrk.format("GET", "/api/users/" .. math.random(1, 100000) .. "/posts/" .. math.random(1, 1000000))
end
LUA

# --- measure -----------------------------------------------------------------------------
clk_tck="$(getconf CLK_TCK)"
busy_ticks() { # busy jiffies of cpu$PROXY_CPU: all but idle and iowait
  awk -v c="cpu$PROXY_CPU" '$1 == c { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}
proc_ticks() { # utime + stime of the given pids and their children (threads included)
  local total=0 p t
  for p in "$@" $(for q in "$@"; do pgrep -P "$q" || true; done); do
    t="$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }')" || t=0
    total=$((total + ${t:-0}))
  done
  echo "$total"
}
to_ms() { # wrk latency ("312.00us", "1.20ms", "1.01s") -> ms
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'
}
run_one() { # name port pid -> appends "name rps p50ms p99ms core_us_per_req proc_us_per_req" to results
  local name=$1 port=$2 pid=$3 out b0 b1 c0 c1 reqs rps p50 p99 cpu pcpu
  taskset -c "$LOAD_CPUS" wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" -s "$work/paths.lua" "http://127.0.0.1:$port" >/dev/null
  b0="$(busy_ticks)"; c0="$(proc_ticks "$pid")"
  out="$(taskset -c "$LOAD_CPUS" wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$work/paths.lua" "http://127.0.0.1:$port")"
  b1="$(busy_ticks)"; c1="$(proc_ticks "$pid")"
  if grep -q 'Non-2xx' <<<"$out"; then echo "proxy.sh: $name answered non-2xx:" >&2; echo "$out" >&2; exit 1; fi
  reqs="$(awk '/requests in/ { print $1 }' <<<"$out")"
  rps="$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")"
  p50="$(to_ms "$(awk '$1 == "50%" { print $2 }' <<<"$out")")"
  p99="$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")"
  cpu="$(awk -v d="$((b1 - b0))" -v hz="$clk_tck" -v n="$reqs" 'BEGIN { printf "%.2f", d / hz / n * 1e6 }')"
  pcpu="$(awk -v d="$((c1 - c0))" -v hz="$clk_tck" -v n="$reqs" 'BEGIN { printf "%.2f", d / hz / n * 1e6 }')"
  printf '%-8s %10s %9s %9s %10s %10s\n' "$name" "$rps" "$p50" "$p99" "$cpu" "$pcpu"
  echo "$name $rps $p50 $p99 $cpu $pcpu" >>"$work/results"
}

echo
echo "proxy on cpu $PROXY_CPU; wrk (-t$WRK_THREADS -c$CONNECTIONS, ${DURATION}s) and echo on cpu $LOAD_CPUS; $ROUNDS interleaved rounds; $ROUTES routes in the gateway's table"
echo "core us/req: busy time of the proxy's core (/proc/stat) / requests; proc us/req: the proxy processes' own CPU time / requests"
printf '%-8s %10s %9s %9s %10s %10s\n' proxy 'req/s' 'p50 ms' 'p99 ms' 'core us/req' 'proc us/req'
for r in $(seq "$ROUNDS"); do
  if (( r % 2 )); then run_one gateway "$GW_PORT" "$GW_PID"; run_one nginx "$NG_PORT" "$NG_PID"
  else run_one nginx "$NG_PORT" "$NG_PID"; run_one gateway "$GW_PORT" "$GW_PID"; fi
done

echo
echo "medians over $ROUNDS rounds:"
python3 - "$work/results" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
med = {}
for name in ("gateway", "nginx"):
    cols = list(zip(*[[float(x) for x in r[1:]] for r in rows if r[0] == name]))
    med[name] = [statistics.median(c) for c in cols]
    rps, p50, p99, cpu, pcpu = med[name]
    print(f"{name:8} {rps:10.0f} req/s  p50 {p50:7.3f} ms  p99 {p99:7.3f} ms  core {cpu:6.2f} us/req  proc {pcpu:6.2f} us/req")
g, n = med["gateway"], med["nginx"]
print(f"gateway/nginx: throughput {g[0]/n[0]:.2f}x  p50 {g[1]/n[1]:.2f}x  p99 {g[2]/n[2]:.2f}x  "
      f"core cpu/req {g[3]/n[3]:.2f}x  proc cpu/req {g[4]/n[4]:.2f}x")
PY
