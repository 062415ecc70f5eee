#!/usr/bin/env bash
# The whole test suite, as CI runs it:
#   1. release build (CUDA sources compiled when nvcc exists; CUDA tests skip without a GPU), ctest
#   2. CPU-only ASan/UBSan build with mimalloc off, ctest minus the tests labelled slow
#   3. the parser fuzz target for a bounded time (when clang is installed)
# Ends with one line "N passed, N failed, N skipped" over all runs; exits nonzero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}
passed=0; failed=0; skipped=0; status=0

run_ctest() {  # build-dir, extra ctest args...
  local dir=$1; shift
  local log; log=$(mktemp)
  ctest --test-dir "$dir" --output-on-failure -j "$JOBS" "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  local total fail skip
  total=$(sed -n 's/.*tests passed, \([0-9]*\) tests failed out of \([0-9]*\).*/\2/p' "$log" | tail -1)
  fail=$(sed -n 's/.*tests passed, \([0-9]*\) tests failed out of.*/\1/p' "$log" | tail -1)
  skip=$(grep -c '\*\*\*Skipped\|Not Run' "$log" || true)
  total=${total:-0}; fail=${fail:-0}
  passed=$((passed + total - fail - skip)); failed=$((failed + fail)); skipped=$((skipped + skip))
  if [[ $rc -ne 0 || $total -eq 0 ]]; then status=1; fi
  rm -f "$log"
}

build() {  # source-dir, build-dir, cmake args...
  local src=$1 dir=$2; shift 2
  if ! { cmake -S "$src" -B "$dir" -G Ninja "$@" && cmake --build "$dir" -j "$JOBS"; }; then
    echo "build in $dir failed"; failed=$((failed + 1)); status=1; return 1
  fi
}

echo "=== release build and tests"
build . build -DCMAKE_BUILD_TYPE=Release && run_ctest build

echo "=== ASan/UBSan build (CPU only, mimalloc off) and tests"
build . build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGPTQ_SANITIZE=ON -DGPTQ_CUDA=OFF \
      -DGPTQ_BUILD_EXAMPLES=OFF && ASAN_OPTIONS=detect_leaks=1 run_ctest build-asan -LE slow

if command -v clang++ >/dev/null; then
  echo "=== fuzzing the safetensors/config parsers"
  build tests/fuzz build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang \
        && run_ctest build-fuzz
else
  echo "=== clang not installed: fuzz target not run"; skipped=$((skipped + 1))
fi

echo
echo "${passed} passed, ${failed} failed, ${skipped} skipped"
exit $status
