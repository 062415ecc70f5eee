// bench-kernels — 4-bit (group 128) matrix products against cuBLAS fp16, measured in one run.
//
// For each Llama weight shape K x N and M tokens: the time of q4 (fused kernel for M <= 64 per
// pass, dequantize + cuBLAS for large M: both are measured) and of cuBLAS fp16 on the same x, with
// CUDA events around back-to-back calls that rotate over enough weight copies that the 50 MB L2
// cannot hold them. The memory floor is (4-bit weights + fp16 scales) / the device-to-device copy
// bandwidth measured at the start of the same run.
//
// Small M (the fused kernel) is also timed inside a CUDA graph of back-to-back calls ("graph"
// columns), the way the backend's decode step runs it: standalone launches cost ~4-5 us each in
// this VM, which hides what the kernel itself takes. "C+= fp32" is the same product graph-timed
// adding into an fp32 output, the form of the products the backend ends in the residual (o_proj,
// down): with several splits it takes no last block to round the sums to fp16.
//
//   bench-kernels [--quick | --decode | --only SHAPE M]   (--only: one shape (index) at one M, for a
//   profiler; --quick: fewer shapes, for a smoke run; --decode: the 7B
//                                        shapes at M = 1 and 16 only, graph-timed split sweeps)
//   GPTQ_BENCH_BRIEF=1 leaves out the split sweeps, prologue and diagnostic rows at small M (A/B runs
//   of environment knobs, one short process each).
//   GPTQ_BENCH_HOT=1 keeps one copy of each weight (the 4-bit ones then stay in L2 where they fit):
//   what a product would take with its weights fetched into L2 beforehand (src/cuda/NOTES.md run V).
//   GPTQ_BENCH_SHAPES="K,N;K,N;..." replaces the shapes (after --only picks its M): what a product
//   takes as a function of its column tiles, e.g. blocks that fill every SM slot or leave some idle.
#include "bench_timer.cuh"
#include "cuda/cuda_check.cuh"
#include "cuda/elementwise.cuh"
#include "cuda/q4_gemm.cuh"
#include "cuda/q4_wgmma.cuh"
#include "cuda/random_fill.cuh"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

using namespace gptq;
using namespace gptq::cuda;
using namespace gptq::bench;

namespace {

// Relative L2 difference of two fp16 device arrays (a against the reference b).
double rel_l2_f16(const __half *a, const __half *b, size_t n) {
    std::vector<__half> ha(n), hb(n);
    CUDA_CHECK(cudaMemcpy(ha.data(), a, n * 2, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(hb.data(), b, n * 2, cudaMemcpyDeviceToHost));
    double num = 0, den = 0;
    for (size_t i = 0; i < n; ++i) {
        const double d = double(__half2float(ha[i])) - double(__half2float(hb[i]));
        num += d * d;
        den += double(__half2float(hb[i])) * __half2float(hb[i]);
    }
    return std::sqrt(num / std::max(den, 1e-300));
}

struct Shape {
    int K, N;
    std::string name;
};

} // namespace

int main(int argc, char **argv) try {
    const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
    const bool decode = argc > 1 && std::strcmp(argv[1], "--decode") == 0;
    // GPTQ_BENCH_BRIEF=1: at up to 32 rows only the default plan's times (no sweeps or diagnostics).
    const bool brief = std::getenv("GPTQ_BENCH_BRIEF") != nullptr;
    const bool hot = std::getenv("GPTQ_BENCH_HOT") != nullptr;
    int dev = 0;
    CUDA_CHECK(cudaSetDevice(dev));
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
    std::printf("device: %s, %d SMs, L2 %.0f MB, cc %d.%d\n", prop.name, prop.multiProcessorCount,
                prop.l2CacheSize / 1e6, prop.major, prop.minor);
    Timer timer;
    const double bw = copy_bandwidth(timer);
    std::printf("device-to-device copy: %.0f GB/s (bytes read + written)\n\n", bw / 1e9);

    std::vector<Shape> shapes = {{4096, 12288, "7B qkv"},      {4096, 4096, "7B o_proj"},
                                 {4096, 22016, "7B gate+up"},  {11008, 4096, "7B down"},
                                 {8192, 57344, "70B gate+up"}, {28672, 8192, "70B down"}};
    std::vector<int> Ms = {1, 16, 64, 256, 2048};
    if (quick) {
        shapes.resize(2);
        Ms = {1, 16, 256};
    }
    if (decode) {
        shapes.resize(4);
        Ms = {1, 16};
    }
    if (argc > 3 && std::strcmp(argv[1], "--only") == 0) {  // --only SHAPE_INDEX M: one row (profiling)
        shapes = {shapes.at(size_t(std::atoi(argv[2])))};
        Ms = {std::atoi(argv[3])};
    }
    if (const char *list = std::getenv("GPTQ_BENCH_SHAPES")) {
        shapes.clear();
        for (const char *p = list; *p;) {
            int k = 0, n = 0, used = 0;
            if (std::sscanf(p, "%d,%d%n", &k, &n, &used) != 2 || k <= 0 || n <= 0 || k % 128 || n % 64)
                throw std::runtime_error("GPTQ_BENCH_SHAPES: K,N pairs separated by ';' (K % 128 == 0, N % 64 == 0)");
            shapes.push_back({k, n, std::to_string(k) + "x" + std::to_string(n)});
            p += used;
            if (*p == ';') ++p;
        }
    }
    cudaStream_t gs = nullptr;
    CUDA_CHECK(cudaStreamCreateWithFlags(&gs, cudaStreamNonBlocking));
    const int group = 128;
    // At least 16 rows: the fused-vs-cuBLAS check below runs at M = 16 whatever the rows timed.
    const int maxM = std::max(16, *std::max_element(Ms.begin(), Ms.end()));

    cublasHandle_t cublas;
    CUBLAS_CHECK(cublasCreate(&cublas));
    void *cublas_ws = dev_alloc<char>(size_t(32) << 20);
    CUBLAS_CHECK(cublasSetWorkspace(cublas, cublas_ws, size_t(32) << 20));

    std::printf("%-12s %5s %5s | %9s %9s %9s %9s | %8s %8s %8s | %s\n", "shape", "K/N", "M", "q4 us", "q4 path",
                "fp16 us", "floor us", "q4/floor", "q4/fp16", "M/M1", "notes");
    std::vector<std::string> lines;
    for (const Shape &s : shapes) {
        const int K = s.K, N = s.N, KT = K / 16, NT = (N + 63) / 64, G = K / group;
        const size_t qw_words = size_t(NT) * KT * 128, sc_elems = size_t(NT) * G * 64;
        const double q4_bytes = double(K) * N / 2 + double(G) * N * 2;
        const double f16_bytes = double(K) * N * 2;
        const double footprint = 3.0 * prop.l2CacheSize;
        const int cq = hot ? 1 : std::max(2, int(std::ceil(footprint / q4_bytes)));
        const int cf = std::max(2, int(std::ceil(footprint / f16_bytes)));
        std::vector<uint32_t *> qw(cq);
        std::vector<__half *> sc(cq), w16(cf);
        for (int i = 0; i < cq; ++i) {
            qw[i] = dev_alloc<uint32_t>(qw_words);
            sc[i] = dev_alloc<__half>(sc_elems);
            fill_random_u32(qw[i], qw_words, 17 + i);
            fill_random_f16(sc[i], sc_elems, 91 + i, 0.001f, 0.01f);
        }
        for (int i = 0; i < cf; ++i) {
            w16[i] = dev_alloc<__half>(size_t(K) * N);
            fill_random_f16(w16[i], size_t(K) * N, 5 + i, -0.05f, 0.05f);
        }
        __half *x = dev_alloc<__half>(size_t(maxM) * K);
        fill_random_f16(x, size_t(maxM) * K, 3, -1.0f, 1.0f);
        // Prologue inputs: fp32 residual rows, the norm's weights, gate|up rows.
        float *x32 = dev_alloc<float>(size_t(kQ4FusedMaxM) * K), *normw = dev_alloc<float>(K);
        __half *gu = dev_alloc<__half>(size_t(kQ4FusedMaxM) * 2 * K);
        fill_random_f32(x32, size_t(kQ4FusedMaxM) * K, 7, -2.0f, 2.0f);
        fill_random_f32(normw, size_t(K), 8, 0.5f, 1.5f);
        fill_random_f16(gu, size_t(kQ4FusedMaxM) * 2 * K, 9, -3.0f, 3.0f);
        __half *y = dev_alloc<__half>(size_t(maxM) * N), *y2 = dev_alloc<__half>(size_t(maxM) * N);
        float *y32 = dev_alloc<float>(size_t(maxM) * N);
        CUDA_CHECK(cudaMemset(y32, 0, size_t(maxM) * N * sizeof(float)));
        CUDA_CHECK_LAUNCH();

        auto q4view = [&](int i) {
            Q4Dev w;
            w.qw = reinterpret_cast<const uint4 *>(qw[i % cq]);
            w.scales = sc[i % cq];
            w.K = K; w.N = N; w.KT = KT; w.NT = NT; w.G = G; w.group_kt = group / 16; w.zero = 8;
            return w;
        };
        Q4Workspace ws;
        ws.sm_count = prop.multiProcessorCount;
        ws.cublas = cublas;
        size_t pf = 0;
        for (int bps : {1, 2, 3, 4, 6, 8})
            for (int m : {1, 16, 32})
                for (int kind : {0, 1}) pf = std::max(pf, q4_plan(m, q4view(0), ws.sm_count, bps, kind).partial_floats);
        ws.fused.partial = dev_alloc<float>(pf);
        ws.fused.partial_floats = pf;
        ws.fused.sums_floats = size_t(kQ4FusedMaxM) * NT * 64;
        ws.fused.sums = dev_alloc<float>(ws.fused.sums_floats);
        CUDA_CHECK(cudaMemset(ws.fused.sums, 0, ws.fused.sums_floats * sizeof(float)));
        ws.fused.n_counters = NT;  // a strip per column tile at most
        ws.fused.counters = dev_alloc<unsigned>(ws.fused.n_counters);
        CUDA_CHECK(cudaMemset(ws.fused.counters, 0, ws.fused.n_counters * sizeof(unsigned)));
        ws.dequant_elems = size_t(KT) * 16 * NT * 64;
        ws.dequant = dev_alloc<__half>(ws.dequant_elems);
        const bool wgmma = q4_wgmma_supported();
        if (wgmma) {
            ws.xfrag_elems = q4_wgmma_xfrag_elems(maxM, q4_wgmma_kx(q4view(0)));
            ws.xfrag = dev_alloc<__half>(ws.xfrag_elems);
            ws.wgmma_sk.partial_floats = q4_wgmma_sk_floats(ws.sm_count);
            ws.wgmma_sk.partial = dev_alloc<float>(ws.wgmma_sk.partial_floats);
            ws.wgmma_sk.n_flags = ws.sm_count;
            ws.wgmma_sk.flags = dev_alloc<unsigned>(ws.sm_count);
            CUDA_CHECK(cudaMemset(ws.wgmma_sk.flags, 0, ws.sm_count * sizeof(unsigned)));
        }

        Q4Out o16;
        o16.ldo = N;

        // Correctness cross-check at M = 16: fused kernel vs dequantize + cuBLAS on copy 0.
        {
            o16.out16 = y;
            Q4Workspace wf = ws;
            wf.large_m = 1 << 30;
            q4_matmul(x, 16, K, q4view(0), o16, wf, 0);
            o16.out16 = y2;
            Q4Workspace wd = ws;
            wd.large_m = 1;
            q4_matmul(x, 16, K, q4view(0), o16, wd, 0);
            std::vector<__half> a(size_t(16) * N), b(size_t(16) * N);
            CUDA_CHECK(cudaMemcpy(a.data(), y, a.size() * 2, cudaMemcpyDeviceToHost));
            CUDA_CHECK(cudaMemcpy(b.data(), y2, b.size() * 2, cudaMemcpyDeviceToHost));
            double num = 0, den = 0;
            for (size_t i = 0; i < a.size(); ++i) {
                double d = double(__half2float(a[i])) - double(__half2float(b[i]));
                num += d * d;
                den += double(__half2float(b[i])) * __half2float(b[i]);
            }
            std::printf("%-12s check: fused vs dequant+cuBLAS rel L2 diff %.2e\n", s.name.c_str(),
                        std::sqrt(num / den));
        }

        double t1 = 0, t1g = 0, t1acc = 0;
        for (int M : Ms) {
            const int iters = M <= 64 ? 100 : (M <= 256 ? 30 : 10);
            o16.out16 = y;
            double fp16 = timer.us(
                [&](int i) {
                    dense_matmul_cublas(cublas, x, M, K, w16[i % cf], K, N, K, o16, 0);
                },
                iters);
            std::string notes;
            double best = 0, graph_us = 0, acc_us = 0;
            const char *path = "fused";
            if (M <= kQ4FusedMaxM) {
                // Sweep the split heuristic: blocks per SM the split aims for.
                int best_bps = 0;
                for (int bps : {1, 2, 3, 4, 6, 8}) {
                    if (brief) break;
                    Q4Plan p = q4_plan(M, q4view(0), ws.sm_count, bps);
                    double t = timer.us([&](int i) { q4_fused(x, M, K, q4view(i), o16, p, ws.fused, 0); }, iters);
                    char buf[64];
                    std::snprintf(buf, sizeof buf, "bps%d/S%d:%.1f ", bps, p.splits, t);
                    notes += buf;
                    if (best == 0 || t < best) { best = t; best_bps = bps; }
                }
                Q4Plan p = q4_plan(M, q4view(0), ws.sm_count);
                double tdef = timer.us([&](int i) { q4_fused(x, M, K, q4view(i), o16, p, ws.fused, 0); }, iters);
                char buf[160];
                std::snprintf(buf, sizeof buf, "| default %.1f (best bps %d)", tdef, best_bps);
                notes += buf;
                // Graph-timed: the default plan, then the split sweep with the splits rounded up
                // (ceil) and rounded down to one wave (fit).
                double tg = timer.us_graph([&](int i) { q4_fused(x, M, K, q4view(i), o16, p, ws.fused, gs); }, iters, gs);
                std::snprintf(buf, sizeof buf, " | graph %.1f", tg);
                notes += buf;
                graph_us = tg;
                // "C+= fp32" (see the top of the file): the split sums added with atomics.
                Q4Out o32;
                o32.out32 = y32;
                o32.ldo = N;
                acc_us = timer.us_graph([&](int i) { q4_fused(x, M, K, q4view(i), o32, p, ws.fused, gs); }, iters, gs);
                for (int fit = 0; fit <= 1 && !brief; ++fit) {
                    q4_set_split_fit(fit);
                    notes += fit ? " fit:" : " ceil:";
                    for (int bps : {1, 2, 3, 4}) {
                        Q4Plan pg = q4_plan(M, q4view(0), ws.sm_count, bps);
                        double t = timer.us_graph(
                            [&](int i) { q4_fused(x, M, K, q4view(i), o16, pg, ws.fused, gs); }, iters, gs);
                        std::snprintf(buf, sizeof buf, " %d/S%d:%.1f", bps, pg.splits, t);
                        notes += buf;
                    }
                }
                q4_set_split_fit(-1);
                // Prologue fusions at the default plan: RMSNorm (fp32 rows) and SwiGLU (gate|up).
                if (!brief) {
                    Q4Prologue pn;
                    pn.kind = 1;
                    pn.x32 = x32;
                    pn.ldx32 = K;
                    pn.norm_w = normw;
                    pn.eps = 1e-5f;
                    const double sep = timer.us_graph(
                        [&](int i) {
                            rmsnorm(x32, K, nullptr, M, K, normw, 1e-5f, nullptr, x, K, gs);
                            q4_fused(x, M, K, q4view(i), o16, p, ws.fused, gs);
                        },
                        iters, gs);
                    // A prologue stages the activations (16 rows otherwise read them directly).
                    const Q4Plan pp1 = q4_plan(M, q4view(0), ws.sm_count, 0, 1), pp2 = q4_plan(M, q4view(0), ws.sm_count, 0, 2);
                    const double fus = timer.us_graph(
                        [&](int i) { q4_fused(nullptr, M, 0, q4view(i), o16, pp1, ws.fused, gs, &pn); }, iters, gs);
                    setenv("GPTQ_Q4_NORM_STASH", "0", 1);
                    const double fus_nostash = timer.us_graph(
                        [&](int i) { q4_fused(nullptr, M, 0, q4view(i), o16, pp1, ws.fused, gs, &pn); }, iters, gs);
                    unsetenv("GPTQ_Q4_NORM_STASH");
                    Q4Prologue ps;
                    ps.kind = 2;
                    ps.gu = gu;
                    ps.ldgu = 2 * K;
                    const double sep2 = timer.us_graph(
                        [&](int i) {
                            silu_mul(gu, M, K, x, gs);
                            q4_fused(x, M, K, q4view(i), o16, p, ws.fused, gs);
                        },
                        iters, gs);
                    const double fus2 = timer.us_graph(
                        [&](int i) { q4_fused(nullptr, M, 0, q4view(i), o16, pp2, ws.fused, gs, &ps); }, iters, gs);
                    std::snprintf(buf, sizeof buf,
                                  " | rmsnorm+q4 %.1f fused %.1f (no stash %.1f), silu+q4 %.1f fused %.1f", sep, fus,
                                  fus_nostash, sep2, fus2);
                    notes += buf;
                    // fp32 accumulate with the splits summed in order by the last block (no atomics;
                    // the atomics' time is the C+= column), then the atomics under other splits.
                    q4_set_atomic_accumulate(false);
                    const double ordered = timer.us_graph(
                        [&](int i) { q4_fused(x, M, K, q4view(i), o32, p, ws.fused, gs); }, iters, gs);
                    q4_set_atomic_accumulate(true);
                    std::snprintf(buf, sizeof buf, " | out32 ordered %.1f, atomic bps", ordered);
                    notes += buf;
                    for (int bps : {1, 2, 4, 6}) {
                        Q4Plan pa = q4_plan(M, q4view(0), ws.sm_count, bps);
                        const double t = timer.us_graph(
                            [&](int i) { q4_fused(x, M, K, q4view(i), o32, pa, ws.fused, gs); }, iters, gs);
                        std::snprintf(buf, sizeof buf, " %d/S%d:%.1f", bps, pa.splits, t);
                        notes += buf;
                    }
                }
                if ((M == 1 || M == 16) && !brief) {  // where the time goes: loads only, compute only (graph-timed), an empty launch
                    double td[4];
                    for (int mode = 1; mode <= 2; ++mode)
                        td[mode] = timer.us_graph(
                            [&](int i) { q4_fused_diagnostic(mode, x, M, K, q4view(i), o16, p, ws.fused, gs); }, iters,
                            gs);
                    td[3] = timer.us([&](int i) { q4_fused_diagnostic(3, x, M, K, q4view(i), o16, p, ws.fused, 0); },
                                     iters);
                    std::snprintf(buf, sizeof buf, " | graph: loads-only %.1f compute-only %.1f; empty launch %.1f",
                                  td[1], td[2], td[3]);
                    notes += buf;
                    if (M == 1) {  // the loads-only kernel without its staging, then without its epilogue
                        double tl[3];
                        for (int mode = 4; mode <= 6; ++mode)
                            tl[mode - 4] = timer.us_graph(
                                [&](int i) { q4_fused_diagnostic(mode, x, M, K, q4view(i), o16, p, ws.fused, gs); },
                                iters, gs);
                        std::snprintf(buf, sizeof buf, "; loads-only w/o scales %.1f w/o staging %.1f w/o epilogue %.1f",
                                      tl[0], tl[1], tl[2]);
                        notes += buf;
                        // The product's own kernel with its epilogue cut: no sum across splits, none at all.
                        double tp[2];
                        for (int mode = 7; mode <= 8; ++mode)
                            tp[mode - 7] = timer.us_graph(
                                [&](int i) { q4_fused_diagnostic(mode, x, M, K, q4view(i), o16, p, ws.fused, gs); },
                                iters, gs);
                        std::snprintf(buf, sizeof buf, "; product w/o cross-split sum %.1f w/o epilogue %.1f", tp[0],
                                      tp[1]);
                        notes += buf;
                    }
                }
                best = tdef;
            } else {
                Q4Workspace wf = ws;
                wf.large_m = 1 << 30;
                double tf = timer.us([&](int i) { q4_matmul(x, M, K, q4view(i), o16, wf, 0); }, iters);
                Q4Workspace wd = ws;
                wd.large_m = 1;
                double td = timer.us([&](int i) { q4_matmul(x, M, K, q4view(i), o16, wd, 0); }, iters);
                double tq = timer.us([&](int i) { q4_dequant_f16(q4view(i), ws.dequant, 0); }, iters);
                char buf[256];
                std::snprintf(buf, sizeof buf, "fused-passes %.1f, dequant+cuBLAS %.1f (dequant alone %.1f)", tf, td,
                              tq);
                notes = buf;
                best = std::min(tf, td);
                path = tf <= td ? "fused" : "deq+cublas";
                if (wgmma) {
                    // The wgmma kernel (activation permute included): its planned tile, then every
                    // tile forced; fp32 accumulation (the residual stream) with K splits.
                    Q4Workspace ww = ws;
                    ww.wgmma = true;
                    ww.wgmma_min_m = 1;
                    ww.wgmma_max_m = 1 << 30;
                    o16.out16 = y2;
                    q4_matmul(x, M, K, q4view(0), o16, ww, 0);
                    o16.out16 = y;
                    q4_matmul(x, M, K, q4view(0), o16, wd, 0);
                    const double diff = rel_l2_f16(y2, y, size_t(M) * N);
                    const double tw = timer.us([&](int i) { q4_matmul(x, M, K, q4view(i), o16, ww, 0); }, iters);
                    const Q4WgmmaPlan pl = q4_wgmma_plan(M, q4view(0), ws.sm_count, false, true);
                    std::snprintf(buf, sizeof buf, " | wgmma %.1f (bt %d wgn %d sk %d; vs deq+cuBLAS rel L2 %.1e) forced:",
                                  tw, pl.bt, pl.wgn, pl.sk, diff);
                    notes += buf;
                    // Every tile on the classic grid, then two tiles under stream-K.
                    const int tiles[][3] = {{64, 1, 0}, {64, 2, 0},   {128, 1, 0},          {128, 2, 0},
                                            {256, 1, 0}, {128, 1, ws.sm_count}, {256, 1, ws.sm_count}};
                    for (const auto &t : tiles) {
                        ww.wgmma_force[0] = t[0], ww.wgmma_force[1] = t[1], ww.wgmma_force[2] = 1, ww.wgmma_force[3] = t[2];
                        const double tt = timer.us([&](int i) { q4_matmul(x, M, K, q4view(i), o16, ww, 0); }, iters);
                        std::snprintf(buf, sizeof buf, " %dx%d%s:%.1f", t[0], t[1], t[2] ? "sk" : "", tt);
                        notes += buf;
                    }
                    Q4Out o32w;
                    o32w.out32 = y32;
                    o32w.ldo = N;
                    ww.wgmma_force[0] = 0;
                    const Q4WgmmaPlan p32 = q4_wgmma_plan(M, q4view(0), ws.sm_count, true, true);
                    const double t32 = timer.us([&](int i) { q4_matmul(x, M, K, q4view(i), o32w, ww, 0); }, iters);
                    const Q4WgmmaPlan c32 = q4_wgmma_plan(M, q4view(0), ws.sm_count, true, false);
                    ww.wgmma_force[0] = c32.bt, ww.wgmma_force[1] = c32.wgn, ww.wgmma_force[2] = c32.splits;
                    ww.wgmma_force[3] = 0;
                    const double c32t = timer.us([&](int i) { q4_matmul(x, M, K, q4view(i), o32w, ww, 0); }, iters);
                    ww.wgmma_force[0] = 0;
                    std::snprintf(buf, sizeof buf, " | out32 %.1f (bt %d wgn %d splits %d sk %d; classic grid %dx%d/%d %.1f)",
                                  t32, p32.bt, p32.wgn, p32.splits, p32.sk, c32.bt, c32.wgn, c32.splits, c32t);
                    notes += buf;
                    if (tw < best) {
                        best = tw;
                        path = "wgmma";
                    }
                }
            }
            if (M == 1) t1 = best;
            const double floor_us = q4_bytes / bw * 1e6;
            if (M == 1) t1g = graph_us, t1acc = acc_us;
            char acc[96] = "";
            if (acc_us > 0)
                std::snprintf(acc, sizeof acc, " | C+= fp32 %6.1f %5.2fx floor %5.2fx M1", acc_us, acc_us / floor_us,
                              t1acc > 0 ? acc_us / t1acc : 0.0);
            char line[2400];
            std::snprintf(line, sizeof line,
                          "%-12s %5d %5d | %9.1f %9s %9.1f %9.1f | %8.2f %8.2f %8.2f | graph %6.1f %5.2fx floor %5.2fx M1%s | %s",
                          s.name.c_str(), K, M, best, path, fp16, floor_us, best / floor_us, best / fp16,
                          t1 > 0 ? best / t1 : 0.0, graph_us, graph_us / floor_us, t1g > 0 ? graph_us / t1g : 0.0,
                          acc, notes.c_str());
            std::printf("%s\n", line);
            std::fflush(stdout);
            lines.push_back(line);
        }
        for (auto p : qw) CUDA_CHECK(cudaFree(p));
        for (auto p : sc) CUDA_CHECK(cudaFree(p));
        for (auto p : w16) CUDA_CHECK(cudaFree(p));
        CUDA_CHECK(cudaFree(x));
        CUDA_CHECK(cudaFree(x32));
        CUDA_CHECK(cudaFree(normw));
        CUDA_CHECK(cudaFree(gu));
        CUDA_CHECK(cudaFree(y));
        CUDA_CHECK(cudaFree(y2));
        CUDA_CHECK(cudaFree(y32));
        CUDA_CHECK(cudaFree(ws.fused.partial));
        CUDA_CHECK(cudaFree(ws.fused.sums));
        CUDA_CHECK(cudaFree(ws.fused.counters));
        CUDA_CHECK(cudaFree(ws.dequant));
        if (ws.xfrag) CUDA_CHECK(cudaFree(ws.xfrag));
        if (ws.wgmma_sk.partial) CUDA_CHECK(cudaFree(ws.wgmma_sk.partial));
        if (ws.wgmma_sk.flags) CUDA_CHECK(cudaFree(ws.wgmma_sk.flags));
    }
    std::printf("\nsummary (q4 = best path; floor = 4-bit weights + fp16 scales at the measured copy bandwidth)\n");
    for (auto &l : lines) std::printf("%s\n", l.c_str());
    cublasDestroy(cublas);
    cudaFree(cublas_ws);
    cudaStreamDestroy(gs);
    return 0;
} catch (const std::exception &e) {
    std::fprintf(stderr, "bench-kernels: %s\n", e.what());
    return 1;
}
