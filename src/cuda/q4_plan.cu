// q4_plan.cu — how the fused 4-bit kernel cuts one call (Q4Plan): column tiles per block, splits
// along K, the staging batch and direct activations, by rows, layer shape and the blocks the GPU
// holds at once; and the shared memory a block may take.
#include "q4_fused_smem.cuh"
#include "q4_internal.cuh"

#include "launch.cuh"

#include <algorithm>
#include <atomic>

namespace gptq {
namespace cuda {

DeviceSmem q4_device_smem() {
    DeviceSmem d;
    d.per_sm = size_t(device_attribute(cudaDevAttrMaxSharedMemoryPerMultiprocessor, 48 * 1024));
    d.per_block = std::min(kQ4SmemMaxBytes, size_t(device_attribute(cudaDevAttrMaxSharedMemoryPerBlockOptin, 48 * 1024)));
    return d;
}

namespace {

// GPTQ_Q4_SMEM_KB (47 by default; measurements) within what a block may opt in to.
size_t smem_cap_within(size_t per_block) {
    const int kb = env_int("GPTQ_Q4_SMEM_KB", 47);
    return std::min(per_block, size_t(std::max(16, kb)) * 1024);
}

} // namespace

size_t q4_smem_cap() { return smem_cap_within(q4_device_smem().per_block); }

namespace {

std::atomic<int> &split_fit_switch() {  // -1: by M (the default), 0: off, 1: on
    static std::atomic<int> on{env_int("GPTQ_Q4_SPLIT_FIT", -1)};
    return on;
}

// The staging batch at M <= 8: -1 chooses per plan (the default), 2 or 4 forces
// (GPTQ_Q4_STAGE_BATCH; read at every plan, as the tests switch it).
int stage_batch_mode() {
    const int v = env_int("GPTQ_Q4_STAGE_BATCH", -1);
    return v == 2 || v == 4 ? v : -1;
}

// Q4Plan::tiles_per_block forced: GPTQ_Q4_BLOCK_TILES=1 or 2 (read at every plan; the tests
// switch it); -1: as planned. One tile per block is taken for up to 16 rows only.
int block_tiles_mode() {
    const int v = env_int("GPTQ_Q4_BLOCK_TILES", -1);
    return v == 1 || v == 2 ? v : -1;
}

// Q4Plan::x_direct for M rows of w under prologue kind `prologue`: 0 where q4_x_direct_allowed says
// no; -1: direct, the kernel chosen by the plan. GPTQ_Q4_XDIRECT=0 / 1 / 2 (read at every plan; the
// tests switch it) forces staged / either.
int x_direct_for(int M, const Q4Dev &w, int prologue) {
    if (!q4_x_direct_allowed(M, w, prologue)) return 0;
    const int v = env_int("GPTQ_Q4_XDIRECT", -1);
    return v >= 0 && v <= 2 ? v : -1;
}

} // namespace

bool q4_x_direct_allowed(int M, const Q4Dev &w, int prologue) {
    return M > 8 && M <= 16 && prologue == 0 && w.K % kQ4PairK == 0;
}

void q4_set_split_fit(int mode) { split_fit_switch() = mode < 0 ? -1 : (mode ? 1 : 0); }

int q4_fused_kind(int M, int stage_batch, int x_direct) {
    const bool fold = M <= 8 && q4_fold_enabled();
    if (M > 8 && M <= 16 && x_direct) return x_direct == 2 ? 7 : 6;
    if (M > 8) return M <= 16 ? 1 : 2;
    if (stage_batch == 2) return fold ? 5 : 3;
    return fold ? 4 : 0;
}

Q4Limits q4_limits(int sm_count) {
    // Once per device: the plans of every call ask it (eager forwards plan each product).
    Q4Limits lim = once_per_device<Q4Limits>(0, Q4Limits(), [](int) {
        Q4Limits l;
        const DeviceSmem d = q4_device_smem();
        l.smem_per_sm = d.per_sm;
        l.smem_per_block = d.per_block;
        for (int k = 0; k < kQ4FusedKinds; ++k) l.blocks_per_sm[k] = q4_fused_occupancy(k);
        return l;
    });
    lim.sm_count = sm_count;
    lim.smem_cap = smem_cap_within(lim.smem_per_block);  // read at every plan
    return lim;
}

Q4Plan q4_plan(int M, const Q4Dev &w, int sm_count, int blocks_per_sm_target, int prologue_kind) {
    return q4_plan(M, w, q4_limits(sm_count), blocks_per_sm_target, prologue_kind);
}

Q4Plan q4_plan(int M, const Q4Dev &w, const Q4Limits &lim, int blocks_per_sm_target, int prologue_kind) {
    Q4Plan p;
    const int sm_count = lim.sm_count;
    auto blocks_per_sm = [&](int stage_batch, int x_direct) {
        return std::max(1, lim.blocks_per_sm[q4_fused_kind(M, stage_batch, x_direct)]);
    };
    const int KP = w.KT / 2;
    const int tiles_mode = block_tiles_mode();
    if (M <= 16 && tiles_mode == 1) p.tiles_per_block = 1;
    p.strips = (w.NT + p.tiles_per_block - 1) / p.tiles_per_block;
    p.x_direct = x_direct_for(M, w, prologue_kind);
    if (p.x_direct < 0) {
        // The fp16-scaling kernel pays a multiply per weight pair for a fourth block per SM; measured
        // (H200, graph-timed, 16 rows, against the 3-block kernel): 70B gate|up 92.0 µs over one
        // split in one wave (95.5 over two) vs 118.4, but 7B q|k|v 21.6 vs 19.4, gate|up 30.3 vs
        // 26.2, 70B down 59.5 vs 50.5, decode b=16 3754 vs 3813 tok/s. So it runs where its fourth
        // block is what puts every strip in one wave.
        const int sms = std::max(1, sm_count);
        const int resident_3 = sms * blocks_per_sm(4, 1), resident_4 = sms * blocks_per_sm(4, 2);
        p.x_direct = p.strips > resident_3 && p.strips <= resident_4 ? 2 : 1;
        // It also pays where its fourth block adds splits to few, long strips: 70B down (single-tile
        // strips, 3 -> 4 splits of 224 pairs; H100, graph-timed, 16 rows: 53.8 -> 51.0 µs; H200
        // 50.8 -> 48.3), but not o_proj's short K (6 -> 8 splits of 16 pairs, H200: 9.6 -> 10.1 µs)
        // nor, on the H100, 7B down's 6 -> 8 splits of 43 pairs (14.6-14.7 against 14.7-14.9 µs
        // alone, and the decode step at b = 16 3748-3804 tok/s against 3278-3759; the H200 had
        // measured 15.0 -> 14.4 alone, and 14.9 -> 14.2 at 12 rows, which the H100 has not been
        // asked). So it takes splits of 64 pairs or more.
        const int splits_3 = resident_3 / std::max(1, w.NT), splits_4 = resident_4 / std::max(1, w.NT);
        if (p.x_direct == 1 && splits_3 >= 1 && splits_4 > splits_3 && KP / splits_4 >= 64) p.x_direct = 2;
    }
    // Rows of activations a block stages (none when it reads them directly).
    const int staged = p.x_direct ? 0 : M;
    // Measured (bench-kernels run 16): 3 blocks per SM suits M <= 8; from 9 rows on fewer splits
    // win (the partial sums grow with M). Atomic fp32 outputs had 2 while 3 still made a second
    // wave; under the one-wave fit 3 is better for them too (lead's run of 2026-11-23: decode
    // b=1 410.2 tok/s at 3 against 389.5 at 2).
    const bool default_target = blocks_per_sm_target <= 0;
    // Direct activations (16 rows) plan as one token does (no staged rows make splits costly), with
    // as many blocks per SM as their kernel fits (3, or 4 with the fp16 scaling).
    if (default_target) blocks_per_sm_target = M <= 8 ? 3 : p.x_direct ? 4 : 1;
    // The attention merge's product (o_proj at one token) leaves an SM slot free: the next product
    // (gate|up, 45 MB at 7B) then lands its blocks while o_proj runs, and their register rings
    // fill before o_proj ends instead of after. Measured (H100, bench-e2e --sweep on o_proj's split
    // count, one process, twice): 12 splits (3 per SM) 557.7, 556.2 tok/s; 10: 563.5, 563.3; 8 (2
    // per SM): 569.0, 569.3; 6: 548.4, 553.9. Stamps at 8: gate|up's last block past its wait 1.60 µs
    // after its release instead of 2.81, the layer 52.4 µs instead of 53.8.
    if (default_target && prologue_kind == 4 && M == 1) blocks_per_sm_target = 2;
    int splits;
    const int fit_mode = split_fit_switch().load(std::memory_order_relaxed);
    const int sb_mode = stage_batch_mode();
    if (fit_mode == 1 || (fit_mode < 0 && (M <= 8 || p.x_direct))) {
        // Whole blocks in one wave: never more blocks than can be resident at once.
        const int resident =
            std::max(1, sm_count) * std::min(blocks_per_sm_target, blocks_per_sm(4, p.x_direct));
        // One column tile per block, for x as given, where its strips fit in one wave with the
        // activations of their splits in shared memory (8 staged rows of gate|up's whole K do not:
        // the cap would cut each strip into 2 splits, 688 blocks in two waves, 17.2 -> 22.8 µs), and
        // at up to 8 rows only where that leaves a strip at most two splits (a cluster, or none: no
        // global round trip at the end). Measured (H200, graph-timed, µs, two tiles -> one): one row
        // of 7B q|k|v (4 splits -> 2) 11.6 -> 10.2, gate|up (2 -> 1) 15.4 -> 14.1, 4 rows 12.4 -> 10.9
        // and 16.1 -> 15.8, 8 rows of q|k|v 13.4 -> 12.0; but one row of o_proj (12 -> 6) 7.2 -> 7.6,
        // 70B down (6 -> 3) 33.7 -> 34.4, down 11.1 -> 10.9; 16 rows read directly: q|k|v 19.3 ->
        // 13.4, o_proj 11.3 -> 9.6, gate|up 23.2 -> 20.0, down 16.0 -> 14.9, 70B down 50.8 -> 50.9;
        // 70B gate|up's 896 tiles (more than one wave) 90.4 -> 122.2 in a trial build. Decode
        // (bench-e2e): b=16 3905 -> 4204 tok/s; b=1 584 -> 542 with the rule applied to its
        // prologues and deferred outputs (no split epilogue to save, twice the K range to stage
        // per block), so not with a prologue.
        const int single_splits = std::max(1, resident / std::max(1, w.NT));
        if (M <= 16 && tiles_mode < 0 && prologue_kind == 0 && w.NT <= resident &&
            plan_smem(staged, (KP + single_splits - 1) / single_splits, w) <= lim.smem_cap &&
            (M > 8 || single_splits <= 2)) {
            p.tiles_per_block = 1;
            p.strips = w.NT;
        }
        splits = std::max(1, resident / p.strips);
        // Direct activations, more strips than resident blocks (16 rows of 70B gate|up on the
        // 3-block kernel: 448 strips, 396 blocks; measured S1 144.3, S2 127.0 µs): the second wave
        // would be a few blocks of the full K range; a split per wave of strips shortens it.
        if (p.x_direct && p.strips > resident) splits = (p.strips + resident - 1) / resident;
        // More strips than resident blocks (one split each; the 70B gate|up at one token): the
        // leaner staging fits one more block per SM, and with it perhaps the whole plan in one wave.
        if (M <= 8 && sb_mode < 0 && p.strips > resident &&
            p.strips <= std::max(1, sm_count) * blocks_per_sm(2, 0))
            p.stage_batch = 2;
    } else {
        const int target = std::max(1, sm_count) * blocks_per_sm_target;
        splits = std::max(1, (target + p.strips - 1) / p.strips);
    }
    if (M <= 8 && sb_mode == 2) p.stage_batch = 2;
    const int forced = env_int("GPTQ_Q4_SPLITS", 0);  // measurements: a split count forced
    if (forced > 0) splits = forced;
    // Keep at least two batches per warp so that loads overlap compute.
    splits = std::min(splits, std::max(1, KP / (2 * (kQ4Warps / p.tiles_per_block) * kQ4PairsPerBatch)));
    p.pairs_per_split = (KP + splits - 1) / splits;
    // The block's activations and scales must fit in its shared memory.
    const size_t cap = lim.smem_cap;
    while (p.pairs_per_split > 1 && plan_smem(staged, p.pairs_per_split, w) > cap)
        p.pairs_per_split = std::max(1, p.pairs_per_split * 7 / 8);
    p.splits = (KP + p.pairs_per_split - 1) / p.pairs_per_split;
    // The shared-memory cap left more blocks than fit at once (16 rows of 7B gate|up: 4 splits of
    // 172 strips = 688 blocks for 396 slots, two waves): as many splits as one wave holds, with
    // more shared memory per block, as long as the SM still holds the resident count (H200: 33.5 ->
    // 26.5 us; q|k|v and down, already in one wave, keep their plans). The same from 2 rows on:
    // 70B down at 4-8 rows took 7-12 splits of 64 strips for 396 slots; now 6 at 4-6 rows (H200,
    // graph-timed: 50.7, 48.4, 46.1 -> 35.6, 36.6, 37.9 µs; 7-8 rows do not fit, 44 and 42), and
    // 70B gate|up at 2 rows one split instead of 2 (71.2 -> 67.1).
    if (default_target && M > 1 && !p.x_direct && fit_mode < 0) {
        const int per_sm = blocks_per_sm(p.stage_batch, 0);
        const int resident = std::max(1, sm_count) * per_sm;
        if (p.strips * p.splits > resident && p.strips <= resident) {
            const int ws = std::max(1, resident / p.strips);
            const int pps = (KP + ws - 1) / ws;
            const size_t room = lim.smem_per_sm / size_t(per_sm) - 1024;  // the driver keeps 1 KB per block
            if (ws < p.splits && plan_smem(M, pps, w) <= std::min(room, lim.smem_per_block)) {
                p.pairs_per_split = pps;
                p.splits = (KP + pps - 1) / pps;  // not ws: 670 pairs in 29 splits of 24 leave the last empty
            }
        }
    }
    // Even out the splits the shrinking left (16 rows of 7B q|k|v: 42, 42, 42, 2 pairs -> 4 x 32;
    // the short last split made the strip wait on the long ones: 25.2 -> 21.7 us measured).
    p.pairs_per_split = (KP + p.splits - 1) / p.splits;
    p.partial_floats = p.splits > 1 ? size_t(p.splits) * M * w.NT * kQ4TileN : 0;
    p.sums_floats = p.splits > 1 ? size_t(M) * w.NT * kQ4TileN : 0;
    return p;
}

namespace {

// The prologue kinds whose plans differ, for sizing what any call may need: x as given (9-16 rows
// read it directly), staged (kinds 2 and 3 plan as 1 does), and the attention merge (its own
// blocks-per-SM target).
constexpr int kDistinctPlanKinds[] = {0, 1, 4};

} // namespace

Q4ScratchNeed q4_scratch_need(const Q4Dev &w, int max_rows, const Q4Limits &lim) {
    Q4ScratchNeed need;
    for (int m : {1, 8, 16, 32, std::min(max_rows, kQ4FusedMaxM)}) {
        if (m > max_rows) continue;
        for (int prologue_kind : kDistinctPlanKinds) {
            const Q4Plan p = q4_plan(m, w, lim, 0, prologue_kind);
            need.partial_floats = std::max(need.partial_floats, p.partial_floats);
            need.sums_floats = std::max(need.sums_floats, p.sums_floats);
            need.strips = std::max(need.strips, p.strips);
        }
    }
    need.strips = std::max(need.strips, w.NT);  // any plan's strips (one column tile per block at most)
    return need;
}

size_t q4_deferred_need(const Q4Dev &w, int max_rows, const Q4Limits &lim) {
    size_t need = 0;
    for (int m = 1; m <= std::min(max_rows, kQ4FusedMaxM); ++m)
        for (int prologue_kind : kDistinctPlanKinds)
            need = std::max(need, q4_deferred_floats(q4_plan(m, w, lim, 0, prologue_kind), m, w));
    return need;
}

Q4Plan q4_default_plan(int M, const Q4Dev &w, const Q4Workspace &ws, int prologue_kind) {
    return q4_plan(M, w, ws.sm_count, 0, prologue_kind);
}

} // namespace cuda
} // namespace gptq
