// test_q4_plan.cpp — the 4-bit kernels' planners (q4_plan for the fused kernel, q4_wgmma_plan for
// the many-row one) on GPUs described here, no device needed: the plans behind the measured
// numbers of the Llama shapes (BENCHMARKS.md), and what every plan must satisfy at odd shapes for
// its launch to succeed, cover the whole product, and keep deterministic runs deterministic.
#include <doctest/doctest.h>

#include "testutil.h"

GPTQ_TEST_REQUIRES("cuda-build")

#ifdef GPTQ_USE_CUDA

#include "cuda/q4_fused_smem.cuh"
#include "cuda/q4_gemm.cuh"
#include "cuda/q4_wgmma.cuh"

#include <cstdlib>
#include <random>

using namespace gptq::cuda;

namespace {

// H100 / H200 SXM: 132 SMs, 228 KB of shared memory per SM (227 KB per block, capped at
// kQ4SmemMaxBytes). Blocks per SM from the registers ptxas gives each kind for sm_90a (168 for one
// token, 128 with the leaner staging, 168 / 247 for 16 / 32 staged rows, 150 / 128 for 16 direct
// rows) at 128 threads.
Q4Limits hopper() {
    Q4Limits l;
    l.sm_count = 132;
    l.smem_per_sm = 228 * 1024;
    l.smem_per_block = kQ4SmemMaxBytes;
    l.smem_cap = 47 * 1024;
    const int blocks[kQ4FusedKinds] = {3, 3, 2, 4, 3, 4, 3, 4};
    for (int k = 0; k < kQ4FusedKinds; ++k) l.blocks_per_sm[k] = blocks[k];
    return l;
}

// A smaller GPU (an sm_86 card's numbers): 46 SMs, 100 KB per SM, 99 KB per block, 2 blocks of
// every kind.
Q4Limits small_gpu() {
    Q4Limits l;
    l.sm_count = 46;
    l.smem_per_sm = 100 * 1024;
    l.smem_per_block = 99 * 1024;
    l.smem_cap = 47 * 1024;
    for (int &b : l.blocks_per_sm) b = 2;
    return l;
}

// The layer as repack_q4 lays it out (q4_layout.cuh); only the shape, groups and zeros matter here.
Q4Dev layer(int K, int N, int group_size, bool zeros) {
    Q4Dev w;
    w.K = K;
    w.N = N;
    w.KT = 2 * ((K + kQ4PairK - 1) / kQ4PairK);
    w.NT = (N + kQ4TileN - 1) / kQ4TileN;
    w.G = group_size > 0 ? (K + group_size - 1) / group_size : 1;
    w.group_kt = group_size > 0 ? group_size / kQ4TileK : w.KT;
    static const __half dummy[1] = {};
    w.zeros = zeros ? dummy : nullptr;  // never read: only whether there are zeros
    return w;
}

// A layer of random shape (K 1-30000 in whole groups, N 1-60000), group size and zero points.
struct RandomLayer {
    int K, N, group;
    Q4Dev w;
};
RandomLayer random_layer(std::mt19937 &rng) {
    static const int groups[] = {0, 32, 64, 128, 256};
    std::uniform_int_distribution<int> dk(1, 30000), dn(1, 60000), dg(0, 4), dz(0, 1);
    RandomLayer r;
    r.K = dk(rng);
    r.N = dn(rng);
    r.group = groups[dg(rng)];
    if (r.group) r.K = std::max(r.group, r.K / r.group * r.group);  // whole groups (repack_q4 asks it)
    r.w = layer(r.K, r.N, r.group, dz(rng) != 0);
    return r;
}

// The planner's switches, as a user who sets none has them.
void clear_switches() {
    for (const char *v : {"GPTQ_Q4_BLOCK_TILES", "GPTQ_Q4_SPLIT_FIT", "GPTQ_Q4_STAGE_BATCH", "GPTQ_Q4_XDIRECT",
                          "GPTQ_Q4_SPLITS", "GPTQ_Q4_FOLD", "GPTQ_Q4_SMEM_KB", "GPTQ_Q4_WG"})
        unsetenv(v);
    q4_set_split_fit(-1);
}

struct Expect {
    int tiles, strips, splits, pairs;
};

void check_plan(const Q4Plan &p, const Expect &e) {
    CHECK(p.tiles_per_block == e.tiles);
    CHECK(p.strips == e.strips);
    CHECK(p.splits == e.splits);
    CHECK(p.pairs_per_split == e.pairs);
}

// What every plan must satisfy: the splits and strips cover the layer with none empty, the block's
// shared memory fits (the launcher refuses a plan that does not), and the scratch sizes match.
void check_invariants(const Q4Plan &p, int M, const Q4Dev &w, int prologue, const Q4Limits &lim) {
    const int KP = w.KT / 2;
    REQUIRE(p.splits >= 1);
    REQUIRE(p.pairs_per_split >= 1);
    CHECK(size_t(p.splits) * p.pairs_per_split >= size_t(KP));
    CHECK((p.splits - 1) * p.pairs_per_split < KP);
    CHECK((p.tiles_per_block == 1 || p.tiles_per_block == 2));
    CHECK(size_t(p.strips) * p.tiles_per_block >= size_t(w.NT));
    CHECK((p.strips - 1) * p.tiles_per_block < w.NT);
    if (p.tiles_per_block == 1) {
        CHECK(M <= 16);
        CHECK(prologue == 0);
    }
    if (p.x_direct) {
        CHECK((M > 8 && M <= 16));
        CHECK(prologue == 0);
        CHECK(w.K % kQ4PairK == 0);
    }
    CHECK((p.stage_batch == 4 || (p.stage_batch == 2 && M <= 8)));
    const int staged = p.x_direct ? 0 : M;
    const int ntok = M <= 8 ? 1 : M <= 16 ? 2 : 4;
    const size_t kslices = (p.tiles_per_block == 1 ? kKSliceExchangeFloats<1, 1> : kKSliceExchangeFloats<1, 2>) *
                           ntok * sizeof(float);
    const size_t smem = std::max(plan_smem(staged, p.pairs_per_split, w), kslices);
    CHECK(smem <= lim.smem_per_block);
    const size_t outputs = size_t(M) * w.NT * kQ4TileN;
    CHECK(p.partial_floats == (p.splits > 1 ? p.splits * outputs : 0));
    CHECK(p.sums_floats == (p.splits > 1 ? outputs : 0));
}

// Every default plan of w at 1..max_rows rows (at most kQ4FusedMaxM), under every prologue kind:
// what a backend sized for a batch of max_rows may launch.
struct RowsPlan {
    int m;
    Q4Plan p;
};
std::vector<RowsPlan> every_plan(const Q4Dev &w, int max_rows, const Q4Limits &lim) {
    std::vector<RowsPlan> plans;
    for (int m = 1; m <= std::min(max_rows, kQ4FusedMaxM); ++m)
        for (int prologue = 0; prologue <= 4; ++prologue) plans.push_back({m, q4_plan(m, w, lim, 0, prologue)});
    return plans;
}

// Calls check(lim, w, max_rows) for 400 random layers, each with a random batch size (1..rows_hi),
// on each described GPU.
template <class Check> void for_random_batches(unsigned seed, int rows_hi, Check check) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> drows(1, rows_hi);
    for (const Q4Limits &lim : {hopper(), small_gpu()})
        for (int i = 0; i < 400; ++i) {
            const RandomLayer r = random_layer(rng);
            const int max_rows = drows(rng);
            CAPTURE(r.K);
            CAPTURE(r.N);
            CAPTURE(r.group);
            CAPTURE(max_rows);
            check(lim, r.w, max_rows);
        }
}

} // namespace

TEST_CASE("q4_plan: the plans measured for the Llama shapes (H100 / H200)") {
    clear_switches();
    const Q4Limits lim = hopper();
    const Q4Dev qkv = layer(4096, 12288, 128, false), o_proj = layer(4096, 4096, 128, false),
                gate_up = layer(4096, 22016, 128, false), down = layer(11008, 4096, 128, false),
                gate_up70 = layer(8192, 57344, 128, false), down70 = layer(28672, 8192, 128, false);
    SUBCASE("one row") {
        // One tile per block where its strips fit one wave in at most two splits: q|k|v's 192 tiles
        // take 2 splits (a cluster), gate|up's 344 none (11.6 -> 10.2 and 15.4 -> 14.1 µs).
        check_plan(q4_plan(1, qkv, lim), {1, 192, 2, 64});
        check_plan(q4_plan(1, gate_up, lim), {1, 344, 1, 128});
        // One tile would leave 6 splits and more: two tiles, 12 splits (7.2 vs 7.6 µs; 11.1 vs 10.9).
        check_plan(q4_plan(1, o_proj, lim), {2, 32, 12, 11});
        check_plan(q4_plan(1, down, lim), {2, 32, 12, 29});
        check_plan(q4_plan(1, down70, lim), {2, 64, 6, 150});
        // 448 strips exceed the 396 resident blocks: the leaner staging fits 528, one split each.
        const Q4Plan p = q4_plan(1, gate_up70, lim);
        check_plan(p, {2, 448, 1, 256});
        CHECK(p.stage_batch == 2);
        // With the RMSNorm prologue the tiles stay two (b=1 decode 584 -> 542 tok/s otherwise).
        check_plan(q4_plan(1, qkv, lim, 0, 1), {2, 96, 4, 32});
        // The attention merge's o_proj plans for 2 blocks per SM (a slot left for gate|up's).
        check_plan(q4_plan(1, o_proj, lim, 0, 4), {2, 32, 8, 16});
    }
    SUBCASE("eight rows") {
        check_plan(q4_plan(8, qkv, lim), {1, 192, 2, 64});
        // One tile would stage 8 rows of the whole K (65.7 KB, over the cap): two tiles, 2 splits
        // (17.2 µs; 22.8 with one tile and the splits the cap made).
        check_plan(q4_plan(8, gate_up, lim), {2, 172, 2, 64});
    }
    SUBCASE("two to six rows of the 70B products") {
        // The shared-memory cap would cut them into more blocks than one wave holds (70B down at 4
        // rows: 7 splits x 64 strips for 396 slots): as many splits as a wave holds, more shared
        // memory each.
        check_plan(q4_plan(2, gate_up70, lim), {2, 448, 1, 256});
        for (int m : {4, 5, 6}) check_plan(q4_plan(m, down70, lim), {2, 64, 6, 150});
    }
    SUBCASE("sixteen rows") {
        // Read directly, planned as one token is: one tile where the strips fit one wave.
        Q4Plan p = q4_plan(16, qkv, lim);
        check_plan(p, {1, 192, 2, 64});
        CHECK(p.x_direct == 1);
        check_plan(q4_plan(16, o_proj, lim), {1, 64, 6, 22});
        CHECK(q4_plan(16, o_proj, lim).x_direct == 1);
        // Few long strips: the fp16-scaling kernel's fourth block adds splits where they stay long
        // (70B down 3 -> 4 of 224 pairs), not to 7B down (6 of 58 pairs, not 8 of 43).
        p = q4_plan(16, down, lim);
        check_plan(p, {1, 64, 6, 58});
        CHECK(p.x_direct == 1);
        p = q4_plan(16, down70, lim);
        check_plan(p, {1, 128, 4, 224});
        CHECK(p.x_direct == 2);
        check_plan(q4_plan(16, gate_up, lim), {1, 344, 1, 128});
        // 448 strips: more than 3 blocks per SM hold, not more than 4 — the fp16-scaling kernel.
        p = q4_plan(16, gate_up70, lim);
        check_plan(p, {2, 448, 1, 256});
        CHECK(p.x_direct == 2);
        // Staged (a prologue): q|k|v's splits evened out (42, 42, 42, 2 -> 4 x 32 pairs); gate|up's
        // 4 splits x 172 strips would run two waves, so 2 splits with more shared memory each.
        p = q4_plan(16, qkv, lim, 0, 1);
        check_plan(p, {2, 96, 4, 32});
        CHECK(p.x_direct == 0);
        check_plan(q4_plan(16, gate_up, lim, 0, 1), {2, 172, 2, 64});
    }
}

TEST_CASE("q4_plan: the switches force what they name") {
    clear_switches();
    const Q4Limits lim = hopper();
    const Q4Dev qkv = layer(4096, 12288, 128, false);
    setenv("GPTQ_Q4_BLOCK_TILES", "2", 1);
    CHECK(q4_plan(1, qkv, lim).tiles_per_block == 2);
    setenv("GPTQ_Q4_BLOCK_TILES", "1", 1);
    CHECK(q4_plan(1, qkv, lim, 0, 1).tiles_per_block == 1);
    CHECK(q4_plan(17, qkv, lim).tiles_per_block == 2);  // one tile for up to 16 rows only
    unsetenv("GPTQ_Q4_BLOCK_TILES");
    setenv("GPTQ_Q4_XDIRECT", "0", 1);
    CHECK(q4_plan(16, qkv, lim).x_direct == 0);
    unsetenv("GPTQ_Q4_XDIRECT");
    setenv("GPTQ_Q4_SPLITS", "3", 1);
    CHECK(q4_plan(1, qkv, lim).splits == 3);
    unsetenv("GPTQ_Q4_SPLITS");
    setenv("GPTQ_Q4_STAGE_BATCH", "2", 1);
    CHECK(q4_plan(1, qkv, lim).stage_batch == 2);
    CHECK(q4_plan(9, qkv, lim).stage_batch == 4);
    clear_switches();
}

TEST_CASE("q4_plan: every plan covers the layer and fits the block, at odd shapes") {
    clear_switches();
    std::mt19937 rng(20261204);
    std::uniform_int_distribution<int> dm(1, 32), dpro(0, 4);
    int cases = 0;
    for (const Q4Limits &lim : {hopper(), small_gpu()}) {
        for (int i = 0; i < 1500; ++i) {
            const RandomLayer r = random_layer(rng);
            const Q4Dev &w = r.w;
            const int M = dm(rng), prologue = dpro(rng);
            CAPTURE(r.K);
            CAPTURE(r.N);
            CAPTURE(r.group);
            CAPTURE(M);
            CAPTURE(prologue);
            check_invariants(q4_plan(M, w, lim, 0, prologue), M, w, prologue, lim);
            ++cases;
        }
    }
    CHECK(cases == 3000);
}

TEST_CASE("q4_scratch_need: the sampled row counts bound every row count's scratch") {
    // The backend sizes the fused kernel's scratch once from q4_scratch_need; a plan of any row
    // count up to the batch, under any prologue, must fit it (q4_fused refuses a plan that does not).
    clear_switches();
    long long plans = 0;
    for_random_batches(20261205, 48, [&](const Q4Limits &lim, const Q4Dev &w, int max_rows) {
        const Q4ScratchNeed need = q4_scratch_need(w, max_rows, lim);
        bool fits = true;
        for (const RowsPlan &rp : every_plan(w, max_rows, lim)) {
            const Q4Plan &p = rp.p;
            fits = fits && p.partial_floats <= need.partial_floats && p.sums_floats <= need.sums_floats &&
                   p.strips <= need.strips;
            ++plans;
        }
        CHECK(fits);
    });
    CHECK(plans > 50000);
}

TEST_CASE("q4_deferred_need: room for the deferred shares of every plan up to the rows asked") {
    // The backend sizes q|k|v's (one token) and gate|up's (few rows) deferred shares once from
    // q4_deferred_need; q4_fused refuses a plan whose shares need more.
    clear_switches();
    long long plans = 0;
    for_random_batches(20261206, 8, [&](const Q4Limits &lim, const Q4Dev &w, int max_rows) {
        size_t most = 0;
        for (const RowsPlan &rp : every_plan(w, max_rows, lim)) {
            const int m = rp.m;
            // The kernel's last write: split splits-1, row m-1, column NT*64-1 (Q4Out::defer).
            const size_t last = (size_t(rp.p.splits - 1) * m + (m - 1)) * w.NT * kQ4TileN + w.NT * kQ4TileN - 1;
            CHECK(q4_deferred_floats(rp.p, m, w) == last + 1);
            most = std::max(most, q4_deferred_floats(rp.p, m, w));
            ++plans;
        }
        CHECK(q4_deferred_need(w, max_rows, lim) == most);  // enough, and no more than some plan needs
    });
    CHECK(plans > 10000);
}

TEST_CASE("q4_wgmma_plan: the plans measured for the Llama shapes at 64-256 rows (H100 / H200)") {
    // BENCHMARKS.md "backend µs (plan)": q|k|v and gate|up into fp16 under stream-K over the 132
    // SMs (70B gate|up at 128 rows on the classic grid), o_proj and down into fp32 with K splits.
    clear_switches();
    struct Row {
        int K, N;
        bool out32;
        int M, bt, wgn, splits, sk;
    };
    const Row rows[] = {
        {4096, 12288, false, 64, 64, 2, 1, 132},  {4096, 12288, false, 128, 128, 1, 1, 132},
        {4096, 12288, false, 256, 256, 1, 1, 132}, {4096, 4096, true, 64, 64, 1, 4, 0},
        {4096, 4096, true, 128, 128, 1, 4, 0},     {4096, 4096, true, 256, 256, 1, 4, 0},
        {4096, 22016, false, 64, 64, 2, 1, 132},   {4096, 22016, false, 128, 128, 1, 1, 132},
        {4096, 22016, false, 256, 256, 1, 1, 132}, {11008, 4096, true, 64, 64, 1, 4, 0},
        {11008, 4096, true, 128, 128, 1, 4, 0},    {11008, 4096, true, 256, 256, 1, 4, 0},
        {8192, 57344, false, 64, 64, 2, 1, 132},   {8192, 57344, false, 128, 128, 2, 1, 0},
        {8192, 57344, false, 256, 256, 1, 1, 132}, {28672, 8192, true, 64, 64, 2, 4, 0},
        {28672, 8192, true, 128, 128, 2, 4, 0},    {28672, 8192, true, 256, 256, 1, 2, 0},
    };
    for (const Row &r : rows) {
        CAPTURE(r.K);
        CAPTURE(r.N);
        CAPTURE(r.M);
        const Q4WgmmaPlan p = q4_wgmma_plan(r.M, layer(r.K, r.N, 128, false), 132, r.out32, true);
        CHECK(p.bt == r.bt);
        CHECK(p.wgn == r.wgn);
        CHECK(p.splits == r.splits);
        CHECK(p.sk == r.sk);
    }
}

TEST_CASE("q4_wgmma_plan: every plan is valid, and fp32 outputs in a fixed order take whole tiles") {
    clear_switches();
    std::mt19937 rng(4096);
    std::uniform_int_distribution<int> dk(64, 30000), dn(64, 60000), dm(1, 512), dsm(1, 160), dbit(0, 1);
    for (int i = 0; i < 3000; ++i) {
        const int K = std::max(128, dk(rng) / 128 * 128), N = dn(rng), M = dm(rng), sms = dsm(rng);
        const bool out32 = dbit(rng), allow_sk = dbit(rng), unordered = dbit(rng);
        CAPTURE(K);
        CAPTURE(N);
        CAPTURE(M);
        CAPTURE(sms);
        const Q4WgmmaPlan p = q4_wgmma_plan(M, layer(K, N, 128, dbit(rng)), sms, out32, allow_sk, unordered);
        CHECK(q4_wgmma_plan_valid(p, out32));
        CHECK(p.splits >= 1);
        CHECK((p.sk == 0 || p.sk == sms));
        if (!allow_sk) CHECK(p.sk == 0);
        if (!out32) CHECK(p.splits == 1);
        // q4_set_atomic_accumulate(false): no partial sums added in whatever order they arrive.
        if (out32 && !unordered) {
            CHECK(p.splits == 1);
            CHECK(p.sk == 0);
        }
    }
}

#endif
