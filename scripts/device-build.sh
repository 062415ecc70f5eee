#!/usr/bin/env bash
# device-build.sh — builds on the GPU machine, which cannot download anything.
#
#   scripts/device-build.sh BUILD_DIR kernels   standalone nvcc build of test_cuda_kernels and
#                                              bench-kernels (no library dependencies)
#   scripts/device-build.sh BUILD_DIR full      the real CMake build (GPTQ_CUDA=ON), with the Debian
#                                              packages carried in .deps/ unpacked into /tmp/deps
#                                              (the -dev packages of install-deps.sh, libpcre2-dev
#                                              and libicu-dev among them: `apt-get download` here)
#
# Environment: ARCHS (default 90a), JOBS (default nproc).
set -euo pipefail
B=${1:?usage: device-build.sh BUILD_DIR kernels|full}
MODE=${2:-full}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ARCHS=${ARCHS:-90a}
JOBS=${JOBS:-$(nproc)}
DEPS=/tmp/deps
if [[ -d "$ROOT/.deps" && ! -d $DEPS/usr ]]; then
  for f in "$ROOT"/.deps/*.deb; do dpkg -x "$f" $DEPS; done
fi
MA=x86_64-linux-gnu
export CPATH=$DEPS/usr/include:$DEPS/usr/include/$MA:$DEPS/usr/include/$MA/openblas-pthread${CPATH:+:$CPATH}
export LIBRARY_PATH=$DEPS/usr/lib/$MA:$DEPS/usr/lib/$MA/openblas-pthread${LIBRARY_PATH:+:$LIBRARY_PATH}
export LD_LIBRARY_PATH=$DEPS/usr/lib/$MA:$DEPS/usr/lib/$MA/openblas-pthread${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
mkdir -p "$B"
B=$(cd "$B" && pwd)
cd "$ROOT"

if [[ $MODE == kernels ]]; then
  GENCODE=""
  for a in ${ARCHS//;/ }; do GENCODE+=" -gencode=arch=compute_$a,code=sm_$a"; done
  NVFLAGS="-std=c++17 -O3 -lineinfo --expt-relaxed-constexpr $GENCODE -DGPTQ_USE_CUDA -I. -Isrc -Itests"
  # gptq_cuda_available() without the rest of the library.
  cat > "$B/cuda_available_stub.cpp" <<'STUB'
#include "gptq.h"
#include <cuda_runtime.h>
extern "C" int32_t gptq_cuda_available(void) { int n = 0; return cudaGetDeviceCount(&n) == cudaSuccess && n > 0; }
STUB
  srcs=(src/cuda/*.cu src/common.cpp tests/test_cuda_kernels.cpp tests/test_main.cpp tests/testutil.cpp
        examples/bench-kernels.cu)
  printf '%s\n' "${srcs[@]}" | xargs -P "$JOBS" -I{} sh -c \
    'o="$0/$(echo {} | tr / _).o"; nvcc '"$NVFLAGS"' -c {} -o "$o"' "$B"
  nvcc $NVFLAGS -c "$B/cuda_available_stub.cpp" -o "$B/cuda_available_stub.cpp.o"
  lib_objs=("$B"/src_cuda_*.o "$B"/src_common.cpp.o)
  nvcc $GENCODE -o "$B/test_cuda_kernels" "${lib_objs[@]}" "$B"/tests_*.o "$B/cuda_available_stub.cpp.o" -lcublas
  nvcc $GENCODE -o "$B/bench-kernels" "${lib_objs[@]}" "$B/examples_bench-kernels.cu.o" -lcublas
  echo "built $B/test_cuda_kernels $B/bench-kernels"
  exit 0
fi

cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGPTQ_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$ARCHS" \
  -DGPTQ_NATIVE=OFF -DCMAKE_PREFIX_PATH=$DEPS/usr \
  -DSENTENCEPIECE_INCLUDE_DIR=$DEPS/usr/include -DSENTENCEPIECE_LIBRARY=$DEPS/usr/lib/$MA/libsentencepiece.so \
  -DPCRE2_INCLUDE_DIR=$DEPS/usr/include -DPCRE2_LIBRARY=$DEPS/usr/lib/$MA/libpcre2-8.so \
  -DCBLAS_INCLUDE_DIR=$DEPS/usr/include/$MA/openblas-pthread \
  -DOPENBLAS_LIBRARY=$DEPS/usr/lib/$MA/openblas-pthread/libopenblas.so \
  -DGPTQ_SHARED_DIR="$ROOT/.dev/shared" ${CMAKE_EXTRA:-}
cmake --build "$B" -j "$JOBS" ${TARGETS:+--target $TARGETS}
