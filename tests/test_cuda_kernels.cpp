// test_cuda_kernels.cpp — every CUDA kernel against a CPU reference on random data at odd shapes.
//
// Outputs are poisoned (NaN bit patterns) before each launch, so an element the kernel forgot to
// write fails the comparison. References are computed in double from the original GPTQ tensors
// (packed here independently of the library's repack), never from the kernels' own layout.
#include <doctest/doctest.h>

#include "testutil.h"

GPTQ_TEST_REQUIRES("cuda")

#ifdef GPTQ_USE_CUDA

#include "common.h"
#include "cuda/attention.cuh"
#include "cuda/cuda_check.cuh"
#include "cuda/elementwise.cuh"
#include "cuda/q4_gemm.cuh"
#include "cuda/q4_wgmma.cuh"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

using namespace gptq;
using namespace gptq::cuda;

namespace {

template <class T> struct Dev {
    T *p = nullptr;
    size_t n = 0;
    explicit Dev(size_t count) : n(count) { CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(count, 1) * sizeof(T))); }
    Dev(const std::vector<T> &h) : Dev(h.size()) { upload(h); }
    ~Dev() { cudaFree(p); }
    Dev(const Dev &) = delete;
    Dev &operator=(const Dev &) = delete;
    void upload(const std::vector<T> &h) {
        CUDA_CHECK(cudaMemcpy(p, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
    }
    std::vector<T> download() const {
        std::vector<T> h(n);
        CUDA_CHECK(cudaDeviceSynchronize());
        CUDA_CHECK(cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost));
        return h;
    }
    void poison() { CUDA_CHECK(cudaMemset(p, 0xFF, n * sizeof(T))); }  // NaN in fp16 and fp32
};

using h16 = uint16_t;  // fp16 bits on the host

std::vector<h16> random_f16(size_t n, std::mt19937 &rng, float lo, float hi) {
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<h16> v(n);
    for (auto &x : v) x = f32_to_f16(d(rng));
    return v;
}
double f16d(h16 h) { return double(f16_to_f32(h)); }

// Relative L2 error, failing on any non-finite value.
double rel_err(const std::vector<double> &ref, const std::vector<double> &got) {
    REQUIRE(ref.size() == got.size());
    double num = 0, den = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
        if (!std::isfinite(got[i])) {
            FAIL_CHECK("non-finite output at " << i);
            return INFINITY;
        }
        num += (ref[i] - got[i]) * (ref[i] - got[i]);
        den += ref[i] * ref[i];
    }
    return std::sqrt(num / std::max(den, 1e-300));
}

// ---------------------------------------------------------------- GPTQ 4-bit test layers

struct GptqLayer {
    int K, N, G, gs, format;
    std::vector<int> codes;   // [K][N]
    std::vector<int> zeros;   // [G][N] true zero points
    std::vector<int32_t> qweight, qzeros, g_idx;
    std::vector<h16> scales;  // [G][N]
};

GptqLayer make_layer(int K, int N, int group_size, bool act_order, bool asym, int format, std::mt19937 &rng) {
    GptqLayer L;
    L.K = K; L.N = N; L.format = format;
    L.gs = group_size < 0 ? K : group_size;
    L.G = K / L.gs;
    std::uniform_int_distribution<int> code(0, 15);
    L.codes.resize(size_t(K) * N);
    for (auto &c : L.codes) c = code(rng);
    std::uniform_int_distribution<int> zd(format == 1 ? 1 : 0, 15);
    L.zeros.resize(size_t(L.G) * N);
    for (auto &z : L.zeros) z = asym ? zd(rng) : 8;
    L.scales = random_f16(size_t(L.G) * N, rng, 0.002f, 0.03f);
    // g_idx: groups are contiguous in a random order of the rows (act-order) or in row order.
    std::vector<int> order(K);
    std::iota(order.begin(), order.end(), 0);
    if (act_order) std::shuffle(order.begin(), order.end(), rng);
    L.g_idx.resize(K);
    for (int i = 0; i < K; ++i) L.g_idx[order[i]] = i / L.gs;
    // Packing per FORMAT.md: codes along K (8 per word), zeros along N, v1 stores z - 1.
    L.qweight.assign(size_t(K / 8) * N, 0);
    for (int k = 0; k < K; ++k)
        for (int n = 0; n < N; ++n)
            L.qweight[size_t(k / 8) * N + n] |= int32_t(uint32_t(L.codes[size_t(k) * N + n]) << (4 * (k % 8)));
    L.qzeros.assign(size_t(L.G) * (N / 8), 0);
    for (int g = 0; g < L.G; ++g)
        for (int n = 0; n < N; ++n) {
            uint32_t stored = uint32_t(L.zeros[size_t(g) * N + n] - (format == 1 ? 1 : 0)) & 0xF;
            L.qzeros[size_t(g) * (N / 8) + n / 8] |= int32_t(stored << (4 * (n % 8)));
        }
    return L;
}

double weight(const GptqLayer &L, int k, int n) {
    int g = L.g_idx[k];
    return f16d(L.scales[size_t(g) * L.N + n]) * double(L.codes[size_t(k) * L.N + n] - L.zeros[size_t(g) * L.N + n]);
}

std::vector<double> ref_matmul(const GptqLayer &L, const std::vector<h16> &x, int M) {
    std::vector<double> W(size_t(L.K) * L.N);
    for (int k = 0; k < L.K; ++k)
        for (int n = 0; n < L.N; ++n) W[size_t(k) * L.N + n] = weight(L, k, n);
    std::vector<double> y(size_t(M) * L.N, 0.0);
    for (int m = 0; m < M; ++m)
        for (int k = 0; k < L.K; ++k) {
            double xv = f16d(x[size_t(m) * L.K + k]);
            const double *wr = &W[size_t(k) * L.N];
            double *yr = &y[size_t(m) * L.N];
            for (int n = 0; n < L.N; ++n) yr[n] += xv * wr[n];
        }
    return y;
}

struct DevQ4 {
    Q4Host host;
    std::unique_ptr<Dev<uint32_t>> qw;
    std::unique_ptr<Dev<h16>> scales, zeros;
    std::unique_ptr<Dev<int32_t>> perm;
    Q4Dev view;
};

std::unique_ptr<DevQ4> upload_layer(const GptqLayer &L) {
    auto d = std::make_unique<DevQ4>();
    std::string why;
    REQUIRE_MESSAGE(repack_q4(L.qweight.data(), L.qzeros.data(), L.scales.data(), L.g_idx.data(), L.K, L.N, L.G,
                              L.gs, L.format, d->host, &why),
                    why);
    const Q4Host &h = d->host;
    d->qw = std::make_unique<Dev<uint32_t>>(h.qw);
    d->scales = std::make_unique<Dev<h16>>(h.scales);
    if (!h.uniform_zero) d->zeros = std::make_unique<Dev<h16>>(h.zeros);
    if (!h.perm.empty()) d->perm = std::make_unique<Dev<int32_t>>(h.perm);
    Q4Dev &v = d->view;
    v.qw = reinterpret_cast<const uint4 *>(d->qw->p);
    v.scales = reinterpret_cast<const __half *>(d->scales->p);
    v.zeros = d->zeros ? reinterpret_cast<const __half *>(d->zeros->p) : nullptr;
    v.perm = d->perm ? d->perm->p : nullptr;
    v.K = h.K; v.N = h.N; v.KT = h.KT; v.NT = h.NT; v.G = h.G; v.group_kt = h.group_kt; v.zero = h.zero;
    return d;
}

int sm_count() {
    int dev = 0, n = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
    return n;
}

struct LayerCase {
    int K, N, gs;
    bool act_order, asym;
    int format;
};
const LayerCase kCases[] = {
    {4096 + 128, 8 * 37, 128, false, false, 1},  // odd N, many groups, symmetric v1
    {1024, 3000, 32, true, true, 1},             // act-order, asymmetric v1 (zeros 1..15)
    {8 * 91, 200, -1, false, true, 2},           // one group, K not a multiple of 16, v2 zeros incl. 0
    {2048, 512, 64, true, false, 2},             // act-order, symmetric v2
};

// Runs the GPU product of layer L on x (original column order) and returns y as doubles.
std::vector<double> gpu_q4(const DevQ4 &d, const std::vector<h16> &x, int M, int mode, const Q4Workspace &ws,
                           const Q4Plan *plan, const std::vector<float> *acc_init, const std::vector<h16> *bias) {
    const Q4Dev &w = d.view;
    Dev<h16> dx(x);
    const __half *xp = reinterpret_cast<const __half *>(dx.p);
    std::unique_ptr<Dev<h16>> gathered;
    if (w.perm) {
        gathered = std::make_unique<Dev<h16>>(size_t(M) * w.K);
        gather_columns(xp, M, w.K, w.perm, w.K, reinterpret_cast<__half *>(gathered->p), 0);
        xp = reinterpret_cast<const __half *>(gathered->p);
    }
    std::unique_ptr<Dev<h16>> dbias;
    if (bias) dbias = std::make_unique<Dev<h16>>(*bias);
    Q4Out out;
    out.ldo = w.N;
    out.bias = dbias ? reinterpret_cast<const __half *>(dbias->p) : nullptr;
    std::vector<double> y(size_t(M) * w.N);
    if (acc_init) {
        Dev<float> dy(*acc_init);
        out.out32 = dy.p;
        if (plan) q4_fused(xp, M, w.K, w, out, *plan, ws.fused, 0);
        else q4_matmul(xp, M, w.K, w, out, ws, 0);
        CUDA_CHECK_LAUNCH();
        auto h = dy.download();
        for (size_t i = 0; i < y.size(); ++i) y[i] = h[i];
    } else {
        Dev<h16> dy(size_t(M) * w.N);
        dy.poison();
        out.out16 = reinterpret_cast<__half *>(dy.p);
        if (plan) q4_fused(xp, M, w.K, w, out, *plan, ws.fused, 0);
        else q4_matmul(xp, M, w.K, w, out, ws, 0);
        CUDA_CHECK_LAUNCH();
        auto h = dy.download();
        for (size_t i = 0; i < y.size(); ++i) y[i] = f16d(h[i]);
    }
    (void)mode;
    return y;
}

// q4_matmul_pro (prologue pro, M rows) into a zeroed fp32 output [M, N]; the result as doubles.
std::vector<double> gpu_q4_pro_f32(const Q4Prologue &pro, int M, const Q4Dev &w, int N, const Q4Workspace &ws) {
    Dev<float> y(size_t(M) * N);
    CUDA_CHECK(cudaMemset(y.p, 0, y.n * sizeof(float)));
    Q4Out o;
    o.ldo = N;
    o.out32 = y.p;
    q4_matmul_pro(pro, M, w, o, ws, 0);
    CUDA_CHECK_LAUNCH();
    auto h = y.download();
    return std::vector<double>(h.begin(), h.end());
}

// True, and says so, where the sm_90a wgmma kernel cannot run (no Hopper GPU or no sm_90a code).
bool wgmma_unavailable() {
    if (q4_wgmma_supported()) return false;
    MESSAGE("skipped: the wgmma kernel needs a Hopper GPU and an sm_90a build");
    return true;
}

struct Workspace {
    std::unique_ptr<Dev<float>> partial, sums;
    std::unique_ptr<Dev<unsigned>> counters;
    std::unique_ptr<Dev<h16>> deq, xfrag;
    std::unique_ptr<Dev<float>> sk_partial;
    std::unique_ptr<Dev<unsigned>> sk_flags;
    cublasHandle_t cublas = nullptr;
    Q4Workspace ws;
    Workspace() {
        const size_t pf = size_t(1) << 24;
        partial = std::make_unique<Dev<float>>(pf);
        counters = std::make_unique<Dev<unsigned>>(4096);
        CUDA_CHECK(cudaMemset(counters->p, 0, 4096 * sizeof(unsigned)));
        sums = std::make_unique<Dev<float>>(size_t(1) << 20);
        CUDA_CHECK(cudaMemset(sums->p, 0, sums->n * sizeof(float)));
        deq = std::make_unique<Dev<h16>>(size_t(1) << 23);
        CUBLAS_CHECK(cublasCreate(&cublas));
        ws.fused = {partial->p, pf, counters->p, 4096, sums->p, sums->n};
        ws.dequant = reinterpret_cast<__half *>(deq->p);
        ws.dequant_elems = deq->n;
        xfrag = std::make_unique<Dev<h16>>(size_t(1) << 22);
        ws.xfrag = reinterpret_cast<__half *>(xfrag->p);
        ws.xfrag_elems = xfrag->n;  // ws.wgmma stays off unless a test asks for it
        const int sms = sm_count();
        sk_partial = std::make_unique<Dev<float>>(q4_wgmma_sk_floats(sms));
        sk_flags = std::make_unique<Dev<unsigned>>(size_t(sms));
        CUDA_CHECK(cudaMemset(sk_flags->p, 0, sk_flags->n * sizeof(unsigned)));
        ws.wgmma_sk = {sk_partial->p, sk_partial->n, sk_flags->p, sms};
        ws.cublas = cublas;
        ws.sm_count = sms;
    }
    ~Workspace() { cublasDestroy(cublas); }
};

} // namespace

TEST_CASE("q4 repack puts every code where the layout says") {
    std::mt19937 rng(1);
    for (const LayerCase &c : kCases) {
        GptqLayer L = make_layer(c.K, c.N, c.gs, c.act_order, c.asym, c.format, rng);
        Q4Host h;
        std::string why;
        REQUIRE(repack_q4(L.qweight.data(), L.qzeros.data(), L.scales.data(), L.g_idx.data(), L.K, L.N, L.G, L.gs,
                          L.format, h, &why));
        CHECK(h.uniform_zero == !c.asym);
        CHECK(h.perm.empty() == !c.act_order);
        int bad = 0;
        for (int i = 0; i < L.K; ++i) {
            int k = h.perm.empty() ? i : h.perm[i];
            if (!h.perm.empty()) bad += (L.g_idx[k] != i / L.gs);  // groups contiguous after perm
            for (int n = 0; n < L.N; ++n) bad += (q4_layout_code(h, i, n) != L.codes[size_t(k) * L.N + n]);
        }
        CHECK(bad == 0);
    }
}

TEST_CASE("q4 repack refuses layouts the kernels cannot read") {
    std::mt19937 rng(2);
    GptqLayer L = make_layer(256, 64, 16, false, false, 1, rng);  // group size 16: not a multiple of 32
    Q4Host h;
    std::string why;
    CHECK_FALSE(repack_q4(L.qweight.data(), L.qzeros.data(), L.scales.data(), L.g_idx.data(), L.K, L.N, L.G, L.gs,
                          L.format, h, &why));
    CHECK(why.find("32") != std::string::npos);
    GptqLayer U = make_layer(256, 64, 128, false, false, 1, rng);
    U.g_idx[0] = 1;  // group 1 now has 129 rows
    CHECK_FALSE(repack_q4(U.qweight.data(), U.qzeros.data(), U.scales.data(), U.g_idx.data(), U.K, U.N, U.G, U.gs,
                          U.format, h, &why));
}

TEST_CASE("q4 fused kernel matches the CPU reference (all split plans, M = 1..64)") {
    std::mt19937 rng(3);
    Workspace W;
    // Zero point folded into a second mma (one-token tiles) or subtracted per weight; plans under the
    // default shared-memory cap and under a raised one (fewer, longer splits past 48 KB); the splits
    // of an fp16 output added into fp32 sums with atomics (the default) or summed in order; 9-16
    // rows with activations read directly (-1: the kernel the plan picks; 1; 2: weights scaled in
    // fp16) or staged (0); the splits of a strip as a cluster summed in shared memory for up to 2
    // splits (the default) or up to 8 (sm_90); column tiles per block as planned (-1), or forced to
    // one (four K slices per block; up to 16 rows) or two; the atomics four columns at a time (sm_90,
    // the default) or one.
    const char *variants[][7] = {
        {"1", "47", "1", "-1", "2", "-1", "1"}, {"0", "47", "1", "1", "2", "-1", "0"},
        {"1", "96", "1", "0", "8", "-1", "1"},  {"1", "47", "0", "2", "8", "-1", "1"},
        {"1", "47", "1", "0", "2", "-1", "1"},  {"1", "47", "1", "2", "8", "-1", "0"},
        {"1", "47", "1", "-1", "8", "-1", "1"}, {"1", "47", "1", "-1", "2", "1", "1"},
        {"0", "47", "0", "1", "8", "1", "1"},   {"1", "96", "1", "0", "2", "1", "0"},
        {"1", "47", "1", "2", "8", "1", "1"},   {"0", "47", "1", "-1", "2", "2", "1"}};
    for (const auto &v : variants)
    for (const LayerCase &c : kCases) {
        const char *fold = v[0];
        setenv("GPTQ_Q4_FOLD", fold, 1);
        setenv("GPTQ_Q4_SMEM_KB", v[1], 1);
        setenv("GPTQ_Q4_XDIRECT", v[3], 1);
        setenv("GPTQ_Q4_CLUSTER", v[4], 1);
        setenv("GPTQ_Q4_BLOCK_TILES", v[5], 1);
        setenv("GPTQ_Q4_RED4", v[6], 1);
        q4_set_atomic_accumulate(v[2][0] == '1');
        GptqLayer L = make_layer(c.K, c.N, c.gs, c.act_order, c.asym, c.format, rng);
        auto d = upload_layer(L);
        for (int M : {1, 3, 9, 16, 17, 32, 40, 64}) {
            auto x = random_f16(size_t(M) * L.K, rng, -1.0f, 1.0f);
            auto ref = ref_matmul(L, x, M);
            const bool one_pass = M <= kQ4FusedMaxM;  // explicit plans only for a single pass
            Q4Plan one = q4_plan(M, d->view, 1, 1);  // fewest splits shared memory allows (1 for M = 1)
            Q4Plan many = q4_plan(M, d->view, W.ws.sm_count, 64);
            Q4Plan one2 = one, many2 = many;  // the leaner activation staging (one-token kernel only)
            one2.stage_batch = many2.stage_batch = 2;
            for (const Q4Plan *p : {(const Q4Plan *)nullptr, (const Q4Plan *)&one, (const Q4Plan *)&many,
                                    (const Q4Plan *)&one2, (const Q4Plan *)&many2}) {
                if (p && !one_pass) continue;
                if (p && p->stage_batch == 2 && M > 8) continue;
                auto y = gpu_q4(*d, x, M, 0, W.ws, p, nullptr, nullptr);
                double e = rel_err(ref, y);
                INFO("K=" << L.K << " N=" << L.N << " gs=" << c.gs << " act=" << c.act_order << " asym=" << c.asym
                          << " M=" << M << " splits=" << (p ? p->splits : -1) << " stage " << (p ? p->stage_batch : 0)
                          << " fold " << fold << " smem cap KB " << v[1] << " atomics " << v[2] << " direct x "
                          << (p ? p->x_direct : -1) << " cluster up to " << v[4] << " tiles per block "
                          << (p ? p->tiles_per_block : -1) << " (asked " << v[5] << ") atomics by 4 " << v[6]);
                CHECK(e < 3e-3);
            }
        }
    }
    q4_set_atomic_accumulate(true);
    unsetenv("GPTQ_Q4_FOLD");
    unsetenv("GPTQ_Q4_SMEM_KB");
    unsetenv("GPTQ_Q4_XDIRECT");
    unsetenv("GPTQ_Q4_CLUSTER");
    unsetenv("GPTQ_Q4_BLOCK_TILES");
    unsetenv("GPTQ_Q4_RED4");
    // Every launch left the fp32 sums of its fp16 splits at zero for the next one.
    auto sums = W.sums->download();
    CHECK(std::count(sums.begin(), sums.end(), 0.0f) == long(sums.size()));
}

TEST_CASE("q4 fused kernel: the L2 head changes no result and stays inside each warp's range") {
    // The head is a prefetch: off (0), the default, and far past every warp's range (clamped to it;
    // unclamped it would ask for bytes past the layer) give the same bits. Splits summed in order, so
    // that two runs can be compared bit for bit.
    std::mt19937 rng(41);
    Workspace W;
    q4_set_atomic_accumulate(false);
    for (const LayerCase &c : kCases) {
        GptqLayer L = make_layer(c.K, c.N, c.gs, c.act_order, c.asym, c.format, rng);
        auto d = upload_layer(L);
        for (int M : {1, 3, 16}) {
            auto x = random_f16(size_t(M) * L.K, rng, -1.0f, 1.0f);
            auto ref = ref_matmul(L, x, M);
            Q4Plan many = q4_plan(M, d->view, W.ws.sm_count, 64);
            for (const Q4Plan *p : {(const Q4Plan *)nullptr, (const Q4Plan *)&many}) {
                std::vector<std::vector<double>> ys;
                for (const char *head : {"0", "4", "100000"}) {
                    setenv("GPTQ_Q4_L2HEAD", head, 1);
                    ys.push_back(gpu_q4(*d, x, M, 0, W.ws, p, nullptr, nullptr));
                }
                INFO("K=" << L.K << " N=" << L.N << " M=" << M << " splits=" << (p ? p->splits : -1));
                CHECK(rel_err(ref, ys[0]) < 3e-3);
                CHECK(ys[1] == ys[0]);
                CHECK(ys[2] == ys[0]);
            }
        }
    }
    unsetenv("GPTQ_Q4_L2HEAD");
    q4_set_atomic_accumulate(true);
}

TEST_CASE("q4 accumulates into an fp32 output with bias") {
    std::mt19937 rng(4);
    Workspace W;
    GptqLayer L = make_layer(1024, 8 * 37, 128, true, true, 1, rng);
    auto d = upload_layer(L);
    for (int M : {1, 9, 32, 45}) {
        auto x = random_f16(size_t(M) * L.K, rng, -1.0f, 1.0f);
        auto bias = random_f16(L.N, rng, -0.5f, 0.5f);
        std::vector<float> init(size_t(M) * L.N);
        std::uniform_real_distribution<float> u(-2.0f, 2.0f);
        for (auto &v : init) v = u(rng);
        auto ref = ref_matmul(L, x, M);
        for (int m = 0; m < M; ++m)
            for (int n = 0; n < L.N; ++n) ref[size_t(m) * L.N + n] += init[size_t(m) * L.N + n] + f16d(bias[n]);
        Q4Plan many = q4_plan(M, d->view, W.ws.sm_count, 64);
        // Splits added in order (0), with atomics one column (1) or four columns (2) at a time.
        for (int atomic = 0; atomic <= 2; ++atomic) {
            q4_set_atomic_accumulate(atomic >= 1);
            setenv("GPTQ_Q4_RED4", atomic == 2 ? "1" : "0", 1);
            for (const Q4Plan *p : {(const Q4Plan *)nullptr, (const Q4Plan *)&many}) {
                if (p && M > kQ4FusedMaxM) continue;
                auto y = gpu_q4(*d, x, M, 0, W.ws, p, &init, &bias);
                INFO("M=" << M << " atomic=" << atomic << " splits=" << (p ? p->splits : -1));
                CHECK(rel_err(ref, y) < 1e-3);  // fp16 weights: ~2e-4 of the product's size
            }
        }
        q4_set_atomic_accumulate(true);
        unsetenv("GPTQ_Q4_RED4");
    }
}

// The plan for M rows of w with K cut into `splits` (fewer where K is short) and `tiles` column
// tiles per block, on the kernels that have a cluster variant: one token with the 4-chunk staging,
// or 9-16 rows read directly, weights scaled in fp32.
Q4Plan clusterable_plan(int M, const Q4Dev &w, int sm_count, int splits, int tiles) {
    const int KP = w.KT / 2;
    Q4Plan p = q4_plan(M, w, sm_count);
    p.pairs_per_split = (KP + splits - 1) / splits;
    p.splits = (KP + p.pairs_per_split - 1) / p.pairs_per_split;
    p.tiles_per_block = tiles;
    p.strips = (w.NT + tiles - 1) / tiles;
    p.stage_batch = 4;
    p.x_direct = M > 8 ? 1 : 0;
    return p;
}

TEST_CASE("q4 two-split clusters: sums pushed into split 0 (GPTQ_Q4_CLUSTER_PUSH) have the bits of sums pulled") {
    std::mt19937 rng(43);
    Workspace W;
    for (const LayerCase &c : {kCases[0], kCases[3]}) {  // uniform zero points: the clustered kernels
        GptqLayer L = make_layer(c.K, c.N, c.gs, c.act_order, c.asym, c.format, rng);
        auto d = upload_layer(L);
        for (int M : {1, 2, 5, 9, 16}) {
            auto x = random_f16(size_t(M) * L.K, rng, -1.0f, 1.0f);
            auto ref = ref_matmul(L, x, M);
            for (int tiles : {1, 2}) {
                const Q4Plan p = clusterable_plan(M, d->view, W.ws.sm_count, 2, tiles);  // one cluster of two
                INFO("K=" << L.K << " N=" << L.N << " M=" << M << " tiles per block " << tiles << " direct x "
                          << p.x_direct);
                setenv("GPTQ_Q4_CLUSTER_PUSH", "0", 1);
                auto pulled = gpu_q4(*d, x, M, 0, W.ws, &p, nullptr, nullptr);
                setenv("GPTQ_Q4_CLUSTER_PUSH", "1", 1);
                auto pushed = gpu_q4(*d, x, M, 0, W.ws, &p, nullptr, nullptr);
                auto again = gpu_q4(*d, x, M, 0, W.ws, &p, nullptr, nullptr);  // a fresh barrier per launch
                CHECK(rel_err(ref, pulled) < 3e-3);
                CHECK(pushed == pulled);
                CHECK(again == pulled);
            }
        }
    }
    unsetenv("GPTQ_Q4_CLUSTER_PUSH");
}

TEST_CASE("q4 into fp32 with atomics, splits in clusters that push their sums to rank 0 (GPTQ_Q4_PUSH32)") {
    std::mt19937 rng(44);
    Workspace W;
    for (const LayerCase &c : {kCases[0], kCases[3]}) {  // uniform zero points: the clustered kernels
        GptqLayer L = make_layer(c.K, c.N, c.gs, c.act_order, c.asym, c.format, rng);
        auto d = upload_layer(L);
        for (int M : {1, 5, 16}) {
            auto x = random_f16(size_t(M) * L.K, rng, -1.0f, 1.0f);
            auto bias = random_f16(L.N, rng, -0.5f, 0.5f);
            std::vector<float> init(size_t(M) * L.N);
            std::uniform_real_distribution<float> u(-2.0f, 2.0f);
            for (auto &v : init) v = u(rng);
            auto ref = ref_matmul(L, x, M);
            for (int m = 0; m < M; ++m)
                for (int n = 0; n < L.N; ++n) ref[size_t(m) * L.N + n] += init[size_t(m) * L.N + n] + f16d(bias[n]);
            for (int splits : {4, 6, 12}) {
                for (int ranks : {2, 3, 4, 6, 12}) {
                    if (splits % ranks) continue;
                    const Q4Plan p = clusterable_plan(M, d->view, W.ws.sm_count, splits, 2);
                    if (p.splits % ranks) continue;  // a short K leaves fewer splits
                    setenv("GPTQ_Q4_PUSH32", std::to_string(ranks).c_str(), 1);
                    INFO("K=" << L.K << " N=" << L.N << " M=" << M << " splits " << p.splits << " in clusters of "
                              << ranks << " tiles per block " << p.tiles_per_block);
                    auto y = gpu_q4(*d, x, M, 0, W.ws, &p, &init, &bias);
                    CHECK(rel_err(ref, y) < 1e-3);
                }
            }
        }
    }
    unsetenv("GPTQ_Q4_PUSH32");
}

TEST_CASE("q4 stamping twins (bench-e2e --stamps) compute what the kernels they stand in for do, one stamp per block") {
    std::mt19937 rng(41);
    Workspace W;
    q4_set_atomic_accumulate(false);  // splits summed in order: the same bits on every run
    const LayerCase &c = kCases[0];   // uniform zero point: the one-token kernels the twins stand in for
    GptqLayer L = make_layer(c.K, c.N, c.gs, c.act_order, c.asym, c.format, rng);
    auto d = upload_layer(L);
    for (int M : {1, 5}) {
        auto x = random_f16(size_t(M) * L.K, rng, -1.0f, 1.0f);
        Q4Plan planned = q4_plan(M, d->view, W.ws.sm_count), one = q4_plan(M, d->view, 1, 1);
        Q4Plan lean = planned;
        lean.stage_batch = 2;
        for (const Q4Plan &p : {planned, one, lean}) {
            auto plain = gpu_q4(*d, x, M, 0, W.ws, &p, nullptr, nullptr);
            q4_stamps_begin(4096);
            auto stamped = gpu_q4(*d, x, M, 0, W.ws, &p, nullptr, nullptr);
            const std::vector<Q4Stamp> st = q4_stamps_end();
            INFO("M=" << M << " splits=" << p.splits << " tiles per block " << p.tiles_per_block << " stage "
                      << p.stage_batch);
            CHECK(stamped == plain);
            REQUIRE(st.size() == size_t(p.strips) * p.splits);
            std::vector<int> seen(st.size(), 0);
            for (const Q4Stamp &s : st) {
                CHECK(s.K == uint32_t(L.K));
                CHECK(s.N == uint32_t(L.N));
                REQUIRE(s.block < st.size());
                ++seen[s.block];
                CHECK(s.entry <= s.waited);
                CHECK(s.waited <= s.staged);
                CHECK(s.staged <= s.met);
            }
            CHECK(std::count(seen.begin(), seen.end(), 1) == long(seen.size()));
        }
    }
    q4_set_atomic_accumulate(true);
}

TEST_CASE("q4 prologues: RMSNorm (with act-order perm) and SwiGLU computed while staging activations") {
    std::mt19937 rng(11);
    Workspace W;
    for (const LayerCase &c : kCases) {
        GptqLayer L = make_layer(c.K, c.N, c.gs, c.act_order, c.asym, c.format, rng);
        auto d = upload_layer(L);
        const int K = L.K;
        for (int M : {1, 3, 16, 33}) {
            INFO("K=" << K << " N=" << L.N << " act=" << c.act_order << " M=" << M);
            // RMSNorm of fp32 rows [M][K + 4] with weights w: the product sees fp16(x * inv * w),
            // columns in stored order (perm) as the stand-alone rmsnorm kernel would write them.
            const int ld32 = K + 4;
            std::vector<float> x32(size_t(M) * ld32), nw(K);
            std::uniform_real_distribution<float> u(-3.0f, 3.0f);
            for (auto &v : x32) v = u(rng);
            for (auto &v : nw) v = u(rng);
            std::vector<h16> xn(size_t(M) * K);  // normalized, original column order
            for (int m = 0; m < M; ++m) {
                double ss = 0;
                for (int k = 0; k < K; ++k) ss += double(x32[size_t(m) * ld32 + k]) * x32[size_t(m) * ld32 + k];
                const double inv = 1.0 / std::sqrt(ss / K + 1e-5);
                for (int k = 0; k < K; ++k) xn[size_t(m) * K + k] = f32_to_f16(float(x32[size_t(m) * ld32 + k] * inv * nw[k]));
            }
            auto ref = ref_matmul(L, xn, M);
            Dev<float> dx32(x32), dnw(nw);
            Q4Prologue pro;
            pro.kind = 1;
            pro.x32 = dx32.p;
            pro.ldx32 = ld32;
            pro.norm_w = dnw.p;
            pro.eps = 1e-5f;
            pro.perm = d->view.perm;
            // The K-range values kept in shared memory (stash 1) or re-read; staging batch 4 or 2.
            for (const char *variant : {"1/4", "0/4", "1/2", "0/2"}) {
                setenv("GPTQ_Q4_NORM_STASH", std::string(1, variant[0]).c_str(), 1);
                setenv("GPTQ_Q4_STAGE_BATCH", variant + 2, 1);
                Dev<h16> dy(size_t(M) * L.N);
                dy.poison();
                Q4Out out;
                out.ldo = L.N;
                out.out16 = reinterpret_cast<__half *>(dy.p);
                q4_matmul_pro(pro, M, d->view, out, W.ws, 0);
                CUDA_CHECK_LAUNCH();
                auto h = dy.download();
                std::vector<double> got(h.size());
                for (size_t i = 0; i < h.size(); ++i) got[i] = f16d(h[i]);
                INFO("stash/staging batch " << variant);
                CHECK(rel_err(ref, got) < 3e-3);
            }
            unsetenv("GPTQ_Q4_NORM_STASH");
            unsetenv("GPTQ_Q4_STAGE_BATCH");

            if (d->view.perm || K % 8) continue;  // SwiGLU: no act-order gather
            const int ldgu = 2 * K + 8;
            auto gu = random_f16(size_t(M) * ldgu, rng, -4.0f, 4.0f);
            std::vector<h16> act(size_t(M) * K);
            for (int m = 0; m < M; ++m)
                for (int k = 0; k < K; ++k) {
                    const float g = f16_to_f32(gu[size_t(m) * ldgu + k]), up = f16_to_f32(gu[size_t(m) * ldgu + K + k]);
                    act[size_t(m) * K + k] = f32_to_f16(float(g / (1.0 + std::exp(-double(g))) * up));
                }
            auto ref2 = ref_matmul(L, act, M);
            Dev<h16> dgu(gu);
            Q4Prologue ps;
            ps.kind = 2;
            ps.gu = reinterpret_cast<const __half *>(dgu.p);
            ps.ldgu = ldgu;
            for (const char *sb : {"4", "2"}) {
                setenv("GPTQ_Q4_STAGE_BATCH", sb, 1);
                INFO("SwiGLU, staging batch " << sb);
                CHECK(rel_err(ref2, gpu_q4_pro_f32(ps, M, d->view, L.N, W.ws)) < 3e-3);
            }
            unsetenv("GPTQ_Q4_STAGE_BATCH");
        }
    }
}

TEST_CASE("q4 deferred reduction: the shares sum to the fp16 output, and the SwiGLU consumer takes them") {
    std::mt19937 rng(12);
    Workspace W;
    const int I = 1024 + 64;                                     // down's K, gate|up's N / 2
    GptqLayer gu_layer = make_layer(768, 2 * I, 128, false, true, 2, rng);
    GptqLayer down = make_layer(I, 8 * 29, 64, false, false, 1, rng);
    auto dg = upload_layer(gu_layer), dd = upload_layer(down);
    const int NP = dg->view.NT * kQ4TileN;
    // Bit equality with the fp16 product holds for its ordered sums (with atomics, the splits of an
    // fp16 output may add in any order).
    q4_set_atomic_accumulate(false);
    for (int M : {1, 3, 4}) {
        auto x = random_f16(size_t(M) * gu_layer.K, rng, -1.0f, 1.0f);
        Dev<h16> dx(x);
        for (int bps : {0, 64}) {
            Q4Out o16;
            o16.ldo = 2 * I;
            Q4Out od;
            Q4Plan plan = bps ? q4_plan(M, dg->view, W.ws.sm_count, bps) : q4_default_plan(M, dg->view, W.ws);
            INFO("M=" << M << " splits=" << plan.splits);
            Dev<h16> y16(size_t(M) * 2 * I);
            y16.poison();
            o16.out16 = reinterpret_cast<__half *>(y16.p);
            q4_fused(reinterpret_cast<const __half *>(dx.p), M, gu_layer.K, dg->view, o16, plan, W.ws.fused, 0);
            Dev<float> shares(size_t(plan.splits) * M * NP);
            shares.poison();
            od.defer = shares.p;
            od.defer_floats = shares.n - 1;  // one float short: refused before anything is written
            CHECK_THROWS_AS(
                q4_fused(reinterpret_cast<const __half *>(dx.p), M, gu_layer.K, dg->view, od, plan, W.ws.fused, 0),
                Error);
            od.defer_floats = shares.n;
            q4_fused(reinterpret_cast<const __half *>(dx.p), M, gu_layer.K, dg->view, od, plan, W.ws.fused, 0);
            CUDA_CHECK_LAUNCH();
            auto h16v = y16.download();
            auto sh = shares.download();
            int mismatch = 0;
            for (int m = 0; m < M; ++m)
                for (int j = 0; j < 2 * I; ++j) {
                    float sum = 0.0f;
                    for (int sp = 0; sp < plan.splits; ++sp) sum += sh[(size_t(sp) * M + m) * NP + j];
                    mismatch += f32_to_f16(sum) != h16v[size_t(m) * 2 * I + j];
                }
            CHECK(mismatch == 0);

            // The down product with the SwiGLU of the shares, against the CPU reference.
            std::vector<h16> act(size_t(M) * I);
            for (int m = 0; m < M; ++m)
                for (int k = 0; k < I; ++k) {
                    const double g = f16d(h16v[size_t(m) * 2 * I + k]), u = f16d(h16v[size_t(m) * 2 * I + I + k]);
                    act[size_t(m) * I + k] = f32_to_f16(float(g / (1.0 + std::exp(-g)) * u));
                }
            auto ref = ref_matmul(down, act, M);
            Q4Prologue pro;
            pro.kind = 3;
            pro.gu_part = shares.p;
            pro.gu_splits = plan.splits;
            pro.ldgu = NP;
            CHECK(rel_err(ref, gpu_q4_pro_f32(pro, M, dd->view, down.N, W.ws)) < 3e-3);
        }
    }
    q4_set_atomic_accumulate(true);
}

TEST_CASE("q4 prologue kind 4 merges attention's ranges (AttnSplitFusion::merge_used layout) into the activations") {
    std::mt19937 rng(14);
    Workspace W;
    const int Hq = 8, D = 128, stride = 20;  // heads, head size, ranges' stride (n_chunks)
    GptqLayer L = make_layer(Hq * D, 8 * 37, 128, false, false, 1, rng);
    auto d = upload_layer(L);
    std::uniform_real_distribution<float> ul(0.5f, 4.0f), uo(-2.0f, 2.0f);
    // M = 2: more ranges than the kernel's threads load at once (each of a chunk's two threads takes
    // 4 ranges per round) and maxima far apart, so that the running maximum must rescale its sums.
    for (int M : {1, 3, 2}) {
        std::uniform_real_distribution<float> um(M == 2 ? -60.0f : -3.0f, M == 2 ? 60.0f : 3.0f);
        // Partials: (m, l) and unnormalized o for the used ranges; the rest stays NaN (never read).
        std::vector<int> used(static_cast<size_t>(M));
        // Ranges per row: 4; 1, 3, 5; 11, 20.
        for (int t = 0; t < M; ++t) used[size_t(t)] = M == 1 ? 4 : M == 3 ? 1 + t * 2 : 11 + 9 * t;
        const size_t parts = size_t(M) * Hq * stride;
        std::vector<float> po(parts * D, std::nanf("")), pml(parts * 2, std::nanf(""));
        std::vector<h16> x(size_t(M) * Hq * D);
        for (int t = 0; t < M; ++t)
            for (int h = 0; h < Hq; ++h) {
                const size_t p0 = (size_t(t) * Hq + h) * stride;
                const int u = used[size_t(t)];
                for (int r = 0; r < u; ++r) {
                    pml[(p0 + r) * 2] = um(rng);
                    pml[(p0 + r) * 2 + 1] = ul(rng);
                    for (int e = 0; e < D; ++e) po[(p0 + r) * D + e] = uo(rng) * pml[(p0 + r) * 2 + 1];
                }
                double mx = -INFINITY;
                for (int r = 0; r < u; ++r) mx = std::max(mx, double(pml[(p0 + r) * 2]));
                double wsum = 0.0;
                for (int r = 0; r < u; ++r) wsum += std::exp(pml[(p0 + r) * 2] - mx) * pml[(p0 + r) * 2 + 1];
                for (int e = 0; e < D; ++e) {
                    double acc = 0.0;
                    for (int r = 0; r < u; ++r) acc += std::exp(pml[(p0 + r) * 2] - mx) * po[(p0 + r) * D + e];
                    x[size_t(t) * Hq * D + size_t(h) * D + e] = f32_to_f16(float(acc / wsum));
                }
            }
        Dev<float> dpo(po), dpml(pml);
        Dev<int> dused(used);
        Q4Prologue pro;
        pro.kind = 4;
        pro.attn_o = dpo.p;
        pro.attn_ml = dpml.p;
        pro.attn_used = dused.p;
        pro.attn_stride = stride;
        pro.attn_heads = Hq;
        pro.attn_d = D;
        INFO("M=" << M);
        CHECK(rel_err(ref_matmul(L, x, M), gpu_q4_pro_f32(pro, M, d->view, L.N, W.ws)) < 3e-3);
    }
}

TEST_CASE("q4 large-M paths (fused passes and dequantize + cuBLAS) match the reference") {
    std::mt19937 rng(5);
    Workspace W;
    for (const LayerCase &c : kCases) {
        GptqLayer L = make_layer(c.K, c.N, c.gs, c.act_order, c.asym, c.format, rng);
        auto d = upload_layer(L);
        for (int M : {100, 300}) {
            auto x = random_f16(size_t(M) * L.K, rng, -1.0f, 1.0f);
            auto ref = ref_matmul(L, x, M);
            for (int large_m : {1 << 30, 64}) {  // fused passes of 32 rows / dequantize + cuBLAS
                Q4Workspace ws = W.ws;
                ws.large_m = large_m;
                auto y = gpu_q4(*d, x, M, 0, ws, nullptr, nullptr, nullptr);
                INFO("K=" << L.K << " N=" << L.N << " M=" << M << " large_m=" << large_m);
                CHECK(rel_err(ref, y) < 3e-3);
            }
        }
    }
}

TEST_CASE("q4 wgmma kernel (sm_90a) matches the reference for every block tile, schedule and output") {
    if (wgmma_unavailable()) return;
    std::mt19937 rng(21);
    Workspace W;
    const int sms = sm_count();
    // {bt, wgn, stream-K blocks}; {0, 0, 0}: the planner's choice. Stream-K over 3 or 7 blocks runs
    // several tiles per block (whole ones in the middle of a run stored straight from registers),
    // over every SM only a few stages per block (a tile's sums handed over by a dozen blocks).
    const int plans[][3] = {{0, 0, 0},   {64, 1, 0}, {64, 2, 0},   {128, 1, 0},  {128, 2, 0},
                            {256, 1, 0}, {64, 1, 7}, {64, 2, sms}, {128, 1, 3}, {256, 1, 7}, {256, 1, sms}};
    for (const LayerCase &c : kCases) {
        GptqLayer L = make_layer(c.K, c.N, c.gs, c.act_order, c.asym, c.format, rng);
        auto d = upload_layer(L);
        for (int M : {64, 77, 300}) {
            auto x = random_f16(size_t(M) * L.K, rng, -1.0f, 1.0f);
            auto ref = ref_matmul(L, x, M);
            auto bias = random_f16(size_t(L.N), rng, -0.5f, 0.5f);
            std::vector<float> init(size_t(M) * L.N);
            for (auto &v : init) v = std::uniform_real_distribution<float>(-1.0f, 1.0f)(rng);
            std::vector<double> ref_acc(ref.size());
            for (size_t i = 0; i < ref.size(); ++i) ref_acc[i] = ref[i] + init[i] + f16d(bias[i % L.N]);
            for (const auto &pl : plans) {
                Q4Workspace ws = W.ws;
                ws.wgmma = true;
                ws.large_m = 1 << 30;  // nothing may fall back to dequantize + cuBLAS unnoticed
                ws.dequant = nullptr;
                ws.wgmma_force[0] = pl[0], ws.wgmma_force[1] = pl[1], ws.wgmma_force[2] = 1, ws.wgmma_force[3] = pl[2];
                INFO("K=" << L.K << " N=" << L.N << " M=" << M << " plan bt=" << pl[0] << " wgn=" << pl[1]
                          << " stream-K blocks=" << pl[2]);
                CHECK(rel_err(ref, gpu_q4(*d, x, M, 0, ws, nullptr, nullptr, nullptr)) < 3e-3);
                for (int splits : {1, 3}) {  // fp32 accumulation (the residual stream), with bias
                    if (pl[2] && splits > 1) continue;
                    if (pl[0]) ws.wgmma_force[2] = splits;
                    INFO("out32 splits=" << splits);
                    CHECK(rel_err(ref_acc, gpu_q4(*d, x, M, 0, ws, nullptr, &init, &bias)) < 1e-3);
                }
            }
            // Every flag a stream-K launch raised was consumed and lowered again.
            auto flags = W.sk_flags->download();
            CHECK(std::count(flags.begin(), flags.end(), 0u) == long(flags.size()));
        }
    }
}

TEST_CASE("q4 wgmma kernel stores fp16 and fp32 rows whose stride takes no 16-byte accesses") {
    if (wgmma_unavailable()) return;
    std::mt19937 rng(23);
    Workspace W;
    GptqLayer L = make_layer(1024, 3000, 32, false, true, 1, rng);
    auto d = upload_layer(L);
    const int M = 100, ldo = L.N + 2;  // even, but not a multiple of 8: the per-warp slab path
    auto x = random_f16(size_t(M) * L.K, rng, -1.0f, 1.0f);
    auto ref = ref_matmul(L, x, M);
    Q4Workspace ws = W.ws;
    ws.wgmma = true;
    Dev<h16> dx(x);
    Dev<h16> dy(size_t(M) * ldo);
    dy.poison();
    Q4Out out;
    out.ldo = ldo;
    out.out16 = reinterpret_cast<__half *>(dy.p);
    q4_matmul(reinterpret_cast<const __half *>(dx.p), M, L.K, d->view, out, ws, 0);
    CUDA_CHECK_LAUNCH();
    auto h = dy.download();
    std::vector<double> y(size_t(M) * L.N);
    for (int m = 0; m < M; ++m)
        for (int n = 0; n < L.N; ++n) y[size_t(m) * L.N + n] = f16d(h[size_t(m) * ldo + n]);
    CHECK(rel_err(ref, y) < 3e-3);
    // fp32 accumulation into rows of ldo floats (not a multiple of 4): added by the slab path.
    std::vector<float> init(size_t(M) * ldo, 0.25f);
    Dev<float> dy32(init);
    Q4Out out32;
    out32.ldo = ldo;
    out32.out32 = dy32.p;
    q4_matmul(reinterpret_cast<const __half *>(dx.p), M, L.K, d->view, out32, ws, 0);
    CUDA_CHECK_LAUNCH();
    auto h32 = dy32.download();
    for (int m = 0; m < M; ++m)
        for (int n = 0; n < L.N; ++n) y[size_t(m) * L.N + n] = h32[size_t(m) * ldo + n] - 0.25;
    CHECK(rel_err(ref, y) < 1e-3);
    CHECK(h32[size_t(M - 1) * ldo + L.N] == 0.25f);  // the padding between rows is left alone
}

TEST_CASE("q4 wgmma kernel into fp32 is bit-reproducible when atomics are off") {
    if (wgmma_unavailable()) return;
    std::mt19937 rng(23);
    Workspace W;
    GptqLayer L = make_layer(4096, 512, 128, false, false, 1, rng);  // long K: the planner would split it
    auto d = upload_layer(L);
    const int M = 200;
    auto x = random_f16(size_t(M) * L.K, rng, -1.0f, 1.0f);
    auto ref = ref_matmul(L, x, M);
    std::vector<float> init(size_t(M) * L.N, 0.25f);
    for (auto &v : ref) v += 0.25;
    Q4Workspace ws = W.ws;
    ws.wgmma = true;
    ws.large_m = 1 << 30;
    q4_set_atomic_accumulate(false);
    CHECK(q4_wgmma_plan(M, d->view, ws.sm_count, true, true, false).splits == 1);
    CHECK(q4_wgmma_plan(M, d->view, ws.sm_count, true, true, false).sk == 0);
    auto a = gpu_q4(*d, x, M, 0, ws, nullptr, &init, nullptr);
    auto b = gpu_q4(*d, x, M, 0, ws, nullptr, &init, nullptr);
    q4_set_atomic_accumulate(true);
    CHECK(a == b);
    CHECK(rel_err(ref, a) < 1e-3);
}

TEST_CASE("q4 wgmma path cuts M into passes when the activation buffer is short") {
    if (wgmma_unavailable()) return;
    std::mt19937 rng(22);
    Workspace W;
    GptqLayer L = make_layer(1024, 3000, 32, true, true, 1, rng);
    auto d = upload_layer(L);
    const int M = 333;
    auto x = random_f16(size_t(M) * L.K, rng, -1.0f, 1.0f);
    auto ref = ref_matmul(L, x, M);
    Q4Workspace ws = W.ws;
    ws.wgmma = true;
    ws.wgmma_max_m = 1 << 30;
    ws.xfrag_elems = size_t(300) * q4_wgmma_kx(d->view);  // passes of 256 rows
    CHECK(rel_err(ref, gpu_q4(*d, x, M, 0, ws, nullptr, nullptr, nullptr)) < 3e-3);
}

TEST_CASE("q4_dequant_f16 reproduces the fp16 weights exactly") {
    std::mt19937 rng(6);
    for (const LayerCase &c : kCases) {
        GptqLayer L = make_layer(c.K, c.N, c.gs, c.act_order, c.asym, c.format, rng);
        auto d = upload_layer(L);
        const int ld = d->view.NT * 64, rows = d->view.KT * 16;
        Dev<h16> Wd(size_t(rows) * ld);
        Wd.poison();
        q4_dequant_f16(d->view, reinterpret_cast<__half *>(Wd.p), 0);
        auto h = Wd.download();
        int bad = 0;
        for (int i = 0; i < L.K; ++i) {
            int k = d->host.perm.empty() ? i : d->host.perm[i];
            for (int n = 0; n < L.N; ++n) {
                h16 want = f32_to_f16(float(weight(L, k, n)));
                bad += (h[size_t(i) * ld + n] != want);
            }
        }
        INFO("K=" << L.K << " N=" << L.N);
        CHECK(bad == 0);
    }
}

TEST_CASE("dense fp16 matmul (Hugging Face layout): cuBLAS, and the dispatch to the GEMV for few rows") {
    std::mt19937 rng(7);
    Workspace W;
    const int K = 328, N = 8 * 37;
    auto Wt = random_f16(size_t(N) * K, rng, -0.1f, 0.1f);
    Dev<h16> dW(Wt);
    for (int M : {1, 7, 130})
        for (bool cublas_only : {false, true}) {
            auto x = random_f16(size_t(M) * K, rng, -1.0f, 1.0f);
            Dev<h16> dx(x), dy(size_t(M) * N);
            dy.poison();
            Q4Out out;
            out.out16 = reinterpret_cast<__half *>(dy.p);
            out.ldo = N;
            const __half *xp = reinterpret_cast<const __half *>(dx.p), *wp = reinterpret_cast<const __half *>(dW.p);
            if (cublas_only)
                dense_matmul_cublas(W.cublas, xp, M, K, wp, K, N, K, out, 0);
            else
                dense_matmul(W.cublas, xp, M, K, wp, K, N, K, out, 0);
            auto h = dy.download();
            std::vector<double> ref(size_t(M) * N, 0.0), got(size_t(M) * N);
            for (int m = 0; m < M; ++m)
                for (int n = 0; n < N; ++n) {
                    double s = 0;
                    for (int k = 0; k < K; ++k) s += f16d(x[size_t(m) * K + k]) * f16d(Wt[size_t(n) * K + k]);
                    ref[size_t(m) * N + n] = s;
                    got[size_t(m) * N + n] = f16d(h[size_t(m) * N + n]);
                }
            INFO("M=" << M << (cublas_only ? " cuBLAS" : " dispatch"));
            CHECK(rel_err(ref, got) < 2e-3);
        }
}

TEST_CASE("dense fp16 GEMV (1-8 rows): fp16 out, fp32 accumulate with bias, strides, odd shapes") {
    std::mt19937 rng(11);
    struct Shape {
        int K, N;
    };
    // K: one chunk, a partial round, several rounds with a partial last one (11008, a 7B down row:
    // five and a third); N: a single row, an odd count (the last warp task half empty), more tasks
    // than the grid's warps take in one pass.
    for (const Shape sh : {Shape{8, 1}, Shape{264, 37}, Shape{2056, 301}, Shape{4104, 1001}, Shape{520, 40001},
                           Shape{11008, 67}}) {
        const int K = sh.K, N = sh.N, ldw = K + 8;
        auto Wt = random_f16(size_t(N) * ldw, rng, -0.1f, 0.1f);
        auto bias = random_f16(size_t(N), rng, -1.0f, 1.0f);
        Dev<h16> dW(Wt), db(bias);
        for (int M : {1, 2, 3, 5, 8}) {
            const int ldx = K + 16, ldo = N + 3;
            auto x = random_f16(size_t(M) * ldx, rng, -1.0f, 1.0f);
            std::uniform_real_distribution<float> d(-2.0f, 2.0f);
            std::vector<float> y0(size_t(M) * ldo);
            for (auto &v : y0) v = d(rng);
            Dev<h16> dx(x), dy16(size_t(M) * ldo);
            Dev<float> dy32(y0);
            dy16.poison();
            const __half *xp = reinterpret_cast<const __half *>(dx.p), *wp = reinterpret_cast<const __half *>(dW.p);
            REQUIRE(dense_gemv_takes(xp, M, ldx, wp, K, ldw));
            Q4Out o16;
            o16.out16 = reinterpret_cast<__half *>(dy16.p);
            o16.ldo = ldo;
            dense_gemv(xp, M, ldx, wp, K, N, ldw, o16, 0);
            Q4Out o32;
            o32.out32 = dy32.p;
            o32.ldo = ldo;
            o32.bias = reinterpret_cast<const __half *>(db.p);
            dense_gemv(xp, M, ldx, wp, K, N, ldw, o32, 0);
            // Overwritten fp32 (the head's logits, no memset before): what was there must not count.
            Dev<float> dyw(std::vector<float>(size_t(M) * ldo, std::numeric_limits<float>::quiet_NaN()));
            Q4Out ow = o32;
            ow.out32 = dyw.p;
            ow.overwrite32 = true;
            dense_gemv(xp, M, ldx, wp, K, N, ldw, ow, 0);
            const auto h16v = dy16.download();
            const auto h32v = dy32.download();
            const auto hwv = dyw.download();
            std::vector<double> ref16, got16, ref32, got32, refw, gotw;
            for (int m = 0; m < M; ++m)
                for (int n = 0; n < ldo; ++n) {
                    const size_t at = size_t(m) * ldo + n;
                    if (n >= N) {  // past N: the fp32 rows untouched
                        CHECK(h32v[at] == y0[at]);
                        CHECK(std::isnan(hwv[at]));
                        continue;
                    }
                    double s = 0;
                    for (int k = 0; k < K; ++k) s += f16d(x[size_t(m) * ldx + k]) * f16d(Wt[size_t(n) * ldw + k]);
                    ref16.push_back(s);
                    got16.push_back(f16d(h16v[at]));
                    ref32.push_back(double(y0[at]) + s + f16d(bias[n]));
                    got32.push_back(double(h32v[at]));
                    refw.push_back(s + f16d(bias[n]));
                    gotw.push_back(double(hwv[at]));
                }
            INFO("K=" << K << " N=" << N << " M=" << M);
            CHECK(rel_err(ref16, got16) < 2e-3);
            CHECK(rel_err(ref32, got32) < 1e-4);
            CHECK(rel_err(refw, gotw) < 1e-4);
        }
    }
    // What it does not take goes to cuBLAS: K not a multiple of 8, more than 8 rows.
    Dev<h16> dx(size_t(16) * 40), dW(size_t(40) * 40);
    const __half *xp = reinterpret_cast<const __half *>(dx.p), *wp = reinterpret_cast<const __half *>(dW.p);
    CHECK_FALSE(dense_gemv_takes(xp, 1, 36, wp, 36, 36));
    CHECK_FALSE(dense_gemv_takes(xp, 9, 40, wp, 40, 40));
}

TEST_CASE("embedding, RMSNorm (rows + perm), SwiGLU") {
    std::mt19937 rng(8);
    const int V = 77, H = 200, n = 5, I = 333;
    auto table = random_f16(size_t(V) * H, rng, -1.0f, 1.0f);
    std::vector<int32_t> tokens = {3, 76, 0, 3, 41};
    Dev<h16> dt(table);
    Dev<int32_t> dtok(tokens);
    Dev<float> dh(size_t(n) * H);
    dh.poison();
    embed_lookup(dtok.p, n, reinterpret_cast<const __half *>(dt.p), H, dh.p, 0);
    auto hv = dh.download();
    int bad = 0;
    for (int i = 0; i < n; ++i)
        for (int c = 0; c < H; ++c) bad += (hv[size_t(i) * H + c] != f16_to_f32(table[size_t(tokens[i]) * H + c]));
    CHECK(bad == 0);

    std::vector<float> x(size_t(n) * H), w(H);
    std::uniform_real_distribution<float> u(-3.0f, 3.0f);
    for (auto &v : x) v = u(rng);
    for (auto &v : w) v = u(rng);
    std::vector<int32_t> rows = {4, 1, 1};
    std::vector<int32_t> perm(H);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    Dev<float> dx(x), dw(w);
    Dev<int32_t> drows(rows), dperm(perm);
    for (bool use_perm : {false, true}) {
        Dev<h16> dout(size_t(rows.size()) * (H + 3));
        dout.poison();
        rmsnorm(dx.p, H, drows.p, int(rows.size()), H, dw.p, 1e-5f, use_perm ? dperm.p : nullptr,
                reinterpret_cast<__half *>(dout.p), H + 3, 0);
        auto o = dout.download();
        std::vector<double> ref, got;
        for (size_t i = 0; i < rows.size(); ++i) {
            const float *xr = &x[size_t(rows[i]) * H];
            double ss = 0;
            for (int c = 0; c < H; ++c) ss += double(xr[c]) * xr[c];
            double inv = 1.0 / std::sqrt(ss / H + 1e-5);
            for (int c = 0; c < H; ++c) {
                int s = use_perm ? perm[c] : c;
                ref.push_back(xr[s] * inv * w[s]);
                got.push_back(f16d(o[i * (H + 3) + c]));
            }
        }
        INFO("perm=" << use_perm);
        CHECK(rel_err(ref, got) < 1e-3);
    }

    auto gu = random_f16(size_t(n) * 2 * I, rng, -4.0f, 4.0f);
    Dev<h16> dgu(gu), dso(size_t(n) * I);
    dso.poison();
    silu_mul(reinterpret_cast<const __half *>(dgu.p), n, I, reinterpret_cast<__half *>(dso.p), 0);
    auto so = dso.download();
    std::vector<double> ref, got;
    for (int i = 0; i < n; ++i)
        for (int j = 0; j < I; ++j) {
            double g = f16d(gu[size_t(i) * 2 * I + j]), up = f16d(gu[size_t(i) * 2 * I + I + j]);
            ref.push_back(g / (1.0 + std::exp(-g)) * up);
            got.push_back(f16d(so[size_t(i) * I + j]));
        }
    CHECK(rel_err(ref, got) < 1e-3);
}

namespace {

void rope_ref(std::vector<double> &v, int pos, const std::vector<float> &inv_freq) {
    const int half = int(v.size()) / 2;
    for (int i = 0; i < half; ++i) {
        float ang = float(pos) * inv_freq[i];  // fp32 angle, as Hugging Face computes it
        double c = std::cos(double(ang)), s = std::sin(double(ang));
        double x1 = v[i], x2 = v[i + half];
        v[i] = x1 * c - x2 * s;
        v[i + half] = x2 * c + x1 * s;
    }
}

std::vector<float> inv_freqs(int D, double theta) {
    std::vector<float> f(D / 2);
    for (int i = 0; i < D / 2; ++i) f[i] = float(std::pow(theta, -2.0 * i / D));
    return f;
}

} // namespace

TEST_CASE("RoPE rotates queries in place and stores rotated keys and values in the cache") {
    std::mt19937 rng(9);
    const int Hq = 6, Hkv = 2, D = 24, n_seq = 3, n_ctx = 40, n = 4;
    const int ldq = (Hq + 2 * Hkv) * D + 8;
    auto qkv = random_f16(size_t(n) * ldq, rng, -2.0f, 2.0f);
    std::vector<int32_t> pos = {0, 17, 39, 5}, seq = {2, 0, 1, 2};
    auto inv = inv_freqs(D, 500000.0);
    const size_t cache_elems = size_t(n_seq) * Hkv * n_ctx * D;
    auto kinit = random_f16(cache_elems, rng, -1.0f, 1.0f), vinit = random_f16(cache_elems, rng, -1.0f, 1.0f);
    Dev<h16> dq(qkv), dk(kinit), dv(vinit);
    Dev<int32_t> dpos(pos), dseq(seq);
    Dev<float> dinv(inv);
    KVLayer kv{reinterpret_cast<__half *>(dk.p), reinterpret_cast<__half *>(dv.p), n_seq, Hkv, n_ctx, D};
    rope_store_kv(reinterpret_cast<__half *>(dq.p), n, ldq, dpos.p, dseq.p, dinv.p, Hq, Hkv, D, kv, 0);
    auto q2 = dq.download(), k2 = dk.download(), v2 = dv.download();
    std::vector<double> ref, got;
    std::vector<h16> kexp = kinit, vexp = vinit;
    for (int t = 0; t < n; ++t) {
        for (int h = 0; h < Hq + Hkv; ++h) {
            std::vector<double> v(D);
            for (int d = 0; d < D; ++d) v[d] = f16d(qkv[size_t(t) * ldq + h * D + d]);
            rope_ref(v, pos[t], inv);
            for (int d = 0; d < D; ++d) {
                ref.push_back(v[d]);
                if (h < Hq) got.push_back(f16d(q2[size_t(t) * ldq + h * D + d]));
                else got.push_back(f16d(k2[((size_t(seq[t]) * Hkv + h - Hq) * n_ctx + pos[t]) * D + d]));
                if (h >= Hq) kexp[((size_t(seq[t]) * Hkv + h - Hq) * n_ctx + pos[t]) * D + d] = 0;  // checked above
            }
        }
        for (int h = 0; h < Hkv; ++h)
            for (int d = 0; d < D; ++d)
                vexp[((size_t(seq[t]) * Hkv + h) * n_ctx + pos[t]) * D + d] = qkv[size_t(t) * ldq + (Hq + Hkv + h) * D + d];
    }
    CHECK(rel_err(ref, got) < 1e-3);
    int bad = 0;
    for (size_t i = 0; i < cache_elems; ++i) {
        bad += (v2[i] != vexp[i]);
        if (kexp[i] != 0) bad += (k2[i] != kexp[i]);  // untouched key slots keep their value
    }
    CHECK(bad == 0);
    // The pad columns after the V heads are untouched.
    for (int t = 0; t < n; ++t)
        for (int c = (Hq + 2 * Hkv) * D; c < ldq; ++c) bad += (q2[size_t(t) * ldq + c] != qkv[size_t(t) * ldq + c]);
    CHECK(bad == 0);
}

namespace {

struct AttnCase {
    int Hq, Hkv, D, n_seq, n_ctx;
};

std::vector<double> attn_ref(const std::vector<h16> &q, int ldq, const std::vector<int32_t> &pos,
                             const std::vector<int32_t> &seq, const std::vector<h16> &K, const std::vector<h16> &V,
                             const AttnCase &c, float scale) {
    const int n = int(pos.size()), G = c.Hq / c.Hkv;
    std::vector<double> out(size_t(n) * c.Hq * c.D);
    for (int t = 0; t < n; ++t)
        for (int hq = 0; hq < c.Hq; ++hq) {
            const int h = hq / G;
            const size_t base = (size_t(seq[t]) * c.Hkv + h) * c.n_ctx;
            std::vector<double> s(pos[t] + 1);
            double m = -INFINITY;
            for (int j = 0; j <= pos[t]; ++j) {
                double a = 0;
                for (int d = 0; d < c.D; ++d)
                    a += f16d(q[size_t(t) * ldq + hq * c.D + d]) * f16d(K[(base + j) * c.D + d]);
                s[j] = a * scale;
                m = std::max(m, s[j]);
            }
            double l = 0;
            for (auto &v : s) { v = std::exp(v - m); l += v; }
            for (int d = 0; d < c.D; ++d) {
                double o = 0;
                for (int j = 0; j <= pos[t]; ++j) o += s[j] * f16d(V[(base + j) * c.D + d]);
                out[(size_t(t) * c.Hq + hq) * c.D + d] = o / l;
            }
        }
    return out;
}

} // namespace

TEST_CASE("attention (range, chunk and cuBLAS paths) matches the CPU reference") {
    std::mt19937 rng(10);
    Workspace W;
    // head_dim 64 / 128 take the range kernel (query heads per block: 4, 1, 1 in groups of 3, 2),
    // 8, 96 and 256 the chunk kernel; 700 and 2100 positions make many ranges per token; 16 query
    // heads per KV head at head_dim 256 need more than 48 KB of shared memory (the opt-in).
    for (const AttnCase &c : {AttnCase{8, 4, 8, 2, 200}, AttnCase{8, 2, 64, 3, 300}, AttnCase{4, 4, 128, 1, 160},
                              AttnCase{12, 2, 96, 2, 100}, AttnCase{6, 2, 128, 2, 700}, AttnCase{4, 2, 64, 1, 2100},
                              AttnCase{32, 2, 256, 1, 100}}) {
        const size_t cache_elems = size_t(c.n_seq) * c.Hkv * c.n_ctx * c.D;
        auto K = random_f16(cache_elems, rng, -1.0f, 1.0f), V = random_f16(cache_elems, rng, -1.0f, 1.0f);
        Dev<h16> dk(K), dv(V);
        KVLayer kv{reinterpret_cast<__half *>(dk.p), reinterpret_cast<__half *>(dv.p), c.n_seq, c.Hkv, c.n_ctx, c.D};
        const float scale = 1.0f / std::sqrt(float(c.D));
        const int ldq = c.Hq * c.D + 16, ldo = c.Hq * c.D + 8;
        INFO("Hq=" << c.Hq << " Hkv=" << c.Hkv << " D=" << c.D);

        // Split kernel: a mixed batch of sequences and positions (chunk boundaries included).
        std::vector<int32_t> pos = {0, 63, 64, c.n_ctx - 1, 130 % c.n_ctx, 5}, seq;
        for (size_t i = 0; i < pos.size(); ++i) seq.push_back(int32_t(i % c.n_seq));
        const int n = int(pos.size());
        auto q = random_f16(size_t(n) * ldq, rng, -2.0f, 2.0f);
        Dev<h16> dq(q), dout(size_t(n) * ldo);
        Dev<int32_t> dpos(pos), dseq(seq);
        const int chunks = (c.n_ctx + kAttnChunk - 1) / kAttnChunk;
        Dev<float> scratch(attn_split_scratch_floats(n, c.Hq, c.D, chunks));
        Dev<unsigned> counters(attn_split_counters(n, c.Hq));
        CUDA_CHECK(cudaMemset(counters.p, 0, counters.n * sizeof(unsigned)));
        auto ref = attn_ref(q, ldq, pos, seq, K, V, c, scale);
        // Twice with the merge inside the split kernel: its counters must be left at zero.
        for (int variant = 0; variant < 3; ++variant) {
            AttnSplitFusion fuse;
            if (variant > 0) fuse.counters = counters.p;
            dout.poison();
            attention_split(reinterpret_cast<const __half *>(dq.p), ldq, dpos.p, dseq.p, n, c.Hq, kv, scale, chunks,
                            scratch.p, reinterpret_cast<__half *>(dout.p), ldo, 0, fuse);
            auto o = dout.download();
            std::vector<double> got;
            for (int t = 0; t < n; ++t)
                for (int i = 0; i < c.Hq * c.D; ++i) got.push_back(f16d(o[size_t(t) * ldo + i]));
            INFO("merge inside: " << variant);
            CHECK(rel_err(ref, got) < 2e-3);
            auto cnt = counters.download();
            CHECK(std::count(cnt.begin(), cnt.end(), 0u) == long(cnt.size()));
        }
        // The same bits on every run (no sum whose order depends on scheduling), so that sampled
        // generations repeat: the chunk kernel once added its warps with shared-memory atomics.
        {
            AttnSplitFusion fuse;
            fuse.counters = counters.p;
            std::vector<h16> first;
            int differ = 0;
            for (int rep = 0; rep < 12; ++rep) {
                dout.poison();
                attention_split(reinterpret_cast<const __half *>(dq.p), ldq, dpos.p, dseq.p, n, c.Hq, kv, scale, chunks,
                                scratch.p, reinterpret_cast<__half *>(dout.p), ldo, 0, fuse);
                auto o = dout.download();
                if (rep == 0) first = o;
                else differ += o != first;
            }
            CHECK(differ == 0);
        }

        // One token with RoPE and the KV store inside the kernel: the same cache and output as
        // rope_store_kv followed by the split kernel.
        for (int p1 : {0, 37 % c.n_ctx, c.n_ctx - 1}) {
            const int ldr = (c.Hq + 2 * c.Hkv) * c.D + 8, s1 = c.n_seq - 1;
            auto row = random_f16(size_t(ldr), rng, -2.0f, 2.0f);
            auto inv = inv_freqs(c.D, 10000.0);
            Dev<float> dinv(inv);
            Dev<int32_t> dp1(std::vector<int32_t>{p1}), ds1(std::vector<int32_t>{s1});
            Dev<unsigned> cnt1(attn_split_counters(1, c.Hq));
            CUDA_CHECK(cudaMemset(cnt1.p, 0, cnt1.n * sizeof(unsigned)));
            Dev<float> scr1(attn_split_scratch_floats(1, c.Hq, c.D, chunks));
            // Reference: the separate kernels on copies of the cache and row.
            Dev<h16> rk(K), rv(V), rrow(row), rout(static_cast<size_t>(ldo));
            KVLayer rkv{reinterpret_cast<__half *>(rk.p), reinterpret_cast<__half *>(rv.p), c.n_seq, c.Hkv, c.n_ctx, c.D};
            rope_store_kv(reinterpret_cast<__half *>(rrow.p), 1, ldr, dp1.p, ds1.p, dinv.p, c.Hq, c.Hkv, c.D, rkv, 0);
            attention_split(reinterpret_cast<const __half *>(rrow.p), ldr, dp1.p, ds1.p, 1, c.Hq, rkv, scale, chunks,
                            scr1.p, reinterpret_cast<__half *>(rout.p), ldo, 0);
            Dev<h16> fk(K), fv(V), frow(row), fout(static_cast<size_t>(ldo));
            fout.poison();
            KVLayer fkv{reinterpret_cast<__half *>(fk.p), reinterpret_cast<__half *>(fv.p), c.n_seq, c.Hkv, c.n_ctx, c.D};
            AttnSplitFusion fuse;
            fuse.counters = cnt1.p;
            fuse.inv_freq = dinv.p;
            attention_split(reinterpret_cast<const __half *>(frow.p), ldr, dp1.p, ds1.p, 1, c.Hq, fkv, scale, chunks,
                            scr1.p, reinterpret_cast<__half *>(fout.p), ldo, 0, fuse);
            auto ro = rout.download(), fo = fout.download();
            std::vector<double> a, b;
            for (int i = 0; i < c.Hq * c.D; ++i) {
                a.push_back(f16d(ro[i]));
                b.push_back(f16d(fo[i]));
            }
            INFO("rope inside, pos " << p1);
            CHECK(rel_err(a, b) < 1e-3);
            auto rkh = rk.download(), fkh = fk.download(), rvh = rv.download(), fvh = fv.download();
            int kdiff = 0, vdiff = 0;
            for (size_t i = 0; i < rkh.size(); ++i) {
                kdiff += std::abs(int(f16_to_f32(rkh[i]) * 1024) - int(f16_to_f32(fkh[i]) * 1024)) > 2;
                vdiff += rvh[i] != fvh[i];
            }
            CHECK(kdiff == 0);
            CHECK(vdiff == 0);
            CHECK(frow.download() == row);  // the row itself is left as it was

            // The same row as three deferred fp32 shares (summed in order, rounded to fp16).
            const int S3 = 3, qld = (c.Hq + 2 * c.Hkv) * c.D + 64;
            std::vector<float> shares(size_t(S3) * qld, 0.0f);
            std::vector<h16> srow(row);
            std::uniform_real_distribution<float> su(-1.0f, 1.0f);
            for (int j = 0; j < (c.Hq + 2 * c.Hkv) * c.D; ++j) {
                float sum = 0.0f;
                for (int sp = 0; sp < S3; ++sp) {
                    shares[size_t(sp) * qld + j] = su(rng);
                    sum += shares[size_t(sp) * qld + j];
                }
                srow[j] = f32_to_f16(sum);
            }
            Dev<float> dsh(shares);
            Dev<h16> sk(K), sv(V), srowd(srow), sout(static_cast<size_t>(ldo)), dk2(K), dv2(V), dout2(static_cast<size_t>(ldo));
            KVLayer skv{reinterpret_cast<__half *>(sk.p), reinterpret_cast<__half *>(sv.p), c.n_seq, c.Hkv, c.n_ctx, c.D};
            KVLayer dkv{reinterpret_cast<__half *>(dk2.p), reinterpret_cast<__half *>(dv2.p), c.n_seq, c.Hkv, c.n_ctx, c.D};
            AttnSplitFusion f2;
            f2.counters = cnt1.p;
            f2.inv_freq = dinv.p;
            attention_split(reinterpret_cast<const __half *>(srowd.p), ldr, dp1.p, ds1.p, 1, c.Hq, skv, scale, chunks,
                            scr1.p, reinterpret_cast<__half *>(sout.p), ldo, 0, f2);
            f2.qkv_part = dsh.p;
            f2.qkv_splits = S3;
            f2.qkv_ld = qld;
            dout2.poison();
            attention_split(nullptr, 0, dp1.p, ds1.p, 1, c.Hq, dkv, scale, chunks, scr1.p,
                            reinterpret_cast<__half *>(dout2.p), ldo, 0, f2);
            auto so = sout.download(), d2 = dout2.download();
            // The two paths may differ by an fp16 rounding step: one H100 run saw 1 of 1152 outputs
            // differ (the cause was not isolated), so the check allows 2 ulps, not bit equality.
            int odiff = 0;
            for (int i = 0; i < c.Hq * c.D; ++i) {
                const float x = f16_to_f32(so[i]), y = f16_to_f32(d2[i]);
                odiff += std::fabs(x - y) > 2e-3f * std::max(1.0f, std::fabs(x));
            }
            INFO("deferred qkv shares, pos " << p1);
            CHECK(odiff == 0);
            CHECK(sk.download() == dk2.download());
            CHECK(sv.download() == dv2.download());
        }

        // cuBLAS path: one run of one sequence, positions 20..20+nr-1 (earlier positions cached).
        const int nr = std::min(45, c.n_ctx - 20), sq = c.n_seq - 1;
        std::vector<int32_t> rpos(nr), rseq(nr, sq);
        for (int i = 0; i < nr; ++i) rpos[i] = 20 + i;
        const int L = rpos.back() + 1;
        auto rq = random_f16(size_t(nr) * ldq, rng, -2.0f, 2.0f);
        Dev<h16> drq(rq), drout(size_t(nr) * ldo);
        Dev<int32_t> drpos(rpos);
        Dev<float> gs(attention_gemm_scratch_floats(nr, c.Hq, L));
        drout.poison();
        attention_gemm(W.cublas, reinterpret_cast<const __half *>(drq.p), ldq, drpos.p, nr, L, sq, c.Hq, kv, scale,
                       gs.p, reinterpret_cast<__half *>(drout.p), ldo, 0);
        auto ro = drout.download();
        auto rref = attn_ref(rq, ldq, rpos, rseq, K, V, c, scale);
        std::vector<double> rgot;
        for (int t = 0; t < nr; ++t)
            for (int i = 0; i < c.Hq * c.D; ++i) rgot.push_back(f16d(ro[size_t(t) * ldo + i]));
        CHECK(rel_err(rref, rgot) < 3e-3);
    }
}

#endif  // GPTQ_USE_CUDA
