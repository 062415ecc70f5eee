// q4_dequant.cu — expands a 4-bit layer into fp16 (the many-row path: dequantize, then cuBLAS).
#include "q4_gemm.cuh"

#include "cuda_check.cuh"
#include "half_bits.cuh"
#include "launch.cuh"

namespace gptq {
namespace cuda {

namespace {

// Loads one scale (and zero) half per sub-tile j for this lane's column g: 8 halves, 16 bytes.
template <bool ZT>
__device__ __forceinline__ void load_group(const Q4Dev &w, int nt, int grp, int g, __half2 (&s2)[8],
                                           __half2 (&za)[8], __half2 (&zb)[8]) {
    size_t off = ((size_t(nt) * w.G + grp) * 8 + g) * 8;
    uint4 sv = __ldg(reinterpret_cast<const uint4 *>(w.scales + off));
    const uint32_t su[4] = {sv.x, sv.y, sv.z, sv.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        __half2 p = u2h(su[i]);
        s2[2 * i] = __low2half2(p);
        s2[2 * i + 1] = __high2half2(p);
    }
    if constexpr (ZT) {
        uint4 zv = __ldg(reinterpret_cast<const uint4 *>(w.zeros + off));
        const uint32_t zu[4] = {zv.x, zv.y, zv.z, zv.w};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const ZeroTerms zt = zero_terms(zu[i]);
            za[2 * i] = zt.za[0];
            za[2 * i + 1] = zt.za[1];
            zb[2 * i] = zt.zb[0];
            zb[2 * i + 1] = zt.zb[1];
        }
    }
}

// One warp expands one 16x64 tile into fp16 through shared memory.
__global__ void __launch_bounds__(128) q4_dequant_kernel(Q4Dev w, __half *__restrict__ W, int ldw) {
    pdl_enter();
    __shared__ __align__(16) __half tile[4][16][72];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, c = lane & 3;
    const size_t t = size_t(blockIdx.x) * 4 + warp;
    if (t >= size_t(w.NT) * w.KT) return;
    const int nt = int(t / w.KT), kt = int(t % w.KT);
    const uint4 q = __ldg(w.qw + t * 32 + lane);
    __half2 s2[8], za[8], zb[8];
    if (w.zeros) {
        load_group<true>(w, nt, kt / w.group_kt, g, s2, za, zb);
    } else {
        load_group<false>(w, nt, kt / w.group_kt, g, s2, za, zb);
        for (int j = 0; j < 8; ++j) {
            za[j] = __float2half2_rn(1024.0f + float(w.zero));
            zb[j] = __float2half2_rn(-(64.0f + float(w.zero)));
        }
    }
    const __half2 sixteenth = __float2half2_rn(0.0625f);
    const uint32_t words[4] = {q.x, q.y, q.z, q.w};
    __half (*tl)[72] = tile[warp];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const uint32_t lo = words[i], hi = words[i] >> 8;
#pragma unroll
        for (int s = 0; s < 2; ++s) {
            const int j = 2 * i + s;
            const uint32_t v = s ? hi : lo;
            const __half2 b0 = __hmul2(__hsub2(u2h((v & 0x000F000Fu) | 0x64006400u), za[j]), s2[j]);
            const __half2 b1 = __hmul2(__hfma2(u2h((v & 0x00F000F0u) | 0x64006400u), sixteenth, zb[j]), s2[j]);
            const int col = j * 8 + g;
            tl[2 * c][col] = __low2half(b0);
            tl[2 * c + 1][col] = __high2half(b0);
            tl[2 * c + 8][col] = __low2half(b1);
            tl[2 * c + 9][col] = __high2half(b1);
        }
    }
    __syncwarp();
#pragma unroll
    for (int r = 0; r < 4; ++r) {
        const int id = lane + 32 * r;
        const int row = id / 8, ch = id % 8;  // fragment row -> weight row (q4_layout.cuh)
        const int wrow = (kt / 2) * kQ4PairK + 8 * ((row % 8) / 2) + 4 * (kt % 2) + 2 * (row / 8) + row % 2;
        *reinterpret_cast<uint4 *>(W + size_t(wrow) * ldw + nt * kQ4TileN + ch * 8) =
            *reinterpret_cast<const uint4 *>(&tl[row][ch * 8]);
    }
}

} // namespace

void q4_dequant_f16(const Q4Dev &w, __half *W, cudaStream_t stream) {
    const size_t tiles = size_t(w.NT) * w.KT;
    const unsigned blocks = unsigned((tiles + 3) / 4);
    launch(q4_dequant_kernel, blocks, 128, 0, stream, w, W, w.NT * kQ4TileN);
    CUDA_CHECK_LAUNCH();
}

} // namespace cuda
} // namespace gptq
