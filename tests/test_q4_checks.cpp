// test_q4_checks.cpp — the 4-bit kernels' launchers refuse a bad call with an error naming what
// is wrong, before they touch the device (so no GPU is needed: every pointer here is a host
// buffer the launcher must never read). Each case checks the reason, not just that something threw:
// with the check gone, the launch itself would fail too, for another reason.
#include <doctest/doctest.h>

#include "testutil.h"

GPTQ_TEST_REQUIRES("cuda-build")

#ifdef GPTQ_USE_CUDA

#include "common.h"
#include "cuda/q4_gemm.cuh"
#include "cuda/q4_wgmma.cuh"

#include <string>
#include <vector>

using namespace gptq;
using namespace gptq::cuda;

namespace {

// A 4096 x 12288 layer (the 7B q|k|v shape), g128, uniform zeros; no weights behind it.
Q4Dev qkv_layer() {
    Q4Dev w;
    w.K = 4096;
    w.N = 12288;
    w.KT = 256;
    w.NT = 192;
    w.G = 32;
    w.group_kt = 8;
    return w;
}

// A valid call's pieces: x, an fp16 output, a one-split plan; each case spoils one thing.
struct Call {
    alignas(16) __half x[32 * 4096 + 8];
    alignas(16) __half y[1];
    alignas(16) float sums[1];
    Q4Dev w = qkv_layer();
    Q4Out out;
    Q4Plan plan;
    Q4Scratch scratch;
    Q4Prologue pro;
    int M = 1, ldx = 4096;
    Call() {
        out.out16 = y;
        out.ldo = w.N;
        plan.strips = w.NT / 2;
    }
};

// The reason q4_fused gave, or "" when it did not throw.
std::string refusal(Call &c, bool with_prologue = false) {
    try {
        q4_fused(c.x, c.M, c.ldx, c.w, c.out, c.plan, c.scratch, nullptr, with_prologue ? &c.pro : nullptr);
    } catch (const Error &e) {
        CHECK(e.status() == GPTQ_ERR_BACKEND);
        return e.what();
    }
    return "";
}

bool names(const std::string &reason, const char *what) { return reason.find(what) != std::string::npos; }

// The reason f gave (a gptq::Error of status BACKEND), or "" when it did not throw.
template <class F> std::string refusal_of(F &&f) {
    try {
        f();
    } catch (const Error &e) {
        CHECK(e.status() == GPTQ_ERR_BACKEND);
        return e.what();
    }
    return "";
}

} // namespace

TEST_CASE("q4_fused refuses a bad call before touching the device, saying why") {
    {
        Call c;
        c.M = 0;
        CHECK(names(refusal(c), "M = 0 outside 1..32"));
        c.M = kQ4FusedMaxM + 1;
        CHECK(names(refusal(c), "outside 1..32"));
    }
    {
        Call c;
        c.out.out16 = nullptr;
        CHECK(names(refusal(c), "exactly one output"));
        c.out.out16 = c.y;
        c.out.out32 = c.sums;
        CHECK(names(refusal(c), "exactly one output"));
    }
    {
        Call c;  // a deferred output: no bias, and room for every split's share
        c.out.out16 = nullptr;
        c.out.defer = c.sums;
        c.plan.splits = 2;
        c.plan.partial_floats = 0;
        c.scratch.partial_floats = size_t(1) << 40;
        c.scratch.n_counters = c.w.NT;
        c.out.defer_floats = size_t(2) * c.M * c.w.NT * kQ4TileN - 1;  // one float short
        CHECK(names(refusal(c), "deferred shares need"));
        c.out.defer_floats += 1;
        c.out.bias = c.y;
        CHECK(names(refusal(c), "takes no bias"));
    }
    {
        Call c;
        c.out.ldo = c.w.N + 1;
        CHECK(names(refusal(c), "ldo must be even"));
    }
    {
        Call c;
        c.ldx = 4100;  // rows not 16 bytes apart
        CHECK(names(refusal(c), "x must be 16-byte aligned"));
        c.ldx = 4096;
        try {
            q4_fused(c.x + 1, c.M, c.ldx, c.w, c.out, c.plan, c.scratch, nullptr);
            FAIL("an unaligned x was launched");
        } catch (const Error &e) {
            CHECK(names(e.what(), "x must be 16-byte aligned"));
        }
    }
    {
        Call c;
        c.pro.kind = 5;
        CHECK(names(refusal(c, true), "unknown prologue 5"));
        c.pro.kind = 2;  // SwiGLU: the gate|up rows must be 16-byte aligned
        c.pro.gu = c.x + 1;
        c.pro.ldgu = 2 * c.w.K;
        CHECK(names(refusal(c, true), "SwiGLU prologue needs"));
    }
    {
        Call c;
        c.plan.splits = 4;
        c.plan.partial_floats = size_t(4) * c.M * c.w.NT * kQ4TileN;
        c.scratch.partial_floats = c.plan.partial_floats - 1;
        c.scratch.n_counters = c.w.NT;
        CHECK(names(refusal(c), "scratch too small"));
        c.scratch.partial_floats += 1;
        c.scratch.n_counters = c.plan.strips - 1;
        CHECK(names(refusal(c), "scratch too small"));
    }
    {
        Call c;
        c.plan.tiles_per_block = 3;
        CHECK(names(refusal(c), "column tiles per block"));
        c.plan.tiles_per_block = 1;
        c.M = 17;  // one tile per block: up to 16 rows
        CHECK(names(refusal(c), "column tiles per block"));
    }
    {
        Call c;
        c.plan.x_direct = 1;  // direct activations: 9..16 rows only
        c.M = 4;
        CHECK(names(refusal(c), "direct activations need"));
    }
}

TEST_CASE("q4_wgmma and q4_matmul refuse what their paths cannot take, before touching the device") {
    alignas(16) static __half x[256 * 4096];
    alignas(16) static __half y[1];
    alignas(16) static float sums[1];
    const Q4Dev w = qkv_layer();
    Q4Out out;
    out.out16 = y;
    out.ldo = w.N;
    const Q4WgScratch sk;
    const Q4WgmmaPlan plan{256, 1, 1, 0};
    SUBCASE("q4_wgmma") {
        Q4Out deferred;
        deferred.defer = sums;
        CHECK(names(refusal_of([&] { q4_wgmma(x, 256, 256, w, deferred, plan, sk, nullptr); }), "exactly one of"));
        const Q4WgmmaPlan bad{32, 1, 1, 0};
        CHECK(names(refusal_of([&] { q4_wgmma(x, 256, 256, w, out, bad, sk, nullptr); }), "invalid plan"));
        const Q4WgmmaPlan split16{256, 1, 2, 0};  // K splits add into fp32 outputs only
        CHECK(names(refusal_of([&] { q4_wgmma(x, 256, 256, w, out, split16, sk, nullptr); }), "invalid plan"));
        Q4Dev g16 = w;  // groups of 16 rows: a tile pair would straddle two
        g16.group_kt = 1;
        CHECK(names(refusal_of([&] { q4_wgmma(x, 256, 256, g16, out, plan, sk, nullptr); }), "whole tile pairs"));
        CHECK(names(refusal_of([&] { q4_wgmma(x, 200, 200, w, out, plan, sk, nullptr); }), "padded rows"));
        CHECK(names(refusal_of([&] { q4_wgmma(x, 257, 256, w, out, plan, sk, nullptr); }), "padded rows"));
    }
    SUBCASE("q4_matmul and q4_matmul_pro") {
        Q4Workspace ws;  // no wgmma, no dequantize + cuBLAS: the fused kernel in passes of 32 rows
        Q4Out deferred;
        deferred.defer = sums;
        deferred.defer_floats = size_t(1) << 40;
        CHECK(names(refusal_of([&] { q4_matmul(x, 33, 4096, w, deferred, ws, nullptr); }), "takes one pass"));
        Q4Prologue pro;
        pro.kind = 3;  // the SwiGLU of deferred shares: one pass too
        CHECK(names(refusal_of([&] { q4_matmul_pro(pro, 33, w, out, ws, nullptr); }), "one pass"));
        ws.wgmma = true;  // from wgmma_min_m rows on, the wgmma kernel: no prologue there
        ws.xfrag = x;
        CHECK(names(refusal_of([&] { q4_matmul_pro(Q4Prologue(), ws.wgmma_min_m, w, out, ws, nullptr); }),
                    "many-row path"));
        ws.wgmma = false;
        ws.xfrag = nullptr;
        ws.dequant = x;  // dequantize + cuBLAS from large_m rows on: no deferred output there
        ws.dequant_elems = size_t(256) * 4096;
        ws.cublas = reinterpret_cast<cublasHandle_t>(sums);  // never used: refused before
        CHECK(names(refusal_of([&] { q4_matmul(x, ws.large_m, 4096, w, deferred, ws, nullptr); }),
                    "needs the fused kernel"));
    }
}

#endif
