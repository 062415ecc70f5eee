// q4_matmul.cu — y = x · W for a 4-bit layer at any number of rows: the fused kernel in passes of
// up to kQ4FusedMaxM rows (q4_fused.cu), the Hopper wgmma kernel for many rows (q4_wgmma.cu), or
// dequantization to fp16 (q4_dequant.cu) and cuBLAS.
#include "q4_gemm.cuh"
#include "q4_internal.cuh"
#include "q4_wgmma.cuh"

#include "cuda_check.cuh"
#include "launch.cuh"

#include <algorithm>

namespace gptq {
namespace cuda {

namespace {

// The fused kernel over M rows in passes of up to kQ4FusedMaxM: each pass's rows of x (or of the
// prologue's inputs) and of the output. Returns the last pass's splits.
int fused_passes(const __half *x, int ldx, const Q4Prologue *pro, int M, const Q4Dev &w, const Q4Out &out,
                 const Q4Workspace &ws, cudaStream_t stream) {
    int splits = 0;
    for (int m0 = 0; m0 < M; m0 += kQ4FusedMaxM) {
        const int mc = std::min(kQ4FusedMaxM, M - m0);
        Q4Out o = out;
        if (o.out16) o.out16 += size_t(m0) * o.ldo;
        if (o.out32) o.out32 += size_t(m0) * o.ldo;
        Q4Prologue p = pro ? *pro : Q4Prologue();
        if (p.x32) p.x32 += size_t(m0) * p.ldx32;
        if (p.gu) p.gu += size_t(m0) * p.ldgu;
        const Q4Plan plan = q4_default_plan(mc, w, ws, pro ? pro->kind : 0);
        q4_fused(x ? x + size_t(m0) * ldx : nullptr, mc, ldx, w, o, plan, ws.fused, stream, pro ? &p : nullptr);
        splits = plan.splits;
    }
    return splits;
}

// Rows per pass of the wgmma path (0: the path is not taken for M rows of w). The permuted
// activations take whole tiles of up to kQ4WgMaxRows rows.
int wgmma_rows(int M, const Q4Dev &w, const Q4Workspace &ws) {
    if (!ws.wgmma || !ws.xfrag || M < ws.wgmma_min_m || w.group_kt % 2 != 0) return 0;
    if (M > ws.wgmma_max_m && ws.dequant && ws.cublas) return 0;
    const size_t fit = ws.xfrag_elems / size_t(q4_wgmma_kx(w));
    if (fit >= size_t(q4_wgmma_rows_padded(M, kQ4WgMaxRows))) return M;
    return fit >= size_t(kQ4WgMaxRows) ? int(fit / kQ4WgMaxRows * kQ4WgMaxRows) : 0;
}

void wgmma_passes(const __half *x, int M, int ldx, const Q4Dev &w, const Q4Out &out, const Q4Workspace &ws,
                  int rows, cudaStream_t stream) {
    const int Kx = q4_wgmma_kx(w);
    for (int m0 = 0; m0 < M; m0 += rows) {
        const int mc = std::min(rows, M - m0);
        Q4Out o = out;
        if (o.out16) o.out16 += size_t(m0) * o.ldo;
        if (o.out32) o.out32 += size_t(m0) * o.ldo;
        const bool out32 = o.out32 != nullptr;
        const bool allow_sk = out32 || q4_wgmma_sk_ready(ws.wgmma_sk, ws.sm_count);
        Q4WgmmaPlan plan = q4_wgmma_plan(mc, w, ws.sm_count, out32, allow_sk, q4_atomic_enabled());
        if (ws.wgmma_force[0])
            plan = {ws.wgmma_force[0], ws.wgmma_force[1], ws.wgmma_force[2], ws.wgmma_force[3]};
        const int Mp = q4_wgmma_rows_padded(mc, plan.bt);
        q4_wgmma_permute(x + size_t(m0) * ldx, mc, ldx, w.K, Kx, Mp, ws.xfrag, stream);
        q4_wgmma(ws.xfrag, mc, Mp, w, o, plan, ws.wgmma_sk, stream);
    }
}

} // namespace

int q4_matmul(const __half *x, int M, int ldx, const Q4Dev &w, const Q4Out &out, const Q4Workspace &ws,
              cudaStream_t stream) {
    if (out.overwrite32)
        fail(GPTQ_ERR_BACKEND, "q4_matmul: the 4-bit kernels add into fp32 outputs (clear them first)");
    if (const int rows = out.defer ? 0 : wgmma_rows(M, w, ws)) {
        wgmma_passes(x, M, ldx, w, out, ws, rows, stream);
        return 0;
    }
    if (M >= ws.large_m && ws.dequant && ws.cublas) {
        if (out.defer) fail(GPTQ_ERR_BACKEND, "q4_matmul: a deferred output needs the fused kernel (M %d)", M);
        const size_t need = size_t(w.KT) * kQ4TileK * w.NT * kQ4TileN;
        if (need > ws.dequant_elems)
            fail(GPTQ_ERR_BACKEND, "q4_matmul: dequant buffer too small (%zu < %zu)", ws.dequant_elems, need);
        q4_dequant_f16(w, ws.dequant, stream);
        dense_matmul_kn(ws.cublas, x, M, ldx, ws.dequant, w.K, w.N, w.NT * kQ4TileN, out, stream);
        return 0;
    }
    if (out.defer && M > kQ4FusedMaxM) fail(GPTQ_ERR_BACKEND, "q4_matmul: a deferred output takes one pass (M %d)", M);
    return fused_passes(x, ldx, nullptr, M, w, out, ws, stream);
}

bool q4_takes_prologue(int M, const Q4Workspace &ws) {
    const bool wgmma = ws.wgmma && ws.xfrag && M >= ws.wgmma_min_m;
    return M >= 1 && !wgmma && !(M >= ws.large_m && ws.dequant && ws.cublas);
}

int q4_matmul_pro(const Q4Prologue &pro, int M, const Q4Dev &w, const Q4Out &out, const Q4Workspace &ws,
                  cudaStream_t stream) {
    if (out.overwrite32)
        fail(GPTQ_ERR_BACKEND, "q4_matmul_pro: the 4-bit kernels add into fp32 outputs (clear them first)");
    if (!q4_takes_prologue(M, ws)) fail(GPTQ_ERR_BACKEND, "q4_matmul_pro: %d rows take a many-row path (wgmma or dequantize + cuBLAS)", M);
    if ((out.defer || pro.kind == 3) && M > kQ4FusedMaxM)
        fail(GPTQ_ERR_BACKEND, "q4_matmul_pro: deferred products take one pass (M %d)", M);
    return fused_passes(nullptr, 0, &pro, M, w, out, ws, stream);
}

// Read at every call (graph captures and eager forwards only), so benchmarks can switch them.
// Defaults measured (device run 2): both fusions pay at one row; at 16 rows the separate kernels
// won (re-reading the rows in every block, b=16 decode 2285 vs 2202 tokens/s for SwiGLU).
int q4_prologue_norm_rows() { return env_int("GPTQ_Q4_NORM_ROWS", 4); }

int q4_prologue_silu_rows() { return env_int("GPTQ_Q4_SILU_ROWS", 4); }

} // namespace cuda
} // namespace gptq
