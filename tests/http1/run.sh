#!/usr/bin/env bash
# HTTP/1.1 conformance and hostile input: tests/http1/probe.py (130-odd cases from RFC 9110
# and RFC 9112: smuggling and message framing, the request line, header fields, bodies)
# against the gateway's cleartext listener, proxying to the echo function.
#
#   bash tests/http1/run.sh [probe.py options, e.g. --only 'smug-*']
#   TARGET=127.0.0.1:8080 bash tests/http1/run.sh    # a server already running (nginx...)
#
# Builds the gateway and the echo function (cargo), starts both on free 127.0.0.1 ports, and
# stops them on exit. Fails on any failing case except those listed in KNOWN below, and when
# one of those passes (so the list stays true). With TARGET nothing is built or started, and
# KNOWN does not apply (it is the gateway's list): any failing case fails the run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

# Cases that are known to fail against the gateway, each with its reason (none now), e.g.
#   smug-cl-te  # hyper processes CL+TE by TE but keeps the connection open
KNOWN=()

work=$(mktemp -d "${TMPDIR:-/tmp}/apiroutes-http1.XXXXXX")
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

if [[ -n ${TARGET:-} ]]; then
	host=${TARGET%:*}
	port=${TARGET##*:}
	[[ $host != "$TARGET" && -n $host && $port =~ ^[0-9]+$ ]] ||
		{ echo "http1: TARGET must be host:port, not $TARGET" >&2; exit 1; }
	KNOWN=()
else
	source "$root/tests/lib/env.sh"
	source "$root/tests/lib/gateway-echo.sh"
	start_gateway_with_echo http1
	curl -fsS -o /dev/null "http://127.0.0.1:$gw_port/ready" ||
		{ echo "http1: the gateway does not answer HTTP/1.1" >&2; cat "$work/gateway.log" >&2; exit 1; }
	host=127.0.0.1
	port=$gw_port
fi

set +e
timeout 300 python3 "$here/probe.py" --host "$host" --port "$port" --report "$work/report.json" "$@"
status=$?
set -e
if [[ ! -s $work/report.json ]]; then
	echo "http1: probe.py wrote no report (exit status $status)" >&2
	[[ -f $work/gateway.log ]] && tail -n 20 "$work/gateway.log" >&2
	exit 1
fi
python3 - "$here/probe.py" "$work/report.json" "${KNOWN[@]}" <<'EOF' || {
import json, subprocess, sys
probe, report, known = sys.argv[1], sys.argv[2], set(sys.argv[3:])
every = {line.split()[0] for line in subprocess.run(
    [sys.executable, probe, "--list"], check=True, capture_output=True, text=True).stdout.splitlines()}
if (unknown := sorted(known - every)):
    sys.exit(f"http1: KNOWN names cases that do not exist: {', '.join(unknown)}")
results = json.load(open(report))["results"]
ran = {r["id"] for r in results}
failed = {r["id"] for r in results if r["verdict"] == "FAIL"}
known &= ran  # a run with --only judges the known cases it ran
new = sorted(failed - known)
fixed = sorted(known - failed)
if len(every) < 80:
    sys.exit(f"http1: only {len(every)} cases in probe.py")
print(f"http1: {len(results)} cases, {len(failed)} failed "
      f"({', '.join(sorted(failed)) or 'none'}; known: {', '.join(sorted(known)) or 'none'})")
if new:
    sys.exit(f"http1: new failures: {', '.join(new)} (see the output above)")
if fixed:
    sys.exit(f"http1: {', '.join(fixed)} passes now: take it out of KNOWN in tests/http1/run.sh")
EOF
	[[ -f $work/gateway.log ]] && { echo "--- gateway log (tail)" >&2; tail -n 20 "$work/gateway.log" >&2; }
	exit 1
}
