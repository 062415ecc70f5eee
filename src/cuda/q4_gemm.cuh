// q4_gemm.cuh — launchers for the 4-bit matrix kernels. Plain C++ header.
//
// Sources: q4_matmul.cu (the path by M), q4_plan.cu (Q4Plan), q4_fused.cu (launches the fused
// kernel of q4_fused_kernel.cuh), q4_wgmma.cu (many rows, Hopper), q4_dequant.cu and
// dense_gemm.cu (fp16 expansion, cuBLAS, bias, act-order gather).
//
//   y[M, N] = x[M, K] · W[K, N]   with W in the tiled layout of q4_layout.cuh, x and y fp16
//   (or y accumulated into fp32: the residual stream), fp32 accumulation inside the kernels.
//
// q4_matmul picks the path by M: the fused tensor-core kernel (weights dequantized in registers,
// split over K across blocks, the last block of each column strip reducing) for up to
// kQ4FusedMaxM rows per pass; for many rows the Hopper wgmma kernel (q4_wgmma.cuh, also
// dequantizing in registers) where the GPU and the binary have it, else dequantize-to-fp16 + cuBLAS.
#pragma once

#include "q4_layout.cuh"

#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <vector>

namespace gptq {
namespace cuda {

// Device copy of a repacked layer. Owns nothing (the backend owns the allocations).
struct Q4Dev {
    const uint4 *qw = nullptr;
    const __half *scales = nullptr;
    const __half *zeros = nullptr;   // null when the zero point is uniform
    const int32_t *perm = nullptr;   // null when rows are in checkpoint order
    int K = 0, N = 0, KT = 0, NT = 0, G = 1, group_kt = 0;
    int zero = 8;
};

// Where the result goes. Exactly one of out16 / out32 is set. out32 is accumulated into (+=).
struct Q4Out {
    __half *out16 = nullptr;
    float *out32 = nullptr;
    const __half *bias = nullptr;  // [N] or null
    int ldo = 0;                   // row stride of the output, in elements (>= N)
    bool overwrite32 = false;      // out32 overwritten, not added to (dense products; the 4-bit ones refuse it)
    // Deferred reduction (decode): instead of out16 / out32, each split s writes its fp32 share of
    // row m to defer[(s * M + m) * NT*64 + col] and no block sums them; the consumer (SwiGLU
    // prologue kind 3, the attention kernel) adds the `splits` shares in order 0..splits-1 and
    // rounds to fp16, giving exactly what out16 holds with atomics off (q4_set_atomic_accumulate).
    // No bias. q4_matmul returns the number of splits.
    float *defer = nullptr;
    size_t defer_floats = 0;  // floats at defer: q4_fused refuses a plan whose shares need more
};

// What the fused kernel computes for its activations while it stages them into shared memory, so
// that the kernel before it need not run as a kernel of its own (decode: fewer launches per layer).
//   kind 0: x as given (fp16).
//   kind 1: RMSNorm: x[m, k] = fp16(x32[m, perm ? perm[k] : k] * inv_m * norm_w[same]),
//           inv_m = 1 / sqrt(mean_k x32[m, k]^2 + eps) over K columns; needs K % 4 == 0, ldx32 % 4 == 0.
//           Every block reads the whole rows, so it suits few rows (q4_prologue_rows).
//   kind 2: SwiGLU: x[m, k] = fp16(silu(gu[m, k]) * gu[m, K + k]); needs K % 8 == 0, ldgu % 8 == 0.
//   kind 3: SwiGLU of a deferred gate|up product (Q4Out::defer): gu[m, j] = fp16(sum over the
//           gu_splits shares gu_part[(s * M + m) * ldgu + j]), then as kind 2.
//   kind 4: attention ranges merged: the attention kernel left each head's ranges unmerged
//           (attention.cuh AttnSplitFusion::merge_used, the same layout): x[m, k] =
//           fp16(sum_r e_r o_r[d] / sum_r e_r l_r), e_r = exp(m_r - max_r m_r), over the
//           attn_used[m] ranges of head k / attn_d, d = k % attn_d. Needs K % 8 == 0, attn_d % 8 == 0
//           and no act-order permutation (the columns are heads in order).
// The arithmetic (and its rounding) is that of the stand-alone rmsnorm / silu_mul kernels, and of
// the attention merge up to the order of its sums (kind 4 merges with a running maximum, in two
// halves of the ranges that it then combines).
struct Q4Prologue {
    int kind = 0;
    const float *x32 = nullptr;
    int ldx32 = 0;
    const float *norm_w = nullptr;
    float eps = 0.0f;
    const int32_t *perm = nullptr;
    const __half *gu = nullptr;
    int ldgu = 0;
    const float *gu_part = nullptr;
    int gu_splits = 0;
    int stash = 0;  // set by the launcher (kind 1 without perm): see q4_fused_stage.cuh
    const float *attn_o = nullptr, *attn_ml = nullptr;
    const int *attn_used = nullptr;
    int attn_stride = 0, attn_heads = 0, attn_d = 0;
};

// Up to how many rows the RMSNorm prologue pays (each block re-reads the rows), and the SwiGLU
// one; 0 = never. GPTQ_Q4_NORM_ROWS / GPTQ_Q4_SILU_ROWS override the defaults (measurements).
int q4_prologue_norm_rows();
int q4_prologue_silu_rows();

// How the fused kernel splits one call: `splits` blocks along K per strip of tiles_per_block
// column tiles; inside a block the kQ4Warps warps take one tile each and split the block's K range
// again (two slices with two tiles per block, four with one).
struct Q4Plan {
    int splits = 1;
    // One column tile per block doubles the strips, so the blocks that fit at once take half the
    // splits: where that leaves a strip one or two (a cluster), no global round trip ends the call
    // (q4_plan says where). 1..16 rows only; 2 otherwise.
    int tiles_per_block = 2;
    int pairs_per_split = 1;  // tile pairs (32 rows of K) per split
    int strips = 1;
    size_t partial_floats = 0;  // scratch the call needs (splits * M * NT*64 when splits > 1)
    size_t sums_floats = 0;     // ... and, into fp16 with atomics on, the fp32 sums (M * NT*64)
    int stage_batch = 4;        // activation loads in flight per thread in the prologue (4, or 2 at M <= 8)
    // 9..16 rows of x as given: the kernel reads each batch's activations from global memory
    // (through L1) instead of staging the split's K range in shared memory; without that cap on a
    // split's length, 16 rows take one-token plans. 2: the kernel that scales the weights in fp16,
    // for a fourth block per SM (q4_plan says when); 0: staged.
    int x_direct = 0;
};

constexpr int kQ4FusedMaxM = 32;      // rows one fused pass handles (2 m16 tiles)
constexpr int kQ4Warps = 4;           // warps per block: Q4Plan::tiles_per_block x K slices
constexpr int kQ4Threads = 32 * kQ4Warps;
constexpr int kQ4MaxTilesPerBlock = 2;
constexpr int kQ4PairsPerBatch = 2;   // tile pairs per load batch (4 k-steps, 2 KB per warp)
// Shared memory a block may take (activations of its K range for M rows + scales): 47 KB by
// default (GPTQ_Q4_SMEM_KB overrides it, for measurements). A many-row plan that would run more
// than one wave under it may take more, up to what keeps its resident blocks per SM (q4_plan).
// Past 48 KB the kernel opts in, up to kQ4SmemMaxBytes.
size_t q4_smem_cap();
constexpr size_t kQ4SmemMaxBytes = 200 * 1024;

// blocks_per_sm_target: how many blocks per SM the split aims for (0 = the tuned default).
// With the split fit on, the splits are rounded down so that all blocks are resident at once (no
// partial second wave); off, rounded up (the old rule). Default: on for M <= 8 (measured, device
// run 2); GPTQ_Q4_SPLIT_FIT=0/1 or q4_set_split_fit(0/1) force it, q4_set_split_fit(-1) restores.
// At M <= 8 a plan whose strips alone exceed one wave takes the leaner activation staging
// (stage_batch 2: one more resident block per SM); GPTQ_Q4_STAGE_BATCH=2/4 forces either.
// prologue_kind: the Q4Prologue the call will run (the direct activations take kind 0 only).
// lim: what the plan knows of the GPU (the overload taking sm_count asks the current device).
struct Q4Limits;
Q4Plan q4_plan(int M, const Q4Dev &w, const Q4Limits &lim, int blocks_per_sm_target = 0, int prologue_kind = 0);
Q4Plan q4_plan(int M, const Q4Dev &w, int sm_count, int blocks_per_sm_target = 0, int prologue_kind = 0);
// The fused kernel's variants that differ in registers, hence in blocks per SM: 0 / 3 one token
// (staging batch 4 / 2), 4 / 5 the same with the zero point folded, 1 / 2 16 / 32 rows staged,
// 6 / 7 16 rows read directly (Q4Plan::x_direct 1 / 2).
constexpr int kQ4FusedKinds = 8;
int q4_fused_kind(int M, int stage_batch = 4, int x_direct = 0);
// What q4_plan knows of a GPU. q4_limits(sm_count) describes the current device (sm_count as the
// caller counts SMs); a test may describe any other.
struct Q4Limits {
    int sm_count = 1;
    size_t smem_per_sm = 48 * 1024;     // shared memory of an SM
    size_t smem_per_block = 48 * 1024;  // what one block may opt in to, at most kQ4SmemMaxBytes
    size_t smem_cap = 47 * 1024;        // what a plan's block takes by default (q4_smem_cap)
    int blocks_per_sm[kQ4FusedKinds] = {1, 1, 1, 1, 1, 1, 1, 1};  // resident blocks, by q4_fused_kind
};
Q4Limits q4_limits(int sm_count);
void q4_set_split_fit(int mode);
// The fused kernel's scratch (Q4Plan::partial_floats, sums_floats, strips) that every default
// plan of w at 1..max_rows rows needs, x as given or under any prologue: the backend allocates it
// once. Taken from the plans at 1, 8, 16, 32 and max_rows rows (at most kQ4FusedMaxM), which bound
// every other row count's (tests/test_q4_plan checks each one).
struct Q4ScratchNeed {
    size_t partial_floats = 0, sums_floats = 0;
    int strips = 1;
};
Q4ScratchNeed q4_scratch_need(const Q4Dev &w, int max_rows, const Q4Limits &lim);
// Floats of a deferred output (Q4Out::defer) under plan p: every split's share of every row.
inline size_t q4_deferred_floats(const Q4Plan &p, int M, const Q4Dev &w) {
    return size_t(p.splits) * M * w.NT * kQ4TileN;
}
// Floats of Q4Out::defer that every default plan of w at 1..max_rows rows needs, x as given or
// under any prologue (each row count is planned: deferred outputs are for few rows).
size_t q4_deferred_need(const Q4Dev &w, int max_rows, const Q4Limits &lim);
// The plan q4_matmul / q4_matmul_pro use for one pass of M rows (the same for every kind of output).
struct Q4Workspace;
Q4Plan q4_default_plan(int M, const Q4Dev &w, const Q4Workspace &ws, int prologue_kind = 0);

// fp32 outputs (out32, accumulated into) of split calls: on (default), each split adds its share
// with atomics (no partial sums, no last-block pass: shorter tail), so the order of the fp32
// additions, and the last bits of the result, vary from run to run; off (GPTQ_CUDA_DETERMINISTIC=1
// or q4_set_atomic_accumulate(false)), the last block of each strip sums the splits in order.
void q4_set_atomic_accumulate(bool on);

// Scratch for the fused kernel: partial sums and per-strip arrival counters (zeroed once at
// allocation; every launch leaves them zero again; a strip may be a single column tile, so NT
// counters cover every plan of a layer). One set per stream.
// sums: where split calls into fp16 add their shares with atomics (q4_set_atomic_accumulate) and
// the last block of each strip rounds them, instead of one slice of partials per split that the
// last block reads back in order; zeroed once at allocation, every launch leaves it zero. Null or
// smaller than the plan's sums_floats: the ordered partials.
struct Q4Scratch {
    float *partial = nullptr;
    size_t partial_floats = 0;
    unsigned *counters = nullptr;
    int n_counters = 0;
    float *sums = nullptr;
    size_t sums_floats = 0;
};

// Scratch of the wgmma kernel's stream-K plans into fp16 outputs (q4_wgmma.cuh): a slot of fp32
// sums and a flag per block (flags zeroed once at allocation; every launch leaves them zero).
struct Q4WgScratch {
    float *partial = nullptr;
    size_t partial_floats = 0;
    unsigned *flags = nullptr;
    int n_flags = 0;
};

// x: [M, ldx] fp16, 16-byte aligned, ldx % 8 == 0, already gathered by w.perm when set.
// M <= kQ4FusedMaxM; out.ldo even.
// pro (optional): the activations are computed from pro's inputs instead of read from x (x unused).
void q4_fused(const __half *x, int M, int ldx, const Q4Dev &w, const Q4Out &out, const Q4Plan &plan,
              const Q4Scratch &scratch, cudaStream_t stream, const Q4Prologue *pro = nullptr);

// Everything q4_matmul may use: fused-kernel scratch, an fp16 buffer for the dequantized weight
// (large-M path; at least KT*16 * NT*64 elements of the largest layer), cuBLAS.
struct Q4Workspace {
    Q4Scratch fused;
    __half *dequant = nullptr;
    size_t dequant_elems = 0;
    cublasHandle_t cublas = nullptr;
    int sm_count = 1;
    int large_m = 128;  // from this many rows on: dequantize + cuBLAS; below: fused passes of 32 rows
    // Hopper: from wgmma_min_m rows on, the sm_90a tensor-core kernel (q4_wgmma.cuh) instead of
    // dequantize + cuBLAS, its activations permuted into xfrag ([rows, q4_wgmma_kx] fp16; M is cut
    // into passes of as many rows as fit). Set wgmma only where q4_wgmma_supported().
    // Above wgmma_max_m rows dequantize + cuBLAS is faster (H200: it wins at 2048 rows on every
    // Llama shape, the wgmma kernel at 256 on most), when its buffer is there.
    bool wgmma = false;
    int wgmma_min_m = 64;
    int wgmma_max_m = 256;
    __half *xfrag = nullptr;
    size_t xfrag_elems = 0;
    Q4WgScratch wgmma_sk;  // stream-K plans into fp16 take it where it holds sm_count blocks
    int wgmma_force[4] = {0, 0, 0, 0};  // {bt, wgn, splits, sk}: a forced plan (tests, benchmarks); 0 = planned
};

// For the benchmark: mode 0 = q4_fused, 1 = its weight loads only, 2 = its compute only (no
// weight loads), 3 = an empty kernel; at M <= 8 also the loads only without the scales' staging
// (4), without any staging (5), and without staging or epilogue (6); and the product itself (the
// plan's kernel: its staging batch, folded zero point as planned) with each split storing its own
// sums, no sum across splits and so no cluster (7: a wrong result for several splits), or with no
// epilogue at all (8). M <= 16, uniform zeros.
void q4_fused_diagnostic(int mode, const __half *x, int M, int ldx, const Q4Dev &w, const Q4Out &out,
                         const Q4Plan &plan, const Q4Scratch &sc, cudaStream_t stream);

// For the benchmark: while on (q4_stamps_begin .. q4_stamps_end), the one-token kernels with the
// folded zero point (the decode step's) run a twin that stamps each block's phases with
// %globaltimer (ns): entry, after the PDL wait, activations staged, K slices met (its main loop
// done). Launches captured into a CUDA graph while on keep the twin when replayed.
struct Q4Stamp {
    uint32_t K, N;            // the layer
    uint32_t block, sm;       // blockIdx.x + gridDim.x * blockIdx.y, %smid
    uint64_t entry, waited, staged, met;
};
void q4_stamps_begin(size_t capacity);
void q4_stamps_clear();  // drops what was recorded so far
std::vector<Q4Stamp> q4_stamps_end();
// Where other kernels of the step add their stamps to the same record while it is on (the one-token
// attention kernel, as K = N = 0); buf is null while off.
struct StampSink {
    Q4Stamp *buf = nullptr;
    unsigned *cursor = nullptr;
    unsigned capacity = 0;
};
StampSink q4_stamp_sink();

// y = x · W for any M >= 1 (x gathered by w.perm already), choosing the path by M. Returns the
// splits of the (last) fused pass, 0 on the cuBLAS path.
int q4_matmul(const __half *x, int M, int ldx, const Q4Dev &w, const Q4Out &out, const Q4Workspace &ws,
              cudaStream_t stream);

// Whether q4_matmul_pro can run this M on the fused kernel (the prologue needs it).
bool q4_takes_prologue(int M, const Q4Workspace &ws);
// q4_matmul with a prologue (q4_takes_prologue(M, ws) must hold); rows of pro's inputs follow M.
int q4_matmul_pro(const Q4Prologue &pro, int M, const Q4Dev &w, const Q4Out &out, const Q4Workspace &ws,
                  cudaStream_t stream);

// Expands the tiled layer into fp16 W[KT*16, NT*64] (row-major, k-major: ld = NT*64), rows in
// stored order (after perm).
void q4_dequant_f16(const Q4Dev &w, __half *W, cudaStream_t stream);

// x[M, ldx] gathered: xp[m, i] = x[m, perm[i]] for i < K (xp has ld K).
void gather_columns(const __half *x, int M, int ldx, const int32_t *perm, int K, __half *xp, cudaStream_t stream);

// Adds bias[N] to every row of y[M, ldy] (fp16 or fp32 y).
void add_bias_f16(__half *y, int M, int N, int ldy, const __half *bias, cudaStream_t stream);
void add_bias_f32(float *y, int M, int N, int ldy, const __half *bias, cudaStream_t stream);

// Dense fp16 product, y = x · Wᵀ with W [N, ldw] (Hugging Face layout, k inner), fp32
// accumulation; out16 overwritten or out32 accumulated into. cuBLAS, or dense_gemv for few rows.
void dense_matmul(cublasHandle_t h, const __half *x, int M, int ldx, const __half *W, int K, int N, int ldw,
                  const Q4Out &out, cudaStream_t stream);

// The same product for 1..kDenseGemvMaxRows rows by a streaming kernel of our own (dense_gemv.cu),
// which dense_matmul takes where dense_gemv_takes says so: K, ldx and ldw multiples of 8, x and W
// 16-byte aligned (GPTQ_CUDA_GEMV=0 keeps cuBLAS, for measurements); dense_gemv itself refuses only
// the shapes it cannot read.
constexpr int kDenseGemvMaxRows = 8;
bool dense_gemv_takes(const __half *x, int M, int ldx, const __half *W, int K, int ldw);
void dense_gemv(const __half *x, int M, int ldx, const __half *W, int K, int N, int ldw, const Q4Out &out,
                cudaStream_t stream);

// dense_matmul always through cuBLAS (the benchmarks' reference column).
void dense_matmul_cublas(cublasHandle_t h, const __half *x, int M, int ldx, const __half *W, int K, int N, int ldw,
                         const Q4Out &out, cudaStream_t stream);

// Same through a k-major W [K, ldw] (the q4_dequant_f16 output).
void dense_matmul_kn(cublasHandle_t h, const __half *x, int M, int ldx, const __half *W, int K, int N, int ldw,
                     const Q4Out &out, cudaStream_t stream);

} // namespace cuda
} // namespace gptq
