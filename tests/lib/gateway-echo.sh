# Starts the echo function and the gateway in static mode in front of it, on free
# 127.0.0.1 ports, for the protocol suites (tests/h2spec, tests/http1). Sourced, after
# tests/lib/env.sh, by a script that keeps `pids` (an array it stops on exit) and `work`
# (its temp dir). Sets echo_port, gw_port and admin_port.
#
#   start_gateway_with_echo NAME    # NAME: the echo's ECHO_NAME and the prefix of errors

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_gateway_with_echo() {
	local name=$1
	(cd "$root" && cargo build --quiet -p apiroutes-gateway -p apiroutes-example-echo)
	echo_port=$(free_port)
	gw_port=$(free_port)
	admin_port=$(free_port)
	HOST=127.0.0.1 PORT=$echo_port ECHO_NAME=$name "$CARGO_TARGET_DIR/debug/echo" 2>"$work/echo.log" &
	pids+=($!)
	# One catch-all route serving the usual methods.
	cat >"$work/routes.yaml" <<ROUTES
routes:
  - route:
      metadata: { name: root, creationTimestamp: "2026-01-01T00:00:00Z" }
      spec: { path: "/[[...all]]", image: unused, methods: [GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS] }
    backends: ["http://127.0.0.1:$echo_port"]
ROUTES
	"$CARGO_TARGET_DIR/debug/apiroutes-gateway" --static "$work/routes.yaml" \
		--listen "127.0.0.1:$gw_port" --admin-listen "127.0.0.1:$admin_port" --log-level warn \
		--no-access-log >"$work/gateway.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 100); do
		curl -fsS -o /dev/null "http://127.0.0.1:$admin_port/readyz" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "$name: the gateway did not get ready" >&2
	cat "$work/gateway.log" >&2
	return 1
}
