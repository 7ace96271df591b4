#!/usr/bin/env bash
# Builds the fuzz targets in fuzz/ (cargo fuzz, libFuzzer, no sanitizer: stable Rust) and runs
# each from its seed corpus for FUZZ_SECONDS (default 30) seconds, or only the targets named as
# arguments. Fails on any crash, leak of the 2 GiB memory budget or panic, leaving the input that
# caused it in fuzz/artifacts/<target>/ (rerun it with `cargo fuzz run -s none --dev <target> <file>`).
# Prints the executions each target ran. Inputs found to reach new code are kept in
# fuzz/corpus/<target>/ (only the seed-* files are committed).
# The build is unoptimized (fuzz/'s dev profile: 4.5 minutes from clean on 2 cores, against 11 to
# 14 optimized), which suits CI's short run; FUZZ_RELEASE=1 builds optimized for a long campaign,
# some 15x more executions a second on the RPC target.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${FUZZ_SECONDS:-30}
profile=(--dev)
[ "${FUZZ_RELEASE:-0}" = 1 ] && profile=()
if ! command -v cargo-fuzz >/dev/null; then
  echo "== fuzz: installing cargo-fuzz"
  cargo install cargo-fuzz --locked --version 0.13.2
fi
echo "== fuzz: building the targets"
cargo fuzz build -s none "${profile[@]}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
summary=()
for target in "${targets[@]}"; do
  echo "== fuzz: $target for ${seconds}s"
  log=$(mktemp)
  if ! cargo fuzz run -s none "${profile[@]}" "$target" "corpus/$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=2048 -max_len=65536 \
      -print_final_stats=1 >"$log" 2>&1; then
    tail -60 "$log"
    echo "fuzz: $target failed; the input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  summary+=("$target: $runs executions in ${seconds}s")
  rm -f "$log"
done
echo "== fuzz: no crash"
printf '  %s\n' "${summary[@]}"
