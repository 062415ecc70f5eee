#!/usr/bin/env bash
# run_tests.sh LANG — builds and runs one binding's tests against a built libgptq.
#
#   LANG: rust | go | csharp | python
#   GPTQ_LIB_DIR           directory holding libgptq.so (required; ctest sets it to the build dir)
#   GPTQ_SHARED_DIR        the shared data folder (default: ../shared beside the repository)
#   GPTQ_BINDINGS_BUILD_DIR where build outputs and caches go (default: $GPTQ_LIB_DIR/bindings)
#
# Exits 77 (ctest: skipped) with a message when the language's toolchain or the library is
# missing, else with the test run's status. Build outputs go to the build tree; the only file
# written into the source tree is cargo's Cargo.lock (git-ignored; the crate has no dependencies).
set -euo pipefail

lang="${1:?usage: run_tests.sh rust|go|csharp|python}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"

skip() { echo "SKIP ($lang bindings): $*"; exit 77; }
need() { command -v "$1" >/dev/null 2>&1 || skip "$1 not found on PATH"; }

lib_dir="${GPTQ_LIB_DIR:-}"
[ -n "$lib_dir" ] || skip "GPTQ_LIB_DIR is not set (the directory holding libgptq.so)"
lib_dir="$(cd "$lib_dir" 2>/dev/null && pwd)" || skip "GPTQ_LIB_DIR=$GPTQ_LIB_DIR does not exist"
[ -e "$lib_dir/libgptq.so" ] || skip "libgptq.so is not built in $lib_dir"
export GPTQ_LIB_DIR="$lib_dir"
export GPTQ_LIB="$lib_dir/libgptq.so"
export GPTQ_SOURCE_DIR="$repo"
export GPTQ_SHARED_DIR="${GPTQ_SHARED_DIR:-$repo/../shared}"
[ -d "$GPTQ_SHARED_DIR/models/stories260k" ] || skip "shared models not found in $GPTQ_SHARED_DIR"
out="${GPTQ_BINDINGS_BUILD_DIR:-$lib_dir/bindings}/$lang"
mkdir -p "$out"

case "$lang" in
rust)
    need cargo
    export CARGO_TARGET_DIR="$out/target"
    cd "$here/rust"
    exec cargo test --offline
    ;;
go)
    need go
    export GOCACHE="$out/cache" GOPATH="$out/gopath" GOTOOLCHAIN=local GOFLAGS= GO111MODULE=on
    export CGO_ENABLED=1 CGO_LDFLAGS="-L$lib_dir -Wl,-rpath,$lib_dir"
    cd "$here/go"
    exec go test -count=1 -v ./...
    ;;
csharp)
    need mcs
    need mono
    mcs -nologo -target:library -out:"$out/Gptq.dll" "$here"/csharp/Gptq/*.cs
    mcs -nologo -out:"$out/GptqTests.exe" -r:"$out/Gptq.dll" -r:System.Core "$here"/csharp/Gptq.Tests/*.cs
    export LD_LIBRARY_PATH="$lib_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    exec mono "$out/GptqTests.exe"
    ;;
python)
    need python3
    export PYTHONDONTWRITEBYTECODE=1
    cd "$here/python"
    exec python3 -m unittest discover -s tests -v
    ;;
*)
    echo "unknown binding '$lang' (rust, go, csharp, python)" >&2
    exit 2
    ;;
esac
