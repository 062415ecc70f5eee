// q4_fused.cu — launching the fused 4-bit kernel (q4_fused_kernel.cuh): the checks a call must
// pass, the kernel variant for its rows, zeros and plan, how its splits meet (atomics, ordered
// partials, a cluster), and the switches that measurements and tests turn.
#include "q4_fused_kernel.cuh"
#include "q4_internal.cuh"

#include "cuda_check.cuh"
#include "launch.cuh"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <type_traits>

namespace gptq {
namespace cuda {

using fused::push_bytes;
using fused::q4_fused_kernel;

namespace {

std::atomic<int> &atomic_switch() {
    static std::atomic<int> on{[] {
        const char *e = std::getenv("GPTQ_CUDA_DETERMINISTIC");
        return (e && std::strcmp(e, "1") == 0) ? 0 : 1;
    }()};
    return on;
}

// The RMSNorm stash (one global round trip after the wait instead of two); GPTQ_Q4_NORM_STASH=0
// switches it off (measurements), read at every launch.
bool q4_norm_stash_enabled() {
    const char *e = std::getenv("GPTQ_Q4_NORM_STASH");
    return !(e && std::strcmp(e, "0") == 0);
}

std::atomic<bool> &stamps_switch() {
    static std::atomic<bool> on{false};
    return on;
}

StampSink &stamp_sink() {  // the record's buffer as the host last set it
    static StampSink sink;
    return sink;
}

} // namespace

void q4_stamps_begin(size_t capacity) {
    if (stamps_switch()) q4_stamps_end();  // an earlier recording's buffer is freed, its stamps dropped
    Q4Stamp *buf = nullptr;
    CUDA_CHECK(cudaMalloc(&buf, capacity * sizeof(Q4Stamp)));
    const unsigned cap = unsigned(std::min<size_t>(capacity, 0xffffffffu)), zero = 0;
    CUDA_CHECK(cudaMemcpyToSymbol(fused::g_stamps, &buf, sizeof buf));
    CUDA_CHECK(cudaMemcpyToSymbol(fused::g_stamp_capacity, &cap, sizeof cap));
    CUDA_CHECK(cudaMemcpyToSymbol(fused::g_stamp_cursor, &zero, sizeof zero));
    void *cursor = nullptr;
    CUDA_CHECK(cudaGetSymbolAddress(&cursor, fused::g_stamp_cursor));
    stamp_sink() = StampSink{buf, static_cast<unsigned *>(cursor), cap};
    stamps_switch() = true;
}

StampSink q4_stamp_sink() { return stamp_sink(); }  // empty while the record is off

void q4_stamps_clear() {
    const unsigned zero = 0;
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaMemcpyToSymbol(fused::g_stamp_cursor, &zero, sizeof zero));
}

std::vector<Q4Stamp> q4_stamps_end() {
    CUDA_CHECK(cudaDeviceSynchronize());
    Q4Stamp *buf = nullptr;
    unsigned n = 0, cap = 0;
    CUDA_CHECK(cudaMemcpyFromSymbol(&buf, fused::g_stamps, sizeof buf));
    CUDA_CHECK(cudaMemcpyFromSymbol(&n, fused::g_stamp_cursor, sizeof n));
    CUDA_CHECK(cudaMemcpyFromSymbol(&cap, fused::g_stamp_capacity, sizeof cap));
    std::vector<Q4Stamp> v(std::min(n, cap));
    if (!v.empty()) CUDA_CHECK(cudaMemcpy(v.data(), buf, v.size() * sizeof(Q4Stamp), cudaMemcpyDeviceToHost));
    Q4Stamp *none = nullptr;
    CUDA_CHECK(cudaMemcpyToSymbol(fused::g_stamps, &none, sizeof none));
    CUDA_CHECK(cudaFree(buf));
    stamp_sink() = StampSink();
    stamps_switch() = false;
    return v;
}

bool q4_fold_enabled() { return env_int("GPTQ_Q4_FOLD", 1) != 0; }

bool q4_atomic_enabled() { return atomic_switch().load(std::memory_order_relaxed) != 0; }
void q4_set_atomic_accumulate(bool on) { atomic_switch() = on ? 1 : 0; }

namespace {

template <int NTOK, bool ZT, int MODE, int SB, bool FOLD, int XD, int WN>
void launch_fused_tiles(const __half *x, int M, int ldx, const Q4Dev &w, const Q4Out &out, const Q4Plan &plan,
                        const Q4Scratch &sc, cudaStream_t stream, const Q4Prologue &pro) {
    dim3 grid(plan.strips, plan.splits);
    const size_t red = kKSliceExchangeFloats<NTOK, WN> * sizeof(float);  // the K slices meet there
    size_t smem = std::max(plan_smem(XD ? 0 : M, plan.pairs_per_split, w), red);
    if (smem > q4_device_smem().per_block)
        fail(GPTQ_ERR_BACKEND, "q4_fused: plan needs %zu bytes of shared memory", smem);
    Q4Prologue p = pro;
    p.stash = 0;
    if (p.kind == 1 && !p.perm && q4_norm_stash_enabled()) {  // room for the RMSNorm stash?
        const size_t with = (plan_smem(M, plan.pairs_per_split, w) + 15) / 16 * 16 +
                            (size_t(M) + 1) * plan.pairs_per_split * kQ4PairK * sizeof(float);
        if (with <= q4_smem_cap()) {
            p.stash = 1;
            smem = std::max(smem, with);
        }
    }
    // 1: fp32 output, the splits add into it; 2: fp16 output, the splits add into sc.sums and the
    // last block rounds; 0: partials summed in order by the last block. Into fp16 the sums pay at up
    // to 8 rows and, above, from 5 splits on; measured against the ordered partials in one run
    // (H200, graph-timed, fp16 outputs): one row of 7B q|k|v (4 splits) 11.1 vs 11.9 us, of o_proj
    // (12) 7.1 vs 11.2, of down 10.8 vs 14.7; 16 rows of o_proj (5 splits) 12.7 vs 17.7, of down (9)
    // 17.6 vs 27.6, of 70B down (21) 73.0 vs 93.5, of 70B gate|up (7) 145.9 vs 156.1; but 16 rows of
    // 7B gate|up (4 splits, one wave) 30.5 vs 26.6 (every block then waits for its atomics to land
    // before it counts itself done, which reading back four slices does not outweigh). The direct
    // activations' plans (XD) from 2 splits on, against this rule, eager-timed in one run: 16 rows
    // of 7B q|k|v (4 splits) 19.2 vs 20.1 us (a later run: 20.2 under the rule, i.e. within the
    // spread), 7B gate|up (2) 30.8 vs 27.6, 70B gate|up (2) 134.9 vs 128.4.
    constexpr int kSumsMinSplits = 5;  // above 8 rows
    int atomic_out = 0;
    if (plan.splits > 1 && q4_atomic_enabled()) {
        if (out.out32) atomic_out = 1;
        else if (out.out16 && (M <= 8 || plan.splits >= kSumsMinSplits) && sc.sums && sc.sums_floats >= plan.sums_floats)
            atomic_out = 2;
    }
    const bool sm90 = device_attribute(cudaDevAttrComputeCapabilityMajor, 0) >= 9;
    // The atomics four columns at a time (red.global.add.v4.f32, sm_90) where the outputs are 16-byte
    // aligned (the fp32 sums always are); GPTQ_Q4_RED4=0 adds one column at a time (measurements,
    // tests; read at every launch).
    const bool by4 = atomic_out != 0 && sm90 && env_int("GPTQ_Q4_RED4", 1) == 1 &&
                     (atomic_out == 2 ||
                      ((reinterpret_cast<uintptr_t>(out.out32) | uintptr_t(out.ldo) * sizeof(float)) & 15) == 0);
    // The L2 head (sm_90, q4_fused_kernel): each warp asks the L2 for this many tile pairs past its
    // register ring before the PDL wait. Measured (H100, one binary, GPTQ_Q4_L2HEAD swept, two
    // calls): decode b=1 527.8-537.5 tok/s without, 541-542 at 1 pair, 543-545 at 2, 540-548 at 4,
    // 540-548 at 5, 538-547 at 6, 537 at 8 (b=16 within its spread: 3780-3809 without, 3792-3832 at 4);
    // graph-timed one row of 7B q|k|v 11.0 -> 10.2-10.3 µs, gate+up 16.8 -> 16.2, down 11.0 -> 10.5,
    // 70B down 42.1 -> 41.0, o_proj unchanged (its ring holds its whole range); 16 rows q|k|v 13.2 ->
    // 12.6, gate+up 20.9 -> 20.1, but down 14.6 -> 15.0. Issued before the scales' and norm weights'
    // copies instead, every amount cost (b=1 526 at 2 pairs, 499 at 8). GPTQ_Q4_L2HEAD=N overrides
    // (0: off; measurements, tests; read at every launch).
    constexpr int kL2HeadPairs = 4;
    const int l2_head = sm90 ? std::clamp(env_int("GPTQ_Q4_L2HEAD", kL2HeadPairs), 0, 1 << 20) : 0;
    // Two splits into fp16 (sm_90): the strip's two blocks form a thread-block cluster and split 0
    // adds the other's sums from its shared memory (no atomics, counter or scratch; the same sum on
    // every run). Measured (H200, graph-timed, one binary): 7B gate|up (2 splits) one row 16.6 ->
    // 15.3 µs, 16 rows 26.2 -> 23.1, decode b=16 3848-3850 -> 3932-3938 tok/s; but clusters of 4
    // and 6 were far slower than the atomic sums (q|k|v one row 11.2 -> 17.8, 16 rows 19.3 -> 26.0;
    // 70B down 33.5 -> 52.4; decode b=16 3791-3806 -> 3661-3710), so two splits only.
    // GPTQ_Q4_CLUSTER=0 never, =N up to N <= 8 splits (measurements, tests; read at every launch).
    // Two splits are summed by a push (push_sum: split 1 writes its sums into split 0's shared
    // memory and arrives on one mbarrier) instead of two cluster-wide barriers around split 0's
    // reads (cluster_sum; same bits). Measured (H200, graph-timed, one run each): one row of 7B
    // q|k|v 10.1 -> 9.5 µs, 16 rows of gate|up 20.1 -> 20.0; decode b=16 4341-4348 -> 4354-4367
    // tok/s, b=1 the same (594-596: its q|k|v defers its shares, no cluster). GPTQ_Q4_CLUSTER_PUSH=0
    // pulls (measurements, tests).
    // The variant exists for the kernels of the 7B shapes' two-split plans: one token (folded zero
    // point) and 9-16 rows read directly.
    constexpr bool kClusterable =
        (MODE == 0 || MODE == 9) && !ZT && ((NTOK == 1 && FOLD && SB == 4) || (NTOK == 2 && XD == 1));
    auto kernel = q4_fused_kernel<NTOK, ZT, MODE, SB, FOLD, XD, WN>;
    // GPTQ_Q4_PUSH32=C (measurements only; refuted): into fp32 with atomics (o_proj, down), the
    // splits in clusters of C (dividing S, up to 16) whose rank 0 adds the others' pushed sums
    // before its atomics: S / C atomics per output instead of S. The atomics cost one row of down
    // 2.3 µs and of o_proj 2.0 (diagnostic 6, H200), but the clusters cost more: decode b=1
    // 591.7-593.8 -> 537.8-538.4 tok/s at C = 2, 451-453 at 3 and 4, 440-441 at 6, 369-370 at 12
    // (H200, one binary).
    unsigned cluster = 1;  // blocks per cluster along the splits
    if constexpr (kClusterable) {
        const int cluster_max = std::min(8, env_int("GPTQ_Q4_CLUSTER", 2));
        const int push32 = env_int("GPTQ_Q4_PUSH32", 0);
        // The shared memory with the push area of a cluster of `ranks` at its end (push_area).
        const auto with_push = [&](int ranks) { return (smem + 15) / 16 * 16 + push_bytes<NTOK, WN>(ranks); };
        if (plan.splits > 1 && plan.splits <= cluster_max && out.out16 && !out.defer && sm90) {
            const bool push = plan.splits == 2 && env_int("GPTQ_Q4_CLUSTER_PUSH", 1) == 1;
            kernel = push ? q4_fused_kernel<NTOK, ZT, MODE, SB, FOLD, XD, WN, 2>
                          : q4_fused_kernel<NTOK, ZT, MODE, SB, FOLD, XD, WN, 1>;
            if (push) smem = with_push(2);  // 2 or 4 KB a block more
            cluster = unsigned(plan.splits);
            atomic_out = 0;  // the cluster sums in shared memory: no atomics, partials or counters
        } else if (atomic_out == 1 && push32 >= 2 && push32 <= 16 && plan.splits % push32 == 0 && !out.defer &&
                   sm90 && with_push(push32) <= q4_device_smem().per_block) {
            kernel = q4_fused_kernel<NTOK, ZT, MODE, SB, FOLD, XD, WN, 2>;
            cluster = unsigned(push32);
            smem = with_push(push32);
            if (push32 > 8) CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
        }
    }
    allow_dynamic_smem(kernel, smem);
    launch_clustered(kernel, grid, kQ4Threads, smem, stream, dim3(1, cluster, 1), x, M, ldx, w, plan.pairs_per_split,
                     atomic_out == 2 ? sc.sums : sc.partial, sc.counters, out, p,
                     atomic_out | (by4 && atomic_out ? fused::kQ4AtomicsBy4 : 0), l2_head);
    CUDA_CHECK_LAUNCH();
}

// The kernel for the plan's tiles per block (one tile: up to 16 rows).
template <int NTOK, bool ZT, int MODE = 0, int SB = 4, bool FOLD = false, int XD = 0>
void launch_fused(const __half *x, int M, int ldx, const Q4Dev &w, const Q4Out &out, const Q4Plan &plan,
                  const Q4Scratch &sc, cudaStream_t stream, const Q4Prologue &pro) {
    if constexpr (NTOK <= 2) {
        if (plan.tiles_per_block == 1) {
            launch_fused_tiles<NTOK, ZT, MODE, SB, FOLD, XD, 1>(x, M, ldx, w, out, plan, sc, stream, pro);
            return;
        }
    }
    launch_fused_tiles<NTOK, ZT, MODE, SB, FOLD, XD, 2>(x, M, ldx, w, out, plan, sc, stream, pro);
}

// One token, uniform zero point: the kernel of the plan's staging batch (the decode step's products;
// MODE: the product, or a diagnostic or stamping twin of it).
template <int MODE, bool FOLD>
void launch_one_token(const __half *x, int M, int ldx, const Q4Dev &w, const Q4Out &out, const Q4Plan &plan,
                      const Q4Scratch &sc, cudaStream_t stream, const Q4Prologue &pro) {
    if (plan.stage_batch == 2) launch_fused<1, false, MODE, 2, FOLD>(x, M, ldx, w, out, plan, sc, stream, pro);
    else launch_fused<1, false, MODE, 4, FOLD>(x, M, ldx, w, out, plan, sc, stream, pro);
}

template <int NTOK>
void launch_fused_z(const __half *x, int M, int ldx, const Q4Dev &w, const Q4Out &out, const Q4Plan &plan,
                    const Q4Scratch &sc, cudaStream_t stream, const Q4Prologue &pro) {
    // Folded zero point for up to 8 rows only: measured (H200) decode b=1 569 vs 556 tok/s with it,
    // but 16-row products ~1% slower (the extra mma weighs more at two token tiles).
    const bool fold = NTOK == 1 && q4_fold_enabled();
    if constexpr (NTOK == 1) {
        if (!w.zeros) {
            if (!fold) launch_one_token<0, false>(x, M, ldx, w, out, plan, sc, stream, pro);
            else if (stamps_switch().load(std::memory_order_relaxed))  // the stamping twins
                launch_one_token<9, true>(x, M, ldx, w, out, plan, sc, stream, pro);
            else launch_one_token<0, true>(x, M, ldx, w, out, plan, sc, stream, pro);
            return;
        }
        if (plan.stage_batch == 2) {
            launch_fused<1, true, 0, 2>(x, M, ldx, w, out, plan, sc, stream, pro);
            return;
        }
    }
    if constexpr (NTOK == 2) {
        if (plan.x_direct) {
            if (plan.x_direct == 2) {
                if (w.zeros) launch_fused<2, true, 0, 4, false, 2>(x, M, ldx, w, out, plan, sc, stream, pro);
                else launch_fused<2, false, 0, 4, false, 2>(x, M, ldx, w, out, plan, sc, stream, pro);
            } else if (w.zeros) launch_fused<2, true, 0, 4, false, 1>(x, M, ldx, w, out, plan, sc, stream, pro);
            else launch_fused<2, false, 0, 4, false, 1>(x, M, ldx, w, out, plan, sc, stream, pro);
            return;
        }
    }
    if (w.zeros) {
        launch_fused<NTOK, true>(x, M, ldx, w, out, plan, sc, stream, pro);
        return;
    }
    launch_fused<NTOK, false>(x, M, ldx, w, out, plan, sc, stream, pro);
}

} // namespace

// Registers bound the fused kernel's resident blocks (the shared memory of a small-M plan is a few
// KB). Each kind asks its two-tile kernel, whose one-tile twin fits as many blocks (ptxas, sm_90a:
// 168 / 168 registers for one token, 150 / 158 for 16 rows read directly, 128 / 128 for the
// fp16-scaled kernel).
int q4_fused_occupancy(int kind) {
    const int i = std::min(std::max(kind, 0), kQ4FusedKinds - 1);
    return once_per_device<int>(uintptr_t(i), 1, [i](int) {
        using Kernel = decltype(&q4_fused_kernel<1, false, 0>);  // every instantiation's parameters
        static const Kernel kernels[kQ4FusedKinds] = {  // by q4_fused_kind
            q4_fused_kernel<1, false, 0>,          q4_fused_kernel<2, false, 0>,
            q4_fused_kernel<4, false, 0>,          q4_fused_kernel<1, false, 0, 2>,
            q4_fused_kernel<1, false, 0, 4, true>, q4_fused_kernel<1, false, 0, 2, true>,
            q4_fused_kernel<2, false, 0, 4, false, 1>, q4_fused_kernel<2, false, 0, 4, false, 2>};
        int n = 0;
        if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernels[i], kQ4Threads, 8 * 1024) != cudaSuccess) {
            cudaGetLastError();
            n = 1;
        }
        return std::max(1, n);
    });
}

void q4_fused(const __half *x, int M, int ldx, const Q4Dev &w, const Q4Out &out, const Q4Plan &plan,
              const Q4Scratch &sc, cudaStream_t stream, const Q4Prologue *pro_in) {
    const Q4Prologue pro = pro_in ? *pro_in : Q4Prologue();
    if (pro.kind == 1 && (w.K % 4 || pro.ldx32 % 4 || !aligned16(pro.x32) || !pro.norm_w ||
                          (!pro.perm && !aligned16(pro.norm_w))))
        fail(GPTQ_ERR_BACKEND, "q4_fused: the RMSNorm prologue needs K %% 4 == 0 and 16-byte aligned rows (K %d)", w.K);
    if (pro.kind == 2 && (w.K % 8 || pro.ldgu % 8 || !aligned16(pro.gu)))
        fail(GPTQ_ERR_BACKEND, "q4_fused: the SwiGLU prologue needs K %% 8 == 0 and 16-byte aligned rows (K %d)", w.K);
    if (pro.kind < 0 || pro.kind > 4) fail(GPTQ_ERR_BACKEND, "q4_fused: unknown prologue %d", pro.kind);
    if (pro.kind == 4 && (w.K % 8 || pro.attn_d % 8 || pro.attn_d <= 0 || w.perm || !pro.attn_o || !pro.attn_ml ||
                          !pro.attn_used || w.K != pro.attn_heads * pro.attn_d))
        fail(GPTQ_ERR_BACKEND, "q4_fused: the attention-merge prologue needs K = heads * D, K %% 8 == 0 and no perm (K %d)",
             w.K);
    if (M < 1 || M > kQ4FusedMaxM) fail(GPTQ_ERR_BACKEND, "q4_fused: M = %d outside 1..%d", M, kQ4FusedMaxM);
    if ((out.out16 != nullptr) + (out.out32 != nullptr) + (out.defer != nullptr) != 1)
        fail(GPTQ_ERR_BACKEND, "q4_fused: exactly one output must be set");
    if (out.defer && out.bias) fail(GPTQ_ERR_BACKEND, "q4_fused: a deferred output takes no bias");
    if (out.defer && q4_deferred_floats(plan, M, w) > out.defer_floats)
        fail(GPTQ_ERR_BACKEND, "q4_fused: the deferred shares need %zu floats, the buffer has %zu",
             q4_deferred_floats(plan, M, w), out.defer_floats);
    if (pro.kind == 3 && (w.K % 8 || pro.ldgu % 4 || pro.gu_splits < 1 || !aligned16(pro.gu_part)))
        fail(GPTQ_ERR_BACKEND, "q4_fused: the deferred SwiGLU prologue needs K %% 8 == 0 and aligned shares (K %d)", w.K);
    if (pro.kind == 0 && (ldx % 8 || !aligned16(x)))
        fail(GPTQ_ERR_BACKEND, "q4_fused: x must be 16-byte aligned with ldx %% 8 == 0 (ldx %d)", ldx);
    if (out.ldo % 2)
        fail(GPTQ_ERR_BACKEND, "q4_fused: ldo must be even (ldo %d)", out.ldo);
    if (plan.splits > 1) {
        if (plan.partial_floats > sc.partial_floats || plan.strips > sc.n_counters)
            fail(GPTQ_ERR_BACKEND, "q4_fused: scratch too small (%zu floats / %d counters; need %zu / %d)",
                 sc.partial_floats, sc.n_counters, plan.partial_floats, plan.strips);
    }
    if (plan.tiles_per_block != 2 && !(plan.tiles_per_block == 1 && M <= 16))
        fail(GPTQ_ERR_BACKEND, "q4_fused: %d column tiles per block (1 for up to 16 rows, or 2)", plan.tiles_per_block);
    if (plan.x_direct && !q4_x_direct_allowed(M, w, pro.kind))
        fail(GPTQ_ERR_BACKEND, "q4_fused: direct activations need 9..16 rows, x as given and K %% 32 == 0 (M %d, K %d)",
             M, w.K);
    if (M <= 8)
        launch_fused_z<1>(x, M, ldx, w, out, plan, sc, stream, pro);
    else if (M <= 16)
        launch_fused_z<2>(x, M, ldx, w, out, plan, sc, stream, pro);
    else
        launch_fused_z<4>(x, M, ldx, w, out, plan, sc, stream, pro);
}

__global__ void empty_kernel() {}

void q4_fused_diagnostic(int mode, const __half *x, int M, int ldx, const Q4Dev &w, const Q4Out &out,
                         const Q4Plan &plan, const Q4Scratch &sc, cudaStream_t stream) {
    if (M > 16 || w.zeros) fail(GPTQ_ERR_BACKEND, "q4_fused_diagnostic: M <= 16 and uniform zeros only");
    const Q4Prologue pro;
    const bool fold = q4_fold_enabled();
    if (mode == 3) {
        empty_kernel<<<1, 32, 0, stream>>>();
        CUDA_CHECK_LAUNCH();
    } else if (M <= 8) {
        if (mode == 1) launch_fused<1, false, 1>(x, M, ldx, w, out, plan, sc, stream, pro);
        else if (mode == 4) launch_fused<1, false, 3>(x, M, ldx, w, out, plan, sc, stream, pro);
        else if (mode == 5) launch_fused<1, false, 4>(x, M, ldx, w, out, plan, sc, stream, pro);
        else if (mode == 6) launch_fused<1, false, 5>(x, M, ldx, w, out, plan, sc, stream, pro);
        else if (mode == 7 && fold) launch_one_token<6, true>(x, M, ldx, w, out, plan, sc, stream, pro);
        else if (mode == 7) launch_one_token<6, false>(x, M, ldx, w, out, plan, sc, stream, pro);
        else if (mode == 8 && fold) launch_one_token<7, true>(x, M, ldx, w, out, plan, sc, stream, pro);
        else if (mode == 8) launch_one_token<7, false>(x, M, ldx, w, out, plan, sc, stream, pro);
        else if (mode == 2 && fold) launch_fused<1, false, 2, 4, true>(x, M, ldx, w, out, plan, sc, stream, pro);
        else if (mode == 2) launch_fused<1, false, 2>(x, M, ldx, w, out, plan, sc, stream, pro);
        else launch_fused<1, false, 0>(x, M, ldx, w, out, plan, sc, stream, pro);
    } else {  // the 16-row kernel the plan names: staged, direct, or direct with fp16 scaling
        auto run = [&](auto xd) {
            constexpr int XD = decltype(xd)::value;
            if (mode == 1) launch_fused<2, false, 1, 4, false, XD>(x, M, ldx, w, out, plan, sc, stream, pro);
            else if (mode == 2) launch_fused<2, false, 2, 4, false, XD>(x, M, ldx, w, out, plan, sc, stream, pro);
            else launch_fused<2, false, 0, 4, false, XD>(x, M, ldx, w, out, plan, sc, stream, pro);
        };
        if (plan.x_direct == 2) run(std::integral_constant<int, 2>{});
        else if (plan.x_direct == 1) run(std::integral_constant<int, 1>{});
        else run(std::integral_constant<int, 0>{});
    }
}

} // namespace cuda
} // namespace gptq
