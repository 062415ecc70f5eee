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

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <memory>
#include <random>
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

struct Workspace {
    std::unique_ptr<Dev<float>> partial;
    std::unique_ptr<Dev<unsigned>> counters;
    std::unique_ptr<Dev<h16>> deq;
    cublasHandle_t cublas = nullptr;
    Q4Workspace ws;
    Workspace() {
        const size_t pf = size_t(1) << 24;
        partial = std::make_unique<Dev<float>>(pf);
        counters = std::make_unique<Dev<unsigned>>(4096);
        CUDA_CHECK(cudaMemset(counters->p, 0, 4096 * sizeof(unsigned)));
        deq = std::make_unique<Dev<h16>>(size_t(1) << 23);
        CUBLAS_CHECK(cublasCreate(&cublas));
        ws.fused = {partial->p, pf, counters->p, 4096};
        ws.dequant = reinterpret_cast<__half *>(deq->p);
        ws.dequant_elems = deq->n;
        ws.cublas = cublas;
        ws.sm_count = sm_count();
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
    for (const LayerCase &c : kCases) {
        GptqLayer L = make_layer(c.K, c.N, c.gs, c.act_order, c.asym, c.format, rng);
        auto d = upload_layer(L);
        for (int M : {1, 3, 16, 17, 32, 40, 64}) {
            auto x = random_f16(size_t(M) * L.K, rng, -1.0f, 1.0f);
            auto ref = ref_matmul(L, x, M);
            const bool one_pass = M <= kQ4FusedMaxM;  // explicit plans only for a single pass
            Q4Plan one = q4_plan(M, d->view, 1, 1);  // fewest splits shared memory allows (1 for M = 1)
            Q4Plan many = q4_plan(M, d->view, W.ws.sm_count, 64);
            for (const Q4Plan *p : {(const Q4Plan *)nullptr, (const Q4Plan *)&one, (const Q4Plan *)&many}) {
                if (p && !one_pass) continue;
                auto y = gpu_q4(*d, x, M, 0, W.ws, p, nullptr, nullptr);
                double e = rel_err(ref, y);
                INFO("K=" << L.K << " N=" << L.N << " gs=" << c.gs << " act=" << c.act_order << " asym=" << c.asym
                          << " M=" << M << " splits=" << (p ? p->splits : -1));
                CHECK(e < 3e-3);
            }
        }
    }
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
        for (const Q4Plan *p : {(const Q4Plan *)nullptr, (const Q4Plan *)&many}) {
            if (p && M > kQ4FusedMaxM) continue;
            auto y = gpu_q4(*d, x, M, 0, W.ws, p, &init, &bias);
            INFO("M=" << M);
            CHECK(rel_err(ref, y) < 1e-3);  // fp16 weights: ~2e-4 of the product's size
        }
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

TEST_CASE("dense fp16 matmul through cuBLAS (Hugging Face layout)") {
    std::mt19937 rng(7);
    Workspace W;
    const int K = 328, N = 8 * 37;
    auto Wt = random_f16(size_t(N) * K, rng, -0.1f, 0.1f);
    Dev<h16> dW(Wt);
    for (int M : {1, 7, 130}) {
        auto x = random_f16(size_t(M) * K, rng, -1.0f, 1.0f);
        Dev<h16> dx(x), dy(size_t(M) * N);
        dy.poison();
        Q4Out out;
        out.out16 = reinterpret_cast<__half *>(dy.p);
        out.ldo = N;
        dense_matmul(W.cublas, reinterpret_cast<const __half *>(dx.p), M, K, reinterpret_cast<const __half *>(dW.p),
                     K, N, K, out, 0);
        auto h = dy.download();
        std::vector<double> ref(size_t(M) * N, 0.0), got(size_t(M) * N);
        for (int m = 0; m < M; ++m)
            for (int n = 0; n < N; ++n) {
                double s = 0;
                for (int k = 0; k < K; ++k) s += f16d(x[size_t(m) * K + k]) * f16d(Wt[size_t(n) * K + k]);
                ref[size_t(m) * N + n] = s;
                got[size_t(m) * N + n] = f16d(h[size_t(m) * N + n]);
            }
        INFO("M=" << M);
        CHECK(rel_err(ref, got) < 2e-3);
    }
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

TEST_CASE("attention (split kernel and cuBLAS path) matches the CPU reference") {
    std::mt19937 rng(10);
    Workspace W;
    for (const AttnCase &c : {AttnCase{8, 4, 8, 2, 200}, AttnCase{8, 2, 64, 3, 300}, AttnCase{4, 4, 128, 1, 160},
                              AttnCase{12, 2, 96, 2, 100}}) {
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
        dout.poison();
        attention_split(reinterpret_cast<const __half *>(dq.p), ldq, dpos.p, dseq.p, n, c.Hq, kv, scale, chunks,
                        scratch.p, reinterpret_cast<__half *>(dout.p), ldo, 0);
        auto o = dout.download();
        auto ref = attn_ref(q, ldq, pos, seq, K, V, c, scale);
        std::vector<double> got;
        for (int t = 0; t < n; ++t)
            for (int i = 0; i < c.Hq * c.D; ++i) got.push_back(f16d(o[size_t(t) * ldo + i]));
        CHECK(rel_err(ref, got) < 2e-3);

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
