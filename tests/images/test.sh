#!/usr/bin/env bash
# Checks the project's images (tests/images/build.sh):
#   - reproducible: a second build into another directory, from other staging dirs, gives
#     the same manifest digest for every image;
#   - complete: config runs as 65532:65532, carries the OCI source/revision/version
#     labels, its entrypoint exists and is executable, no shell is needed;
#   - runnable: each image's root filesystem, unpacked, runs its program under chroot as
#     uid 65532 (gateway --help, the echo and Node functions serving a request on
#     127.0.0.1, pause exiting on SIGTERM) — with nothing from the host but the kernel.
# Usage: tests/images/test.sh [IMAGES_LIST]   (default: build the images first)
# Needs root (chroot). Prints `ok -`/`FAIL -` lines; exits 1 on any failure.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$repo/tests/lib/env.sh"

failures=0
pass() { echo "ok - $*"; }
fail() {
  echo "FAIL - $*"
  failures=$((failures + 1))
}

work=$(mktemp -d "${TMPDIR:-/tmp}/apiroutes-images-test.XXXXXX")
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT

list=${1:-}
if [[ -z $list ]]; then
  list=$work/first.list
  bash "$here/build.sh" >"$list" || exit 1
fi
# The second build writes elsewhere; same inputs, so the same digests.
APIROUTES_IMAGES_OUT=$work/second bash "$here/build.sh" >"$work/second.list" 2>"$work/second.log" ||
  { cat "$work/second.log" >&2; exit 1; }

digest_of() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]+"/index.json"))["manifests"][0]["digest"])' "$1"; }

# unpack LAYOUT ROOTFS: applies the layers in order (no whiteouts: our images have none).
unpack() {
  python3 - "$1" "$2" <<'EOF'
import json, sys, tarfile, os
layout, root = sys.argv[1], sys.argv[2]
index = json.load(open(f"{layout}/index.json"))
blob = lambda d: f"{layout}/blobs/sha256/{d.split(':', 1)[1]}"
manifest = json.load(open(blob(index["manifests"][0]["digest"])))
os.makedirs(root, exist_ok=True)
for layer in manifest["layers"]:
    with tarfile.open(blob(layer["digest"])) as t:
        t.extractall(root, filter="fully_trusted")
print(json.dumps(json.load(open(blob(manifest["config"]["digest"])))))
EOF
}

chroot_bin=$(command -v chroot)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_http() {
  local url=$1 i
  for ((i = 0; i < 100; i++)); do
    curl -fsS --max-time 2 "$url" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

while read -r ref layout; do
  [[ -n $ref ]] || continue
  name=${ref##*/}
  name=${name%%:*}
  second=$(awk -v r="$ref" '$1 == r { print $2 }' "$work/second.list")
  d1=$(digest_of "$layout")
  d2=$(digest_of "$second")
  [[ -n $d1 && $d1 == "$d2" ]] && pass "$ref: rebuilt from the same inputs, same digest $d1" ||
    fail "$ref: not reproducible: $d1 vs $d2"

  tagged=${ref##*/}
  root=$work/rootfs-${tagged/:/-}
  config=$(unpack "$layout" "$root") || { fail "$ref: cannot unpack"; continue; }
  field() { python3 -c 'import json,sys; c=json.loads(sys.argv[1])["config"]; v=eval(sys.argv[2]); print(v if isinstance(v,str) else json.dumps(v))' "$config" "$1"; }
  [[ $(field 'c.get("User")') == 65532:65532 ]] && pass "$ref: runs as 65532:65532" ||
    fail "$ref: User is $(field 'c.get("User")')"
  for key in source revision version; do
    v=$(field "c.get('Labels',{}).get('org.opencontainers.image.$key','')")
    [[ -n $v ]] && pass "$ref: label org.opencontainers.image.$key=$v" || fail "$ref: no org.opencontainers.image.$key label"
  done
  entry=$(field 'c["Entrypoint"][0]')
  [[ -x $root$entry && -f $root$entry ]] && pass "$ref: entrypoint $entry is an executable file" ||
    fail "$ref: entrypoint $entry missing or not executable"
  [[ ! -e $root/bin/sh ]] && pass "$ref: no shell in the image" || fail "$ref: has /bin/sh"
  size=$(du -sm "$root" | cut -f1)
  echo "# $ref: root filesystem ${size} MB, layers $(python3 -c 'import json,sys; m=json.load(open(sys.argv[1]+"/blobs/sha256/"+json.load(open(sys.argv[1]+"/index.json"))["manifests"][0]["digest"][7:])); print(sum(l["size"] for l in m["layers"])//1024//1024)' "$layout") MB compressed"

  run=(chroot --userspec=65532:65532 "$root")
  case $name in
    gateway | operator)
      "${run[@]}" "$entry" --help >/dev/null 2>&1 && pass "$ref: $entry --help runs in the bare root filesystem" ||
        fail "$ref: $entry --help fails under chroot: $("${run[@]}" "$entry" --help 2>&1 | tail -2)"
      ;;
    echo)
      port=$(free_port)
      env -i PORT="$port" HOST=127.0.0.1 "$chroot_bin" --userspec=65532:65532 "$root" "$entry" >"$work/echo.log" 2>&1 &
      pids+=($!)
      out=$(wait_http "http://127.0.0.1:$port/api/x" || true)
      [[ $out == *'"path"'* ]] && pass "$ref: serves a request from the bare root filesystem" ||
        fail "$ref: no answer: $out $(tail -2 "$work/echo.log")"
      ;;
    nextjs-example | e2e-fixtures)
      v=$("${run[@]}" /usr/local/bin/node --version 2>&1)
      [[ $v == v24.* ]] && pass "$ref: node $v runs in the bare root filesystem" || fail "$ref: node --version: $v"
      if [[ $name == e2e-fixtures ]]; then
        handler=pages/api/whoami.mjs path=/api/whoami want='"uid":65532'
      else
        handler=pages/api/hello.mjs path=/api/hello want='{'
      fi
      [[ -f $root/srv/functions/$handler ]] && pass "$ref: bundled $handler" || fail "$ref: no /srv/functions/$handler"
      port=$(free_port)
      # As the kubelet would: the image's Env, APIROUTES_HANDLER from the route.
      env -i NODE_ENV=production HOST=127.0.0.1 PORT="$port" APIROUTES_HANDLER="$handler" \
        "$chroot_bin" --userspec=65532:65532 "$root" /usr/local/bin/node /opt/apiroutes-node/bin/apiroutes-node.js \
        "/srv/functions/$handler" >"$work/$name.log" 2>&1 &
      pids+=($!)
      out=$(wait_http "http://127.0.0.1:$port$path" || true)
      [[ $out == *"$want"* ]] && pass "$ref: serves $path from the bare root filesystem: ${out:0:80}" ||
        fail "$ref: $path: $out $(tail -3 "$work/$name.log")"
      ;;
    pause)
      "${run[@]}" /pause &
      p=$!
      sleep 0.3
      kill -TERM "$p"
      wait "$p"
      code=$?
      [[ $code == 143 ]] && pass "$ref: /pause runs and exits 143 on SIGTERM" || fail "$ref: /pause exit code $code"
      ;;
  esac
done <"$list"

for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
echo "# $((failures)) failure(s)"
((failures == 0))
