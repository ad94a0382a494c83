#!/usr/bin/env bash
# Fuzzes every parser of outside input with libFuzzer and AddressSanitizer (Tests/Fuzz/TradfriFuzz):
# the gateway JSON model, MQTT commands and attribute values, bridge requests, the configuration
# file, the pairing HTTP requests, the control socket, and the simulator's CoAP requests.
#
#   scripts/fuzz.sh                     each target for 10 minutes (FUZZ_SECONDS changes that)
#   scripts/fuzz.sh --ci                each target for a bounded number of inputs (FUZZ_RUNS, 20000)
#   scripts/fuzz.sh [--ci] TARGET…      only these targets
#
# Seeds: Tests/Fuzz/Corpus/<target> (real payloads from the references). What a run finds that
# covers new code is kept in .fuzz/corpus/<target> and used again by the next run; a crash is
# saved in .fuzz/crashes/<target>/ and fails the run (reproduce it with
# `TRADFRI_FUZZ_TARGET=<target> .build-fuzz/debug/tradfri-fuzz <file>`; then add it to a test).
# Prints a table of inputs tried per target; the last line is "N passed, N failed" (targets).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=long
if [ "${1:-}" = "--ci" ]; then
  mode=ci
  shift
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(gateway-model mqtt-command bridge-request configuration pairing-http control-socket simulator-coap)
fi

# Its own build folder: every module instrumented for coverage (-sanitize=fuzzer) and checked by
# AddressSanitizer, the C ones (libyaml in Yams, the shims) too.
TRADFRI_FUZZ=1 swift build --scratch-path .build-fuzz --product tradfri-fuzz \
  -Xswiftc -sanitize=fuzzer,address -Xcc -fsanitize=fuzzer-no-link,address -Xswiftc -use-ld=lld >&2
fuzzer=.build-fuzz/debug/tradfri-fuzz

# The Swift runtime keeps some allocations to the end on purpose: no leak report at exit.
export ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1

passed=0
failed=0
report=()
for target in "${targets[@]}"; do
  seeds="Tests/Fuzz/Corpus/$target"
  corpus=".fuzz/corpus/$target"
  crashes=".fuzz/crashes/$target"
  mkdir -p "$corpus" "$crashes"
  if [ "$mode" = ci ]; then
    limits=(-runs="${FUZZ_RUNS:-20000}" -max_total_time=120)
  else
    limits=(-max_total_time="${FUZZ_SECONDS:-600}")
  fi
  log=".fuzz/$target.log"
  status=0
  TRADFRI_FUZZ_TARGET=$target "$fuzzer" "${limits[@]}" -max_len=4096 -timeout=20 -rss_limit_mb=3072 \
    -print_final_stats=1 -artifact_prefix="$crashes/" "$corpus" "$seeds" >"$log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  size=$(find "$corpus" -type f | wc -l)
  if [ "$status" -eq 0 ]; then
    passed=$((passed + 1))
    report+=("$(printf '%-16s %10s inputs  %6s/s  corpus %5s  no crash' "$target" "${runs:-?}" "${speed:-?}" "$size")")
  else
    failed=$((failed + 1))
    report+=("$(printf '%-16s %10s inputs  %6s/s  corpus %5s  CRASH (exit %s), see %s' "$target" "${runs:-?}" \
      "${speed:-?}" "$size" "$status" "$log")")
    grep -E -m 12 "ERROR|SUMMARY|Fatal error|Crash|crash-|deadly|Test unit written" "$log" | sed 's/^/    /' >&2 || true
  fi
done

printf '%s\n' "${report[@]}" | tee .fuzz/results.txt
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
