#!/usr/bin/env bash
# Runs the C flow (nrt-sim/tests/c/flow.c: sync and async) and the surface program
# (tests/c/surface.c observe: trace, debug stream, dma-buf, profiling) under valgrind against
# libnrt_sim.so: fails on any invalid access or definite leak.
# Usage: nrt-sim/ci-valgrind.sh   (from anywhere; honours CARGO_TARGET_DIR)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
cc="${CC:-cc}"

command -v valgrind >/dev/null || { echo "ci-valgrind: valgrind not found" >&2; exit 1; }

cargo build --manifest-path "$root/Cargo.toml" -p nrt-sim --lib --bins
lib_dir="$target/debug"
[ -f "$lib_dir/libnrt_sim.so" ] || { echo "ci-valgrind: $lib_dir/libnrt_sim.so missing" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$lib_dir/nrt-sim-model" -o "$work/add.neff" --name add --device-time-us 1000 \
    --input a:f32:2x3 --input b:f32:2x3 --output out:f32:2x3 --op 'add a b out'

"$cc" -std=c11 -Wall -Wextra -Werror -O1 -g \
    -I "$root/nrt-sys/include" -I "$here/include" \
    "$here/tests/c/flow.c" -o "$work/flow" \
    -L "$lib_dir" -lnrt_sim -Wl,-rpath,"$lib_dir"

env -u NRT_SIM_FAULTS -u NRT_SIM_VERSION \
    valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
    "$work/flow" "$work/add.neff"
echo "ci-valgrind: C flow passed under valgrind"

# The rest of the surface: trace, debug stream, dma-buf, inspect, continuous profiling.
"$cc" -std=c11 -Wall -Wextra -Werror -O1 -g \
    -I "$root/nrt-sys/include" -I "$here/include" \
    "$here/tests/c/surface.c" -o "$work/surface" \
    -L "$lib_dir" -lnrt_sim -Wl,-rpath,"$lib_dir"
env -u NRT_SIM_FAULTS \
    valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
    "$work/surface" observe "$work/add.neff" "$work/captures"
echo "ci-valgrind: C surface passed under valgrind"
