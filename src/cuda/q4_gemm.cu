// q4_gemm.cu — 4-bit x fp16 matrix products for the tiled layout of q4_layout.cuh.
//
// The fused kernel (decode and small batches, M <= 64):
//
//   grid  = (strips of 256 columns, splits along K)      block = 4 warps, one 64-column tile each
//
//        K ──────────────────────────────────────────────►
//   N  ┌──────────── split 0 ────────────┬── split 1 ──┬ …     each warp streams its tile's
//   │  │ warp 0: tiles (nt, kt0..kt1)    │             │       512-byte k-steps with 16-byte
//   │  │ warp 1 …                        │             │       loads (UNROLL in flight), turns
//   ▼  │ warp 3                          │             │       each into 16 half2 B fragments
//      └─────────────────────────────────┴─────────────┘       in registers and issues
//                                                               8·MT mma.m16n8k16 against x.
//
// x (M rows, padded to 16·MT with zeros) is read straight from global memory: the four warps of a
// block read the same rows, so after the first they hit L1. Each split writes fp32 partial sums;
// the last block to finish a strip (an atomic counter per strip) adds them up and runs the
// epilogue (bias, fp16 store or fp32 residual accumulate), then resets its counter to zero.
//
// Large M goes through q4_dequant_f16 (tile -> fp16 via shared memory, coalesced 16-byte stores)
// and cuBLAS.
#include "q4_gemm.cuh"

#include "cuda_check.cuh"

#include <algorithm>
#include <cstring>

namespace gptq {
namespace cuda {

namespace {

__device__ __forceinline__ uint4 ld_stream(const uint4 *p) {
    uint4 r;
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
        : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
        : "l"(p));
    return r;
}

__device__ __forceinline__ __half2 u2h(uint32_t u) {
    __half2 h;
    memcpy(&h, &u, 4);
    return h;
}
__device__ __forceinline__ uint32_t h2u(__half2 h) {
    uint32_t u;
    memcpy(&u, &h, 4);
    return u;
}

__device__ __forceinline__ void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

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
            const __half2 p = u2h(zu[i]);                              // 1024 + z
            const __half2 nz = __hsub2(__float2half2_rn(960.0f), p);  // -(64 + z), exact
            za[2 * i] = __low2half2(p);
            za[2 * i + 1] = __high2half2(p);
            zb[2 * i] = __low2half2(nz);
            zb[2 * i + 1] = __high2half2(nz);
        }
    }
}

template <int MT, int UNROLL, bool ZT>
__global__ void __launch_bounds__(128) q4_fused_kernel(const __half *__restrict__ x, int M, int ldx, Q4Dev w,
                                                       int kt_per_split, float *__restrict__ partial,
                                                       unsigned *__restrict__ counters, Q4Out out) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, c = lane & 3;
    const int nt = blockIdx.x * kQ4WarpsPerBlock + warp;
    const int split = blockIdx.y, S = gridDim.y;
    const int kt0 = split * kt_per_split;
    const int kt1 = min(w.KT, kt0 + kt_per_split);
    const int NP = w.NT * kQ4TileN;

    float acc[MT][8][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int j = 0; j < 8; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[mt][j][e] = 0.0f;

    if (nt < w.NT) {
        const uint4 *qp = w.qw + size_t(nt) * w.KT * 32 + lane;
        const __half2 sixteenth = __float2half2_rn(0.0625f);
        __half2 s2[8], za[8], zb[8];
        if constexpr (!ZT) {
            const __half2 zau = __float2half2_rn(1024.0f + float(w.zero));
            const __half2 zbu = __float2half2_rn(-(64.0f + float(w.zero)));
#pragma unroll
            for (int j = 0; j < 8; ++j) { za[j] = zau; zb[j] = zbu; }
        }
        int cur_grp = -1;
        for (int kt = kt0; kt < kt1; kt += UNROLL) {
            uint4 q[UNROLL];
#pragma unroll
            for (int u = 0; u < UNROLL; ++u)
                if (kt + u < kt1) q[u] = ld_stream(qp + size_t(kt + u) * 32);
#pragma unroll
            for (int u = 0; u < UNROLL; ++u) {
                const int k = kt + u;
                if (k < kt1) {
                    const int grp = k / w.group_kt;
                    if (grp != cur_grp) {
                        load_group<ZT>(w, nt, grp, g, s2, za, zb);
                        cur_grp = grp;
                    }
                    // A fragments: rows g and g+8 of each m16 tile, columns 2c..2c+1 and 2c+8..2c+9.
                    uint32_t a[MT][4];
                    const int kk = k * kQ4TileK + 2 * c;
                    const bool k0ok = kk < w.K, k1ok = kk + 8 < w.K;
#pragma unroll
                    for (int mt = 0; mt < MT; ++mt) {
                        const int r0 = mt * 16 + g, r1 = r0 + 8;
                        const unsigned *p0 = reinterpret_cast<const unsigned *>(x + size_t(r0) * ldx + kk);
                        const unsigned *p1 = reinterpret_cast<const unsigned *>(x + size_t(r1) * ldx + kk);
                        a[mt][0] = (r0 < M && k0ok) ? __ldg(p0) : 0u;
                        a[mt][1] = (r1 < M && k0ok) ? __ldg(p1) : 0u;
                        a[mt][2] = (r0 < M && k1ok) ? __ldg(p0 + 4) : 0u;
                        a[mt][3] = (r1 < M && k1ok) ? __ldg(p1 + 4) : 0u;
                    }
                    const uint32_t words[4] = {q[u].x, q[u].y, q[u].z, q[u].w};
#pragma unroll
                    for (int i = 0; i < 4; ++i) {
                        const uint32_t lo = words[i], hi = words[i] >> 8;
                        const int j0 = 2 * i, j1 = 2 * i + 1;
                        const __half2 b00 = __hmul2(__hsub2(u2h((lo & 0x000F000Fu) | 0x64006400u), za[j0]), s2[j0]);
                        const __half2 b01 =
                            __hmul2(__hfma2(u2h((lo & 0x00F000F0u) | 0x64006400u), sixteenth, zb[j0]), s2[j0]);
                        const __half2 b10 = __hmul2(__hsub2(u2h((hi & 0x000F000Fu) | 0x64006400u), za[j1]), s2[j1]);
                        const __half2 b11 =
                            __hmul2(__hfma2(u2h((hi & 0x00F000F0u) | 0x64006400u), sixteenth, zb[j1]), s2[j1]);
#pragma unroll
                        for (int mt = 0; mt < MT; ++mt) {
                            mma_16816(acc[mt][j0], a[mt], h2u(b00), h2u(b01));
                            mma_16816(acc[mt][j1], a[mt], h2u(b10), h2u(b11));
                        }
                    }
                }
            }
        }
    }

    auto store = [&](int row, int col, float v) {
        if (out.bias) v += __half2float(out.bias[col]);
        if (out.out16)
            out.out16[size_t(row) * out.ldo + col] = __float2half_rn(v);
        else
            out.out32[size_t(row) * out.ldo + col] += v;
    };

    if (S == 1) {
        if (nt >= w.NT) return;
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int j = 0; j < 8; ++j)
#pragma unroll
                for (int h = 0; h < 2; ++h) {
                    const int row = mt * 16 + g + 8 * h;
                    const int col = nt * kQ4TileN + j * 8 + 2 * c;
                    if (row < M && col < w.N) {
                        store(row, col, acc[mt][j][2 * h]);
                        store(row, col + 1, acc[mt][j][2 * h + 1]);
                    }
                }
        return;
    }

    if (nt < w.NT) {
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int j = 0; j < 8; ++j)
#pragma unroll
                for (int h = 0; h < 2; ++h) {
                    const int row = mt * 16 + g + 8 * h;
                    const int col = nt * kQ4TileN + j * 8 + 2 * c;
                    if (row < M && col < w.N)
                        *reinterpret_cast<float2 *>(partial + (size_t(split) * M + row) * NP + col) =
                            make_float2(acc[mt][j][2 * h], acc[mt][j][2 * h + 1]);
                }
    }
    __threadfence();
    __syncthreads();
    __shared__ unsigned s_last;
    if (threadIdx.x == 0) s_last = (atomicAdd(&counters[blockIdx.x], 1u) == unsigned(S - 1));
    __syncthreads();
    if (!s_last) return;
    __threadfence();
    const int col0 = blockIdx.x * kQ4WarpsPerBlock * kQ4TileN;
    const int width = min(kQ4WarpsPerBlock * kQ4TileN, w.N - col0);
    for (int idx = threadIdx.x; idx < M * width; idx += blockDim.x) {
        const int row = idx / width, col = col0 + idx % width;
        float s = 0.0f;
        for (int sp = 0; sp < S; ++sp) s += __ldcg(partial + (size_t(sp) * M + row) * NP + col);
        store(row, col, s);
    }
    if (threadIdx.x == 0) counters[blockIdx.x] = 0u;
}

// One warp expands one 16x64 tile into fp16 through shared memory.
__global__ void __launch_bounds__(128) q4_dequant_kernel(Q4Dev w, __half *__restrict__ W, int ldw) {
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
        const int row = id / 8, ch = id % 8;
        *reinterpret_cast<uint4 *>(W + size_t(kt * kQ4TileK + row) * ldw + nt * kQ4TileN + ch * 8) =
            *reinterpret_cast<const uint4 *>(&tl[row][ch * 8]);
    }
}

__global__ void gather_columns_kernel(const __half *__restrict__ x, int M, int ldx, const int32_t *__restrict__ perm,
                                      int K, __half *__restrict__ xp) {
    const int m = blockIdx.y;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < K; i += gridDim.x * blockDim.x)
        xp[size_t(m) * K + i] = x[size_t(m) * ldx + perm[i]];
}

template <class T>
__global__ void add_bias_kernel(T *__restrict__ y, int M, int N, int ldy, const __half *__restrict__ bias) {
    const int m = blockIdx.y;
    for (int n = blockIdx.x * blockDim.x + threadIdx.x; n < N; n += gridDim.x * blockDim.x) {
        float v = float(y[size_t(m) * ldy + n]) + __half2float(bias[n]);
        y[size_t(m) * ldy + n] = T(v);
    }
}

template <int MT, int UNROLL, bool ZT>
void launch_fused(const __half *x, int M, int ldx, const Q4Dev &w, const Q4Out &out, const Q4Plan &plan,
                  const Q4Scratch &sc, cudaStream_t stream) {
    dim3 grid(plan.strips, plan.splits);
    q4_fused_kernel<MT, UNROLL, ZT><<<grid, 128, 0, stream>>>(x, M, ldx, w, plan.kt_per_split, sc.partial,
                                                              sc.counters, out);
    CUDA_CHECK_LAUNCH();
}

template <int MT, int UNROLL>
void launch_fused_z(const __half *x, int M, int ldx, const Q4Dev &w, const Q4Out &out, const Q4Plan &plan,
                    const Q4Scratch &sc, cudaStream_t stream) {
    if (w.zeros)
        launch_fused<MT, UNROLL, true>(x, M, ldx, w, out, plan, sc, stream);
    else
        launch_fused<MT, UNROLL, false>(x, M, ldx, w, out, plan, sc, stream);
}

} // namespace

Q4Plan q4_plan(int M, int K, int N, int sm_count, int blocks_per_sm_target) {
    Q4Plan p;
    const int KT = (K + kQ4TileK - 1) / kQ4TileK;
    const int NT = (N + kQ4TileN - 1) / kQ4TileN;
    p.strips = (NT + kQ4WarpsPerBlock - 1) / kQ4WarpsPerBlock;
    if (blocks_per_sm_target <= 0) blocks_per_sm_target = 4;
    const int target = std::max(1, sm_count) * blocks_per_sm_target;
    int splits = std::max(1, (target + p.strips - 1) / p.strips);
    splits = std::min(splits, std::max(1, KT / 4));  // keep at least 4 k-steps per warp
    p.kt_per_split = (KT + splits - 1) / splits;
    p.splits = (KT + p.kt_per_split - 1) / p.kt_per_split;
    p.partial_floats = p.splits > 1 ? size_t(p.splits) * M * NT * kQ4TileN : 0;
    return p;
}

void q4_fused(const __half *x, int M, int ldx, const Q4Dev &w, const Q4Out &out, const Q4Plan &plan,
              const Q4Scratch &sc, cudaStream_t stream) {
    if (M < 1 || M > kQ4FusedMaxM) fail(GPTQ_ERR_BACKEND, "q4_fused: M = %d outside 1..%d", M, kQ4FusedMaxM);
    if (!out.out16 == !out.out32) fail(GPTQ_ERR_BACKEND, "q4_fused: exactly one output must be set");
    if (plan.splits > 1) {
        if (plan.partial_floats > sc.partial_floats || plan.strips > sc.n_counters)
            fail(GPTQ_ERR_BACKEND, "q4_fused: scratch too small (%zu floats / %d counters; need %zu / %d)",
                 sc.partial_floats, sc.n_counters, plan.partial_floats, plan.strips);
    }
    if (M <= 16)
        launch_fused_z<1, 8>(x, M, ldx, w, out, plan, sc, stream);
    else if (M <= 32)
        launch_fused_z<2, 8>(x, M, ldx, w, out, plan, sc, stream);
    else
        launch_fused_z<4, 4>(x, M, ldx, w, out, plan, sc, stream);
}

void q4_matmul(const __half *x, int M, int ldx, const Q4Dev &w, const Q4Out &out, const Q4Workspace &ws,
               cudaStream_t stream) {
    if (M >= ws.large_m && ws.dequant && ws.cublas) {
        const size_t need = size_t(w.KT) * kQ4TileK * w.NT * kQ4TileN;
        if (need > ws.dequant_elems)
            fail(GPTQ_ERR_BACKEND, "q4_matmul: dequant buffer too small (%zu < %zu)", ws.dequant_elems, need);
        q4_dequant_f16(w, ws.dequant, stream);
        dense_matmul_kn(ws.cublas, x, M, ldx, ws.dequant, w.K, w.N, w.NT * kQ4TileN, out, stream);
        return;
    }
    for (int m0 = 0; m0 < M; m0 += kQ4FusedMaxM) {
        const int mc = std::min(kQ4FusedMaxM, M - m0);
        Q4Out o = out;
        if (o.out16) o.out16 += size_t(m0) * o.ldo;
        if (o.out32) o.out32 += size_t(m0) * o.ldo;
        q4_fused(x + size_t(m0) * ldx, mc, ldx, w, o, q4_plan(mc, w.K, w.N, ws.sm_count), ws.fused, stream);
    }
}

void q4_dequant_f16(const Q4Dev &w, __half *W, cudaStream_t stream) {
    const size_t tiles = size_t(w.NT) * w.KT;
    const unsigned blocks = unsigned((tiles + 3) / 4);
    q4_dequant_kernel<<<blocks, 128, 0, stream>>>(w, W, w.NT * kQ4TileN);
    CUDA_CHECK_LAUNCH();
}

void gather_columns(const __half *x, int M, int ldx, const int32_t *perm, int K, __half *xp, cudaStream_t stream) {
    dim3 grid(unsigned(std::min((K + 255) / 256, 64)), unsigned(M));
    gather_columns_kernel<<<grid, 256, 0, stream>>>(x, M, ldx, perm, K, xp);
    CUDA_CHECK_LAUNCH();
}

void add_bias_f16(__half *y, int M, int N, int ldy, const __half *bias, cudaStream_t stream) {
    dim3 grid(unsigned(std::min((N + 255) / 256, 64)), unsigned(M));
    add_bias_kernel<__half><<<grid, 256, 0, stream>>>(y, M, N, ldy, bias);
    CUDA_CHECK_LAUNCH();
}

void add_bias_f32(float *y, int M, int N, int ldy, const __half *bias, cudaStream_t stream) {
    dim3 grid(unsigned(std::min((N + 255) / 256, 64)), unsigned(M));
    add_bias_kernel<float><<<grid, 256, 0, stream>>>(y, M, N, ldy, bias);
    CUDA_CHECK_LAUNCH();
}

static void gemm_ex(cublasHandle_t h, cublasOperation_t opA, const __half *x, int M, int ldx, const __half *W,
                    int K, int N, int ldw, const Q4Out &out, cudaStream_t stream) {
    if (!out.out16 == !out.out32) fail(GPTQ_ERR_BACKEND, "dense_matmul: exactly one output must be set");
    CUBLAS_CHECK(cublasSetStream(h, stream));
    const float alpha = 1.0f;
    const float beta = out.out32 ? 1.0f : 0.0f;
    void *C = out.out16 ? static_cast<void *>(out.out16) : static_cast<void *>(out.out32);
    cudaDataType_t ct = out.out16 ? CUDA_R_16F : CUDA_R_32F;
    CUBLAS_CHECK(cublasGemmEx(h, opA, CUBLAS_OP_N, N, M, K, &alpha, W, CUDA_R_16F, ldw, x, CUDA_R_16F, ldx, &beta,
                              C, ct, out.ldo, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    if (out.bias) {
        if (out.out16)
            add_bias_f16(out.out16, M, N, out.ldo, out.bias, stream);
        else
            add_bias_f32(out.out32, M, N, out.ldo, out.bias, stream);
    }
}

void dense_matmul(cublasHandle_t h, const __half *x, int M, int ldx, const __half *W, int K, int N, int ldw,
                  const Q4Out &out, cudaStream_t stream) {
    gemm_ex(h, CUBLAS_OP_T, x, M, ldx, W, K, N, ldw, out, stream);
}

void dense_matmul_kn(cublasHandle_t h, const __half *x, int M, int ldx, const __half *W, int K, int N, int ldw,
                     const Q4Out &out, cudaStream_t stream) {
    gemm_ex(h, CUBLAS_OP_N, x, M, ldx, W, K, N, ldw, out, stream);
}

} // namespace cuda
} // namespace gptq
