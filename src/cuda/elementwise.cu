// elementwise.cu — embedding lookup, RMSNorm, SwiGLU, RoPE + KV-cache store.
//
// Each kernel is one pass over its rows: one block per token row, threads striding the hidden
// dimension, fp32 arithmetic, fp16 or fp32 storage as elementwise.cuh says.
#include "elementwise.cuh"

#include "cuda_check.cuh"
#include "launch.cuh"
#include "rope.cuh"

#include <algorithm>

namespace gptq {
namespace cuda {

namespace {

__device__ __forceinline__ float block_sum(float v, float *red) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads();  // red may still be read from a previous call
    if (lane == 0) red[warp] = v;
    __syncthreads();
    float s = 0.0f;
    for (int i = 0; i < nw; ++i) s += red[i];
    return s;
}

__global__ void embed_kernel(const int32_t *__restrict__ tokens, const __half *__restrict__ table, int H,
                             float *__restrict__ out) {
    pdl_enter();
    const int i = blockIdx.x;
    const __half *row = table + size_t(tokens[i]) * H;
#pragma unroll 8
    for (int c = threadIdx.x; c < H; c += blockDim.x) out[size_t(i) * H + c] = __half2float(row[c]);
}

// One block per row. The row's values stay in registers between the two passes (kRmsPer per
// thread, loaded all at once: one memory round trip, not one per element), a plain loop takes
// whatever does not fit.
constexpr int kRmsPer = 8;

__global__ void rmsnorm_kernel(const float *__restrict__ x, int ldx, const int32_t *__restrict__ rows, int H,
                               const float *__restrict__ w, float eps, const int32_t *__restrict__ perm,
                               __half *__restrict__ out, int ldo) {
    pdl_enter();
    __shared__ float red[32];
    const int i = blockIdx.x;
    const int r = rows ? rows[i] : i;
    const float *xr = x + size_t(r) * ldx;
    const int main = kRmsPer * blockDim.x;
    float v[kRmsPer];
    float ss = 0.0f;
#pragma unroll
    for (int k = 0; k < kRmsPer; ++k) {
        const int c = threadIdx.x + k * blockDim.x;
        v[k] = c < H ? xr[c] : 0.0f;
        ss += v[k] * v[k];
    }
    for (int c = main + threadIdx.x; c < H; c += blockDim.x) ss += xr[c] * xr[c];
    const float inv = rsqrtf(block_sum(ss, red) / float(H) + eps);
    __half *o = out + size_t(i) * ldo;
    if (!perm) {
#pragma unroll
        for (int k = 0; k < kRmsPer; ++k) {
            const int c = threadIdx.x + k * blockDim.x;
            if (c < H) o[c] = __float2half_rn(v[k] * inv * w[c]);
        }
        for (int c = main + threadIdx.x; c < H; c += blockDim.x) o[c] = __float2half_rn(xr[c] * inv * w[c]);
    } else {
#pragma unroll 8
        for (int c = threadIdx.x; c < H; c += blockDim.x) {
            const int src = perm[c];
            o[c] = __float2half_rn(xr[src] * inv * w[src]);
        }
    }
}

__global__ void silu_mul_kernel(const __half *__restrict__ gu, int I, __half *__restrict__ out) {
    pdl_enter();
    const int i = blockIdx.y;
    const __half *gr = gu + size_t(i) * 2 * I;
    for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < I; j += gridDim.x * blockDim.x) {
        const float gt = __half2float(gr[j]), up = __half2float(gr[I + j]);
        out[size_t(i) * I + j] = __float2half_rn(gt / (1.0f + __expf(-gt)) * up);
    }
}

// One block per (token, head): thread i rotates the pair (i, i + D/2) of a query head in place,
// of a key head into the cache, or copies the pair of a value head into the cache.
__global__ void rope_store_kv_kernel(__half *__restrict__ qkv, int ldq, const int32_t *__restrict__ pos,
                                     const int32_t *__restrict__ seq, const float *__restrict__ inv_freq, int Hq,
                                     int Hkv, int D, KVLayer kv) {
    pdl_enter();
    const int t = blockIdx.x, h = blockIdx.y, half_d = D / 2;
    const int p = pos[t], s = seq[t];
    __half *hd = qkv + size_t(t) * ldq + size_t(h) * D;
    for (int i = threadIdx.x; i < half_d; i += blockDim.x) {
        if (h >= Hq + Hkv) {  // value head: copy
            __half *vc = kv.v + ((size_t(s) * kv.n_kv + (h - Hq - Hkv)) * kv.n_ctx + p) * D;
            vc[i] = hd[i];
            vc[i + half_d] = hd[i + half_d];
            continue;
        }
        const __half2 r = rope_rotate(__half2float(hd[i]), __half2float(hd[i + half_d]), p, inv_freq[i]);
        const __half o1 = __low2half(r), o2 = __high2half(r);
        if (h < Hq) {
            hd[i] = o1;
            hd[i + half_d] = o2;
        } else {
            __half *kc = kv.k + ((size_t(s) * kv.n_kv + (h - Hq)) * kv.n_ctx + p) * D;
            kc[i] = o1;
            kc[i + half_d] = o2;
        }
    }
}

} // namespace

void embed_lookup(const int32_t *tokens, int n, const __half *table, int H, float *out, cudaStream_t stream) {
    if (n <= 0) return;
    launch(embed_kernel, n, 512, 0, stream, tokens, table, H, out);
    CUDA_CHECK_LAUNCH();
}

void rmsnorm(const float *x, int ldx, const int32_t *rows, int n, int H, const float *w, float eps,
             const int32_t *perm, __half *out, int ldo, cudaStream_t stream) {
    if (n <= 0) return;
    const int threads = std::min(1024, std::max(32, ((H + kRmsPer - 1) / kRmsPer + 31) / 32 * 32));
    launch(rmsnorm_kernel, n, threads, 0, stream, x, ldx, rows, H, w, eps, perm, out, ldo);
    CUDA_CHECK_LAUNCH();
}

void silu_mul(const __half *gu, int n, int I, __half *out, cudaStream_t stream) {
    if (n <= 0) return;
    dim3 grid(unsigned(std::min((I + 255) / 256, 64)), unsigned(n));
    launch(silu_mul_kernel, grid, 256, 0, stream, gu, I, out);
    CUDA_CHECK_LAUNCH();
}

void rope_store_kv(__half *qkv, int n, int ldq, const int32_t *pos, const int32_t *seq, const float *inv_freq,
                   int Hq, int Hkv, int D, const KVLayer &kv, cudaStream_t stream) {
    if (n <= 0) return;
    if (D % 2) fail(GPTQ_ERR_UNSUPPORTED, "RoPE needs an even head dimension (got %d)", D);
    const int threads = std::min(256, std::max(32, (D / 2 + 31) / 32 * 32));
    launch(rope_store_kv_kernel, dim3(unsigned(n), unsigned(Hq + 2 * Hkv)), threads, 0, stream, qkv, ldq, pos, seq,
           inv_freq, Hq, Hkv, D, kv);
    CUDA_CHECK_LAUNCH();
}

} // namespace cuda
} // namespace gptq
