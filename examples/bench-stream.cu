// bench-stream — how long a kernel that does nothing but read N bytes takes on this GPU, back to
// back in a CUDA graph: the practical floor under a memory-bound product of N bytes.
//
// bench-kernels' "floor" is N bytes at the bandwidth of a 1 GiB copy. A kernel that reads a few
// tens of MB also pays its launch, its first loads' latency and its drain, which a 1 GiB copy
// amortizes; this program measures that cost with kernels that have nothing else to do, for the
// byte counts of bench-kernels' 4-bit products (weights + fp16 group-128 scales), so its rows say
// how close to the floor any one-kernel product can get here. Kinds of reader, each graph-timed
// over rotating copies of the bytes (the L2 cannot hold them):
//   ldg   256-thread blocks, `bps` per SM, grid-stride, each thread with U 16-byte loads in flight
//         per step; launched plain, or with PDL waiting for the previous kernel before the first
//         loads ("wait") or after issuing them ("pre", as the 4-bit kernel prefetches its weights)
//   bulk  one block per SM whose one thread keeps D bulk copies of C bytes in flight into shared
//         memory (Hopper's copy engine: no registers, no load instructions), PDL "pre"
//   region the 4-bit kernel's pattern: each warp streams its own contiguous region, PDL "pre"
//   empty an empty PDL kernel (what a graph node costs by itself)
// Then a fit of each kind's best times to fixed + bytes / bandwidth.
//
//   bench-stream [MB ...]   (default: the six bench-kernels shapes' byte counts)
//   GPTQ_STREAM_BULK_BLOCKS=b runs the bulk kind on b blocks (default: one per SM).
#include "bench_timer.cuh"
#include "common.h"
#include "cuda/cuda_check.cuh"
#include "cuda/launch.cuh"
#include "cuda/mem_ops.cuh"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

using namespace gptq;
using namespace gptq::cuda;
using namespace gptq::bench;

namespace {

// A value no sum of random words is expected to hit: the readers store their xor only then, so
// the loads cannot be optimized away and nothing is written.
constexpr uint32_t kNever = 0x9e3779b9u;

// Reads p[i], p[i + step], ... below `end`, U loads in flight per step, and folds them; the PDL
// wait before any load (wait_first) or once the first step's loads are issued.
template <int U>
__device__ __forceinline__ void read_strided(const uint4 *__restrict__ p, size_t i, size_t end, size_t step,
                                             bool wait_first, uint32_t *sink) {
    bool waited = false;
    if (wait_first) {
        pdl_enter();
        waited = true;
    }
    uint32_t acc = 0;
    for (; i < end; i += U * step) {
        uint4 v[U];
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const size_t j = i + u * step;
            v[u] = j < end ? ld_stream(p + j) : make_uint4(0u, 0u, 0u, 0u);
        }
        if (!waited) {
            pdl_enter();
            waited = true;
        }
#pragma unroll
        for (int u = 0; u < U; ++u) acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
    }
    if (!waited) pdl_enter();
    if (acc == kNever) *sink = acc;
}

// Grid-stride reader: consecutive threads read consecutive 16 bytes, the grid sweeps the buffer.
template <int U>
__global__ void __launch_bounds__(256) ldg_reader(const uint4 *__restrict__ p, size_t n16, int wait_first,
                                                  uint32_t *sink) {
    read_strided<U>(p, size_t(blockIdx.x) * blockDim.x + threadIdx.x, n16, size_t(gridDim.x) * blockDim.x,
                    wait_first != 0, sink);
}

// Region reader, the 4-bit kernel's access pattern: every warp reads its own contiguous region of
// region16 uint4s (a multiple of 32) front to back, U 512-byte warp loads in flight per step; the
// regions of the warps in flight at once lie far apart (the fused kernel's warps each stream one
// column tile's K range). The PDL wait after the first step's loads.
template <int U>
__global__ void __launch_bounds__(128) region_reader(const uint4 *__restrict__ p, size_t n16, size_t region16,
                                                     uint32_t *sink) {
    const size_t warp = (size_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
    const size_t begin = warp * region16;
    read_strided<U>(p, begin + (threadIdx.x & 31), min(n16, begin + region16), 32, false, sink);
}

// Bulk-copy reader: block b takes chunks b, b + grid, ... of `chunk` bytes; its thread 0 keeps D of
// them in flight into a ring of shared-memory buffers, re-issuing each buffer as it lands.
template <int D>
__global__ void bulk_reader(const char *__restrict__ p, size_t bytes, int chunk, uint32_t *sink) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    extern __shared__ __align__(128) char ring[];
    __shared__ __align__(8) uint64_t full[D];
    if (threadIdx.x != 0) {
        pdl_enter();
        return;
    }
    for (int d = 0; d < D; ++d) mbar_init(smem_addr(&full[d]), 1);
    mbar_init_fence();
    const size_t nchunks = (bytes + chunk - 1) / chunk;
    const size_t mine = nchunks > blockIdx.x ? (nchunks - blockIdx.x + gridDim.x - 1) / gridDim.x : 0;
    auto issue = [&](size_t k) {  // this block's k-th chunk into buffer k % D
        const size_t off = (blockIdx.x + k * gridDim.x) * size_t(chunk);
        const uint32_t n = uint32_t(std::min<size_t>(chunk, bytes - off));
        const uint32_t bar = smem_addr(&full[k % D]);
        mbar_expect_tx(bar, n);
        bulk_copy(smem_addr(ring + (k % D) * size_t(chunk)), p + off, n, bar);
    };
    for (size_t k = 0; k < mine && k < size_t(D); ++k) issue(k);
    pdl_enter();
    for (size_t k = 0; k < mine; ++k) {
        mbar_wait(smem_addr(&full[k % D]), uint32_t((k / D) & 1));
        if (k + D < mine) issue(k + D);
    }
    if (mine == kNever) *sink = 0;  // keeps the shape of the other readers; never taken
#else
    if (threadIdx.x == 0 && bytes == size_t(-1)) *sink = uint32_t(chunk) + uint32_t(size_t(p));
#endif
}

__global__ void empty_reader() { pdl_enter(); }

struct Result {
    std::string cfg;
    double us;
};

} // namespace

int main(int argc, char **argv) try {
    int dev = 0;
    CUDA_CHECK(cudaSetDevice(dev));
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
    const int sms = prop.multiProcessorCount;
    std::printf("device: %s, %d SMs, L2 %.0f MB, cc %d.%d\n", prop.name, sms, prop.l2CacheSize / 1e6, prop.major,
                prop.minor);
    Timer timer;
    const double bw = copy_bandwidth(timer);
    std::printf("device-to-device copy: %.0f GB/s (bytes read + written)\n\n", bw / 1e9);

    struct Size {
        double bytes;
        std::string name;
    };
    std::vector<Size> sizes;
    if (argc > 1) {
        for (int a = 1; a < argc; ++a) sizes.push_back({std::atof(argv[a]) * 1e6, std::string(argv[a]) + " MB"});
    } else {
        const int shapes[6][2] = {{4096, 12288}, {4096, 4096}, {4096, 22016}, {11008, 4096}, {8192, 57344}, {28672, 8192}};
        const char *names[6] = {"7B qkv", "7B o_proj", "7B gate+up", "7B down", "70B gate+up", "70B down"};
        for (int s = 0; s < 6; ++s) {
            const double K = shapes[s][0], N = shapes[s][1];
            sizes.push_back({K * N / 2 + K / 128 * N * 2, names[s]});
        }
    }

    // One pool the readers slide over: a call reads copy (i mod copies) of its bytes.
    const RotatingPool pool(prop);
    uint32_t *sink = dev_alloc<uint32_t>(1);
    cudaStream_t s;
    CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    const bool hopper = prop.major >= 9;

    const double empty_us = timer.us_graph([&](int) { launch(empty_reader, dim3(sms), dim3(32), 0, s); }, 200, s);
    std::printf("empty PDL kernel in a graph: %.2f us per node\n\n", empty_us);
    std::printf("%-12s %8s %9s | %-34s | %-34s | %-34s | %s\n", "bytes", "MB", "floor us", "ldg plain (best cfg)",
                "ldg PDL (best cfg)", "bulk PDL pre (best cfg)", "region PDL pre (best cfg)");

    std::vector<double> xs;
    std::vector<double> best_of[4];
    for (const Size &z : sizes) {
        const size_t bytes = size_t(z.bytes) / 256 * 256;
        if (pool.copies(bytes) < 2 || pool.slot(bytes) * 2 > pool.bytes) {
            std::printf("%-12s: %.0f MB does not fit twice in the %zu MB pool, skipped\n", z.name.c_str(), z.bytes / 1e6,
                        pool.bytes >> 20);
            continue;
        }
        const int iters = int(std::clamp(2e9 / double(bytes), 20.0, 400.0));
        auto at = [&](int i) { return pool.at(bytes, i); };
        std::vector<Result> plain, pdl, bulk;
        for (int bps : {1, 2, 4, 8}) {
            for (int U : {4, 8}) {
                for (int mode = 0; mode < 3; ++mode) {  // 0 plain, 1 PDL wait first, 2 PDL loads first
                    const bool use_pdl = mode != 0;
                    set_pdl(use_pdl);
                    auto kern = U == 4 ? ldg_reader<4> : ldg_reader<8>;
                    const double t = timer.us_graph(
                        [&](int i) {
                            launch(kern, dim3(sms * bps), dim3(256), 0, s, reinterpret_cast<const uint4 *>(at(i)),
                                   bytes / 16, mode == 1 ? 1 : 0, sink);
                        },
                        iters, s);
                    char cfg[64];
                    std::snprintf(cfg, sizeof cfg, "%d/SM U%d%s", bps, U, mode == 1 ? " wait" : mode == 2 ? " pre" : "");
                    (use_pdl ? pdl : plain).push_back({cfg, t});
                }
            }
        }
        set_pdl(true);
        std::vector<Result> region;
        for (int bps : {3, 4, 8}) {
            for (int U : {4, 8}) {
                const size_t warps = size_t(sms) * bps * 4, n16 = bytes / 16;
                const size_t region16 = (n16 + warps - 1) / warps + 31 & ~size_t(31);
                auto kern = U == 4 ? region_reader<4> : region_reader<8>;
                const double t = timer.us_graph(
                    [&](int i) {
                        launch(kern, dim3(sms * bps), dim3(128), 0, s, reinterpret_cast<const uint4 *>(at(i)), n16,
                               region16, sink);
                    },
                    iters, s);
                char cfg[64];
                std::snprintf(cfg, sizeof cfg, "region %d/SM U%d %zu KB", bps, U, region16 * 16 / 1024);
                region.push_back({cfg, t});
            }
        }
        if (hopper) {
            // GPTQ_STREAM_BULK_BLOCKS=b: the bulk kind on b blocks instead of one per SM, to see
            // what a few SMs can read on their own (e.g. one block per attention head).
            const int bulk_blocks = std::max(1, env_int("GPTQ_STREAM_BULK_BLOCKS", sms));
            for (int chunk_kb : {8, 16, 32}) {
                for (int D : {4, 6}) {
                    const size_t smem = size_t(D) * chunk_kb * 1024;
                    auto kern = D == 4 ? bulk_reader<4> : bulk_reader<6>;
                    allow_dynamic_smem(kern, smem);
                    const double t = timer.us_graph(
                        [&](int i) {
                            launch(kern, dim3(bulk_blocks), dim3(32), smem, s, at(i), bytes, chunk_kb * 1024, sink);
                        },
                        iters, s);
                    char cfg[64];
                    std::snprintf(cfg, sizeof cfg, "D%d x %d KB", D, chunk_kb);
                    bulk.push_back({cfg, t});
                }
            }
        }
        auto best = [](const std::vector<Result> &r) {
            return *std::min_element(r.begin(), r.end(), [](const Result &a, const Result &b) { return a.us < b.us; });
        };
        const double floor_us = double(bytes) / bw * 1e6;
        char cols[4][64];
        const std::vector<Result> *kinds[4] = {&plain, &pdl, &bulk, &region};
        for (int k = 0; k < 4; ++k) {
            if (kinds[k]->empty()) {
                std::snprintf(cols[k], sizeof cols[k], "-");
                continue;
            }
            const Result b = best(*kinds[k]);
            std::snprintf(cols[k], sizeof cols[k], "%7.2f (%.2fx floor, %s)", b.us, b.us / floor_us, b.cfg.c_str());
            best_of[k].push_back(b.us);
        }
        xs.push_back(double(bytes));
        std::printf("%-12s %8.1f %9.2f | %-34s | %-34s | %-34s | %s\n", z.name.c_str(), bytes / 1e6, floor_us,
                    cols[0], cols[1], cols[2], cols[3]);
        std::printf("  all:");
        for (const auto *r : kinds)
            for (const Result &x : *r) std::printf(" [%s] %.2f", x.cfg.c_str(), x.us);
        std::printf("\n");
    }

    // Least-squares fit us = fixed + bytes / bandwidth of each kind's best times.
    const char *kind_names[4] = {"ldg plain", "ldg PDL", "bulk PDL", "region PDL"};
    for (int k = 0; k < 4; ++k) {
        const std::vector<double> &ys = best_of[k];
        if (ys.size() < 2 || ys.size() != xs.size()) continue;
        double sx = 0, sy = 0, sxx = 0, sxy = 0;
        const double n = double(ys.size());
        for (size_t i = 0; i < ys.size(); ++i) {
            sx += xs[i];
            sy += ys[i];
            sxx += xs[i] * xs[i];
            sxy += xs[i] * ys[i];
        }
        const double slope = (n * sxy - sx * sy) / (n * sxx - sx * sx), fixed = (sy - slope * sx) / n;
        std::printf("fit %-10s: %.2f us fixed + bytes at %.0f GB/s\n", kind_names[k], fixed, 1e-3 / slope);
    }
    CUDA_CHECK(cudaFree(pool.base));
    CUDA_CHECK(cudaFree(sink));
    CUDA_CHECK(cudaStreamDestroy(s));
    return 0;
} catch (const std::exception &e) {
    std::fprintf(stderr, "bench-stream: %s\n", e.what());
    return 1;
}
