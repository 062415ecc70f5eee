// q4_wgmma.cuh — the Hopper (sm_90a) tensor-core kernel for many-row 4-bit products: prefill.
// Plain C++ header.
//
//   y[M, N] = x[M, K] · W[K, N],   W in the tiled layout of q4_layout.cuh, fp32 accumulation.
//
// The weights are wgmma's A operand, dequantized from their 4-bit codes straight into registers:
// one 32-bit word of the layout is exactly one thread's A fragment of a 16-column x 16-k slice
// (q4_wgmma.cu says how). The activations are the B operand, read by the tensor cores from shared
// memory; the layout's k order inside a tile pair is not the weight's row order, so the activations
// are first written once in that "fragment order", as the very image the kernel's shared memory
// wants (q4_wgmma_permute), after which a stage arrives with a handful of bulk copies. Nothing is
// ever expanded to fp16 in global memory, so the product needs no dequantization buffer.
#pragma once

#include "q4_gemm.cuh"

namespace gptq {
namespace cuda {

// How one call is cut. A block tile is kQ4WgWarpgroups * wgn column tiles (64 columns each) by bt
// tokens. Classic grid (sk == 0): a block per tile and K split; splits > 1 only for fp32 outputs
// (the splits add with atomics). Stream-K (sk > 0, splits == 1): sk blocks, at most one per SM,
// share the (tile, 64-k stage) units evenly, so no SM idles through a partly filled last wave; a
// tile cut between blocks is summed with atomics (fp32 outputs) or through Q4WgScratch (fp16).
struct Q4WgmmaPlan {
    int bt = 128;   // tokens per block tile: the wgmma's N (64, 128 or 256)
    int wgn = 2;    // column tiles per warpgroup (1 or 2; 2 only with bt <= 128)
    int splits = 1;
    int sk = 0;     // stream-K blocks (0: the classic grid)
};
constexpr int kQ4WgWarpgroups = 2;  // warpgroups per block
constexpr int kQ4WgStageK = 64;     // k per pipeline stage: one 128-byte swizzled row of activations
constexpr int kQ4WgMaxRows = 256;   // the largest block tile's tokens: the permuted buffer holds whole ones

// fp32 sums a stream-K slot holds (one block tile: kQ4WgWarpgroups * wgn * 64 columns x bt tokens,
// the largest tiles hold 32768) and the scratch a stream-K launch of `blocks` blocks needs.
constexpr int kQ4WgSlotFloats = kQ4WgWarpgroups * 64 * kQ4WgMaxRows;
inline size_t q4_wgmma_sk_floats(int blocks) { return size_t(blocks) * kQ4WgSlotFloats; }
bool q4_wgmma_sk_ready(const Q4WgScratch &sk, int blocks);

// Whether the current device runs the sm_90a kernel (a Hopper GPU and a binary built with sm_90a).
// Asked once per device.
bool q4_wgmma_supported();

// Columns of the fragment-ordered activations: the padded K rounded up to a whole stage.
inline int q4_wgmma_kx(const Q4Dev &w) { return (w.KT * kQ4TileK + kQ4WgStageK - 1) / kQ4WgStageK * kQ4WgStageK; }

// Rows the permuted activations take for M rows under a plan: whole block tiles (zero rows after M).
inline int q4_wgmma_rows_padded(int M, int bt) { return (M + bt - 1) / bt * bt; }

// Elements of a permuted-activation buffer (Q4Workspace::xfrag) that takes `rows` rows of K up to
// kx = q4_wgmma_kx(w) in one pass, under any plan.
inline size_t q4_wgmma_xfrag_elems(int rows, int kx) {
    return size_t(q4_wgmma_rows_padded(rows, kQ4WgMaxRows)) * size_t(kx);
}

// xf ([Mp, Kx] elements) = x in the layout's k order, zeros past K and past M, each 64-column
// stage stored as the swizzled shared-memory image the kernel copies in one piece.
// x: [M, ldx] (gathered by perm); Mp = q4_wgmma_rows_padded(M, plan.bt).
void q4_wgmma_permute(const __half *x, int M, int ldx, int K, int Kx, int Mp, __half *xf, cudaStream_t stream);

// The plan q4_wgmma uses by default (GPTQ_Q4_WG="bt,wgn,splits[,sk]" forces one, for measurements).
// allow_sk: stream-K plans may be chosen (into fp16 they need a Q4WgScratch for sm_count blocks).
// unordered: fp32 outputs may take partial sums in any order (K splits, stream-K); false for
// bit-reproducible runs (q4_set_atomic_accumulate(false)), which keep whole tiles.
Q4WgmmaPlan q4_wgmma_plan(int M, const Q4Dev &w, int sm_count, bool out32, bool allow_sk, bool unordered = true);
bool q4_wgmma_plan_valid(const Q4WgmmaPlan &p, bool out32);

// y = xf · W with xf from q4_wgmma_permute (same M, Mp). out: out16 or out32 (no defer). sk: the
// scratch of stream-K plans into fp16 (unused otherwise).
void q4_wgmma(const __half *xf, int M, int Mp, const Q4Dev &w, const Q4Out &out, const Q4WgmmaPlan &plan,
              const Q4WgScratch &sk, cudaStream_t stream);

} // namespace cuda
} // namespace gptq
