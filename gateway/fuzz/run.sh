#!/usr/bin/env bash
# Runs every fuzz target of the gateway for a while and reports executions and crashes.
# Not part of CI (it takes minutes and a nightly toolchain).
#
#   bash gateway/fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]   # default 60 s, every target
#
# Installs cargo-fuzz (pinned, into $APIROUTES_CACHE/tools) when missing. A crash leaves
# its input in gateway/fuzz/artifacts/<target>/; make it a regression test (a unit test
# next to the code, with the input as a literal) and fix the code.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../../tests/lib/env.sh"
seconds=${1:-60}
shift || true
[[ $seconds =~ ^[0-9]+$ ]] || { echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 2; }
rustup toolchain list | grep -q '^nightly' || { echo "fuzzing needs a nightly toolchain (rustup toolchain install nightly)" >&2; exit 1; }
fuzz_root=$APIROUTES_CACHE/tools/cargo-fuzz-0.13.1
if [[ ! -x $fuzz_root/bin/cargo-fuzz ]]; then
	CARGO_TARGET_DIR=$APIROUTES_CACHE/tools/build \
		cargo install --locked --quiet --root "$fuzz_root" cargo-fuzz --version 0.13.1
fi
export PATH=$fuzz_root/bin:$PATH
export CARGO_TARGET_DIR=$APIROUTES_CACHE/target-fuzz
cd "$here/.."
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || mapfile -t targets < <(cargo +nightly fuzz list)
failed=0
printf '%-16s %12s %10s\n' target executions crashes
for t in "${targets[@]}"; do
	log=$(mktemp)
	rc=0
	cargo +nightly fuzz run "$t" -- -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1 || rc=$?
	execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
	crashes=0
	if [[ $rc -ne 0 ]]; then
		crashes=1
		failed=1
		grep -E 'panicked|ERROR|artifact_prefix|Test unit written' "$log" | head -5 >&2
	fi
	printf '%-16s %12s %10s\n' "$t" "${execs:-?}" "$crashes"
	rm -f "$log"
done
exit $failed
