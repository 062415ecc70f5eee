// q4_spread.cu — launching the spread kernel (q4_spread_kernel.cuh): the variant for the layer's
// zeros, its shared memory, and its resident blocks per SM for the planner.
#include "q4_spread_kernel.cuh"
#include "q4_internal.cuh"

#include "cuda_check.cuh"
#include "launch.cuh"

namespace gptq {
namespace cuda {

using fused::q4_spread_kernel;

int q4_spread_occupancy(bool zt) {
    return once_per_device<int>(zt ? 1 : 0, 1, [zt](int) {
        // Registers bound it (the planner adds the shared memory): the folded kernel stands for the
        // uniform-zero ones.
        auto kernel = zt ? q4_spread_kernel<true, false> : q4_spread_kernel<false, true>;
        int n = 0;
        if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, kQ4Threads, 0) != cudaSuccess) {
            cudaGetLastError();
            n = 1;
        }
        return std::max(1, n);
    });
}

void q4_spread(const __half *x, int M, int ldx, const Q4Dev &w, const Q4Out &out, const Q4Plan &plan,
               cudaStream_t stream, const Q4Prologue &pro) {
    if (M < 1 || M > 8 || plan.spread_blocks < 1 || plan.spread_slices < 1 || out.out16 || w.NT > plan.spread_blocks)
        fail(GPTQ_ERR_BACKEND, "q4_spread: %d rows, %d blocks for %d tiles (1..8 rows, a deferred or fp32 output)", M,
             plan.spread_blocks, w.NT);
    Q4Prologue p = pro;
    p.stash = plan.spread_stash && pro.kind == 1 && !pro.perm ? 1 : 0;
    const size_t smem = spread_smem(M, w, p.stash != 0);
    auto kernel = w.zeros ? q4_spread_kernel<true, false>
                          : (q4_fold_enabled() ? q4_spread_kernel<false, true> : q4_spread_kernel<false, false>);
    allow_dynamic_smem(kernel, smem);
    launch(kernel, dim3(plan.spread_blocks), dim3(kQ4Threads), smem, stream, x, M, ldx, w, out, p, plan.spread_slices);
    CUDA_CHECK_LAUNCH();
}

} // namespace cuda
} // namespace gptq
