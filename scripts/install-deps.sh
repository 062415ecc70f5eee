#!/usr/bin/env bash
# Installs the Debian packages libgptq builds and tests with. Safe to run again.
#   scripts/install-deps.sh          build + test dependencies
#   scripts/install-deps.sh --all    also the toolchains the language bindings are tested with
set -euo pipefail
pkgs=(build-essential cmake ninja-build pkg-config git
      libmimalloc-dev libsentencepiece-dev libpcre2-dev libicu-dev nlohmann-json3-dev doctest-dev
      libopenblas-dev liblapacke-dev python3 time)
if [[ "${1:-}" == "--all" ]]; then
  pkgs+=(clang libclang-rt-14-dev golang-go mono-mcs mono-runtime cargo)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# cargo may come from rustup instead of Debian: skip it if one is on PATH already.
if command -v cargo >/dev/null; then missing=("${missing[@]/cargo}"); fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
if ((${#missing[@]})); then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
