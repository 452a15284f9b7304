# Shared environment for the repo's scripts: caches outside the tree, toolchain checks.
# Sourced, not run.
export APIROUTES_CACHE="${APIROUTES_CACHE:-$HOME/.cache/apiroutes}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$APIROUTES_CACHE/target}"
export GOTOOLCHAIN=local
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
mkdir -p "$APIROUTES_CACHE"

step() { printf '\n==> %s\n' "$*" >&2; }

need() {
  command -v "$1" >/dev/null 2>&1 || { echo "missing $1: $2" >&2; exit 1; }
}

need cargo "install Rust (https://rustup.rs)"
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy >&2
fi
need python3 "install Python 3"
need node "install Node.js 20 or newer"
# The chart tests parse rendered manifests with PyYAML.
python3 -c 'import yaml' 2>/dev/null || python3 -m pip install --quiet pyyaml >&2
