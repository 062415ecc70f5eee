// The GPTQ solver for one layer: Hessian accumulation, quality against round-to-nearest and against
// an independent unblocked double-precision GPTQ, the layout of its results, and its failure modes.
#include <doctest/doctest.h>

#include "common.h"
#include "quant/pack.h"
#include "quant/solver.h"

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <vector>

namespace gptq {
void set_log_callback(gptq_log_callback cb, void *user);  // common.cpp
}

using namespace gptq;

namespace {

struct Problem {
    int N = 0, K = 0, rows = 0;
    std::vector<float> W;  // [N, K]
    std::vector<float> X;  // [rows, K]
    std::vector<float> H;  // [K, K]
};

// Calibration inputs with correlated features (a shared low-rank factor plus an AR(1) chain) and
// uneven feature scales (so act-order has an order to find); Gaussian weights with a few outliers.
Problem make_problem(int N, int K, int rows, uint32_t seed, const std::vector<int> &dead_inputs = {}) {
    Problem p;
    p.N = N; p.K = K; p.rows = rows;
    std::mt19937 rng(seed);
    std::normal_distribution<float> g(0.f, 1.f);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    std::vector<float> fscale(K), load(K);
    for (int k = 0; k < K; ++k) { fscale[k] = std::exp(u(rng)); load[k] = g(rng); }
    p.X.resize(size_t(rows) * K);
    for (int r = 0; r < rows; ++r) {
        const float f = g(rng);
        float prev = g(rng);
        for (int k = 0; k < K; ++k) {
            prev = 0.8f * prev + 0.6f * g(rng);
            p.X[size_t(r) * K + k] = fscale[k] * (prev + 0.7f * f * load[k]);
        }
    }
    for (int k : dead_inputs)
        for (int r = 0; r < rows; ++r) p.X[size_t(r) * K + k] = 0.f;
    p.W.resize(size_t(N) * K);
    for (auto &w : p.W) w = 0.05f * g(rng);
    for (int i = 0; i < N; ++i) p.W[size_t(rng() % p.W.size())] *= 8.f;
    HessianAccumulator acc(K);
    const int first = rows / 3;  // two uneven batches exercise the running rescale
    acc.add(p.X.data(), first);
    acc.add(p.X.data() + size_t(first) * K, rows - first);
    p.H.assign(acc.data(), acc.data() + size_t(K) * K);
    return p;
}

// Σ_n Δ_n (H + damp_abs·I) Δ_nᵀ with Δ = W - Ŵ: proportional to ‖(W - Ŵ) Xᵀ‖² (H = 2/n XᵀX).
double recon_error(const std::vector<float> &W, const std::vector<float> &What,
                   const std::vector<float> &H, int N, int K, double damp_abs = 0) {
    std::vector<double> D(size_t(N) * K), Hd(H.begin(), H.end()), DH(size_t(N) * K);
    for (size_t i = 0; i < D.size(); ++i) D[i] = double(W[i]) - What[i];
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, K, K, 1.0, D.data(), K, Hd.data(), K,
                0.0, DH.data(), K);
    double total = 0;
    for (size_t i = 0; i < D.size(); ++i) total += D[i] * (DH[i] + damp_abs * D[i]);
    return total;
}

gptq_status status_of(const std::function<void()> &f, std::string *msg = nullptr) {
    try {
        f();
    } catch (const Error &e) {
        if (msg) *msg = e.what();
        return e.status();
    }
    return GPTQ_OK;
}

// Packs the result as a v2 checkpoint would hold it and dequantizes it back.
std::vector<float> dequantize_result(const GptqResult &r, int bits) {
    std::vector<int32_t> qw(size_t(r.K) * bits / 32 * r.N), qz(size_t(r.G) * r.N * bits / 32);
    pack_qweight(r.codes.data(), r.K, r.N, bits, qw.data());
    pack_qzeros(r.zeros.data(), r.G, r.N, bits, 2, qz.data());
    std::vector<uint16_t> s(r.scales.size());
    for (size_t i = 0; i < s.size(); ++i) s[i] = f32_to_f16(r.scales[i]);
    std::vector<float> W(size_t(r.N) * r.K);
    dequantize_gptq(qw.data(), qz.data(), s.data(), r.g_idx.data(), r.K, r.N, r.G, bits, 2, W.data());
    return W;
}

float f16_round(float x) { return f16_to_f32(f32_to_f16(x)); }

// Act-order's permutation computed independently: stable, by decreasing diagonal (dead = 1).
std::vector<int> act_order(const std::vector<float> &H, int K) {
    std::vector<int> perm(K);
    std::iota(perm.begin(), perm.end(), 0);
    auto diag = [&](int k) { float d = H[size_t(k) * K + k]; return d == 0.f ? 1.f : d; };
    std::stable_sort(perm.begin(), perm.end(), [&](int a, int b) { return diag(a) > diag(b); });
    return perm;
}

// An independent, unblocked GPTQ in double precision in the OBS form of the paper: quantize one
// column, spread its error with the current inverse Hessian's row, then eliminate that row and
// column from the inverse. Groups start on fully updated weights (equal to the blocked solver's
// choice when groups coincide with blocks). Returns the dequantized weights.
std::vector<float> naive_gptq(const Problem &p, const GptqOptions &opt) {
    const int N = p.N, K = p.K, maxq = (1 << opt.bits) - 1;
    std::vector<double> W(p.W.begin(), p.W.end()), Hd(p.H.begin(), p.H.end());
    std::vector<float> scale(N), zero(N);
    auto set_group = [&](const std::vector<int> &cols) {
        for (int n = 0; n < N; ++n) {
            std::vector<float> w;
            for (int k : cols) w.push_back(float(W[size_t(n) * K + k]));
            QuantParams q = find_quant_params(w.data(), int(w.size()), 1, opt.bits, opt.sym);
            scale[n] = f16_round(q.scale);
            zero[n] = q.zero;
        }
    };
    std::vector<int> all(K);
    std::iota(all.begin(), all.end(), 0);
    if (opt.group_size == -1) set_group(all);
    for (int k = 0; k < K; ++k)
        if (Hd[size_t(k) * K + k] == 0) {
            Hd[size_t(k) * K + k] = 1;
            for (int n = 0; n < N; ++n) W[size_t(n) * K + k] = 0;
        }
    const std::vector<int> perm = opt.desc_act ? act_order(p.H, K) : all;
    double mean = 0;
    for (int k = 0; k < K; ++k) mean += Hd[size_t(k) * K + k];
    mean /= K;
    for (int k = 0; k < K; ++k) Hd[size_t(k) * K + k] += opt.damp_percent * mean;
    // Gauss-Jordan inverse (H is positive definite after damping: no pivoting needed).
    std::vector<double> A = Hd, Inv(size_t(K) * K, 0);
    for (int k = 0; k < K; ++k) Inv[size_t(k) * K + k] = 1;
    for (int c = 0; c < K; ++c) {
        const double piv = A[size_t(c) * K + c];
        for (int j = 0; j < K; ++j) { A[size_t(c) * K + j] /= piv; Inv[size_t(c) * K + j] /= piv; }
        for (int r = 0; r < K; ++r) {
            if (r == c) continue;
            const double f = A[size_t(r) * K + c];
            if (f == 0) continue;
            for (int j = 0; j < K; ++j) {
                A[size_t(r) * K + j] -= f * A[size_t(c) * K + j];
                Inv[size_t(r) * K + j] -= f * Inv[size_t(c) * K + j];
            }
        }
    }
    std::vector<float> out(size_t(N) * K);
    for (int j = 0; j < K; ++j) {
        const int c = perm[j];
        if (opt.group_size != -1 && j % opt.group_size == 0)
            set_group(std::vector<int>(perm.begin() + j, perm.begin() + j + opt.group_size));
        const double d = Inv[size_t(c) * K + c];
        for (int n = 0; n < N; ++n) {
            const double w = W[size_t(n) * K + c];
            const int q = quantize_value(float(w), scale[n], zero[n], maxq);
            const float dq = dequantize_value(q, scale[n], zero[n]);
            out[size_t(n) * K + c] = dq;
            const double e = (w - dq) / d;
            for (int t = j + 1; t < K; ++t) W[size_t(n) * K + perm[t]] -= e * Inv[size_t(c) * K + perm[t]];
        }
        for (int a = j + 1; a < K; ++a)
            for (int b = j + 1; b < K; ++b) {
                const int ra = perm[a], rb = perm[b];
                Inv[size_t(ra) * K + rb] -= Inv[size_t(ra) * K + c] * Inv[size_t(c) * K + rb] / d;
            }
    }
    return out;
}

} // namespace

TEST_CASE("HessianAccumulator keeps H = 2/n XᵀX as a running average") {
    const int K = 24, rows = 100;
    std::mt19937 rng(3);
    std::normal_distribution<float> g;
    std::vector<float> X(size_t(rows) * K);
    for (auto &x : X) x = g(rng);
    HessianAccumulator acc(K);
    acc.add(X.data(), 7);
    acc.add(X.data() + 7 * K, 0);
    acc.add(X.data() + 7 * K, 60);
    acc.add(X.data() + 67 * K, rows - 67);
    CHECK(acc.n_samples() == rows);
    double worst = 0;
    for (int i = 0; i < K; ++i)
        for (int j = 0; j < K; ++j) {
            double h = 0;
            for (int r = 0; r < rows; ++r) h += double(X[size_t(r) * K + i]) * X[size_t(r) * K + j];
            h *= 2.0 / rows;
            worst = std::max(worst, std::fabs(acc.data()[i * K + j] - h));
            CHECK(acc.data()[i * K + j] == acc.data()[j * K + i]);  // both triangles, symmetric
        }
    CHECK(worst < 1e-4);

    // A NaN or Inf input is refused and leaves H as it was.
    std::vector<float> before(acc.data(), acc.data() + K * K);
    std::vector<float> bad(X.begin(), X.begin() + 3 * K);
    bad[2 * K + 5] = NAN;
    CHECK(status_of([&] { acc.add(bad.data(), 3); }) == GPTQ_ERR_NUMERIC);
    bad[2 * K + 5] = INFINITY;
    CHECK(status_of([&] { acc.add(bad.data(), 3); }) == GPTQ_ERR_NUMERIC);
    CHECK(acc.n_samples() == rows);
    CHECK(std::memcmp(before.data(), acc.data(), before.size() * 4) == 0);
    CHECK(status_of([] { HessianAccumulator h(0); }) == GPTQ_ERR_INVALID_ARG);
}

TEST_CASE("GPTQ beats round-to-nearest clearly, and its result is what the file dequantizes to") {
    const Problem p = make_problem(64, 256, 2048, 11);
    struct Case { bool desc_act, static_groups; };
    const Case orders[] = {{false, false}, {true, false}, {false, true}, {true, true}};
    for (int bits : {2, 3, 4, 8}) {
        for (int gs : {-1, 32, 64, 128}) {
            for (bool sym : {true, false}) {
                for (const Case &c : orders) {
                    if (gs == -1 && c.static_groups) continue;
                    GptqOptions opt;
                    opt.bits = bits; opt.group_size = gs; opt.sym = sym;
                    opt.desc_act = c.desc_act; opt.static_groups = c.static_groups;
                    CAPTURE(bits); CAPTURE(gs); CAPTURE(sym); CAPTURE(c.desc_act); CAPTURE(c.static_groups);
                    const GptqResult r = gptq_quantize_layer(p.W.data(), p.N, p.K, p.H.data(), opt, "t");
                    const GptqResult rtn = rtn_quantize_layer(p.W.data(), p.N, p.K, opt);
                    const double e_gptq = recon_error(p.W, r.dequantized, p.H, p.N, p.K);
                    const double e_rtn = recon_error(p.W, rtn.dequantized, p.H, p.N, p.K);
                    CHECK(e_gptq < 0.5 * e_rtn);

                    // Shapes, and the dequantized weights are exactly those of the packed result.
                    const int G = gs == -1 ? 1 : p.K / gs;
                    REQUIRE(r.G == G);
                    REQUIRE(r.scales.size() == size_t(G) * p.N);
                    REQUIRE(r.zeros.size() == size_t(G) * p.N);
                    REQUIRE(r.codes.size() == size_t(p.K) * p.N);
                    CHECK(dequantize_result(r, bits) == r.dequantized);
                    CHECK(dequantize_result(rtn, bits) == rtn.dequantized);
                    bool fp16_exact = true;
                    for (float s : r.scales) fp16_exact = fp16_exact && s == f16_round(s) && s > 0;
                    CHECK(fp16_exact);
                    bool sym_zeros = true;
                    for (int32_t z : r.zeros) sym_zeros = sym_zeros && z == (1 << (bits - 1));
                    CHECK(sym_zeros == sym);

                    // g_idx: k / gs, or the group of k's act-order position.
                    std::vector<int32_t> expect(p.K, 0);
                    if (gs != -1) {
                        const std::vector<int> perm = act_order(p.H, p.K);
                        for (int j = 0; j < p.K; ++j) {
                            if (c.desc_act && !c.static_groups) expect[perm[j]] = j / gs;
                            else expect[j] = j / gs;
                        }
                    }
                    CHECK(r.g_idx == expect);
                }
            }
        }
    }
}

TEST_CASE("act-order reorders g_idx and changes the solution") {
    const Problem p = make_problem(64, 256, 2048, 12);
    GptqOptions opt;
    opt.group_size = 32;
    const GptqResult plain = gptq_quantize_layer(p.W.data(), p.N, p.K, p.H.data(), opt, "t");
    opt.desc_act = true;
    const GptqResult act = gptq_quantize_layer(p.W.data(), p.N, p.K, p.H.data(), opt, "t");
    CHECK_FALSE(std::is_sorted(act.g_idx.begin(), act.g_idx.end()));
    CHECK(std::is_sorted(plain.g_idx.begin(), plain.g_idx.end()));
    CHECK(act.codes != plain.codes);
    for (int g = 0; g < 8; ++g) CHECK(std::count(act.g_idx.begin(), act.g_idx.end(), g) == 32);
}

TEST_CASE("group grids: static groups from the original W; others from W when the group starts") {
    const Problem p = make_problem(32, 256, 1024, 13);
    auto grid_of = [&](int n, int k0, int len, bool sym, int bits) {
        QuantParams q = find_quant_params(p.W.data() + size_t(n) * p.K + k0, len, 1, bits, sym);
        q.scale = f16_round(q.scale);
        return q;
    };
    for (bool sym : {true, false}) {
        CAPTURE(sym);
        GptqOptions opt;
        opt.bits = 3; opt.group_size = 32; opt.sym = sym;
        opt.desc_act = true; opt.static_groups = true;
        const GptqResult st = gptq_quantize_layer(p.W.data(), p.N, p.K, p.H.data(), opt, "t");
        int mismatched = 0;
        for (int g = 0; g < 8; ++g)
            for (int n = 0; n < p.N; ++n) {
                const QuantParams q = grid_of(n, g * 32, 32, sym, 3);
                mismatched += st.scales[size_t(g) * p.N + n] != q.scale ||
                              st.zeros[size_t(g) * p.N + n] != int32_t(q.zero);
            }
        CHECK(mismatched == 0);

        // Per column (group -1): one grid from the whole original row.
        opt.group_size = -1; opt.static_groups = false;
        const GptqResult pc = gptq_quantize_layer(p.W.data(), p.N, p.K, p.H.data(), opt, "t");
        mismatched = 0;
        for (int n = 0; n < p.N; ++n) {
            const QuantParams q = grid_of(n, 0, p.K, sym, 3);
            mismatched += pc.scales[n] != q.scale || pc.zeros[n] != int32_t(q.zero);
        }
        CHECK(mismatched == 0);

        // Without act-order, the first block's groups see W as the reference's blocked loop does:
        // before this block's updates, so groups 0..3 (columns 0..127, block 128) use the original W,
        // while group 4 starts a new block after the lazy update and sees updated weights.
        opt.group_size = 32; opt.desc_act = false;
        const GptqResult dyn = gptq_quantize_layer(p.W.data(), p.N, p.K, p.H.data(), opt, "t");
        mismatched = 0;
        int later_differs = 0;
        for (int n = 0; n < p.N; ++n) {
            for (int g = 0; g < 4; ++g) {
                const QuantParams q = grid_of(n, g * 32, 32, sym, 3);
                mismatched += dyn.scales[size_t(g) * p.N + n] != q.scale;
            }
            later_differs += dyn.scales[size_t(4) * p.N + n] != grid_of(n, 128, 32, sym, 3).scale;
        }
        CHECK(mismatched == 0);
        CHECK(later_differs > p.N / 2);
    }
}

TEST_CASE("clipping search: each group keeps the shrunk scale with the least error, found by brute force") {
    const Problem p = make_problem(24, 128, 512, 21);
    for (bool weighted : {false, true}) {
        for (bool sym : {true, false}) {
            CAPTURE(weighted); CAPTURE(sym);
            GptqOptions opt;
            opt.bits = 3; opt.group_size = 32; opt.sym = sym;
            opt.desc_act = true; opt.static_groups = true;  // grids come from the original W
            opt.mse_clip = true; opt.mse_h_weighted = weighted; opt.mse_norm = weighted ? 2.f : 2.4f;
            const GptqResult r = gptq_quantize_layer(p.W.data(), p.N, p.K, p.H.data(), opt, "t");
            int mismatched = 0, shrunk = 0;
            for (int g = 0; g < 4; ++g)
                for (int n = 0; n < p.N; ++n) {
                    const float *w = p.W.data() + size_t(n) * p.K + g * 32;
                    const QuantParams full = find_quant_params(w, 32, 1, 3, sym);
                    auto error_of = [&](float s) {
                        double e = 0;
                        for (int k = 0; k < 32; ++k) {
                            const float d = std::fabs(w[k] - dequantize_value(quantize_value(w[k], s, full.zero, 7), s, full.zero));
                            const double h = weighted ? p.H[size_t(g * 32 + k) * p.K + g * 32 + k] : 1.0;
                            e += h * (weighted ? double(d) * d : std::pow(double(d), 2.4));
                        }
                        return e;
                    };
                    double best = INFINITY;
                    // Candidates: p times the group's fp16 scale, rounded to fp16 again.
                    for (int i = 0; i < 80; ++i)
                        best = std::min(best, error_of(f16_round(f16_round(full.scale) * (1.f - float(i) / 100.f))));
                    // The search sums in float: its pick may differ from the best only by rounding.
                    const float got = r.scales[size_t(g) * p.N + n];
                    mismatched += error_of(got) > best * (1 + 1e-5);
                    shrunk += got < f16_round(full.scale);
                    CHECK(r.zeros[size_t(g) * p.N + n] == int32_t(full.zero));
                }
            CHECK(mismatched == 0);
            CHECK(shrunk > 0);
        }
    }
}

TEST_CASE("clipping search lowers the reconstruction error at 3 and 4 bits") {
    const Problem p = make_problem(64, 256, 2048, 22);
    for (int bits : {3, 4}) {
        for (bool desc_act : {false, true}) {
            CAPTURE(bits); CAPTURE(desc_act);
            GptqOptions opt;
            opt.bits = bits; opt.group_size = 32; opt.desc_act = desc_act;
            const GptqResult plain = gptq_quantize_layer(p.W.data(), p.N, p.K, p.H.data(), opt, "t");
            opt.mse_clip = true;
            const GptqResult clip = gptq_quantize_layer(p.W.data(), p.N, p.K, p.H.data(), opt, "t");
            const double e_plain = recon_error(p.W, plain.dequantized, p.H, p.N, p.K);
            const double e_clip = recon_error(p.W, clip.dequantized, p.H, p.N, p.K);
            CHECK(e_clip < e_plain);
            CHECK(dequantize_result(clip, bits) == clip.dequantized);
        }
    }
}

TEST_CASE("the blocked fp32 solver agrees with an independent unblocked double-precision GPTQ") {
    const Problem p = make_problem(48, 256, 2048, 14, {9, 200});
    for (int gs : {-1, 128}) {
        for (bool desc_act : {false, true}) {
            for (bool sym : {true, false}) {
                CAPTURE(gs); CAPTURE(desc_act); CAPTURE(sym);
                GptqOptions opt;
                opt.bits = 3; opt.group_size = gs; opt.sym = sym; opt.desc_act = desc_act;
                const GptqResult r = gptq_quantize_layer(p.W.data(), p.N, p.K, p.H.data(), opt, "t");
                const std::vector<float> ref = naive_gptq(p, opt);
                size_t same = 0;
                for (size_t i = 0; i < ref.size(); ++i) same += r.dequantized[i] == ref[i];
                CHECK(double(same) / ref.size() > 0.99);
                const double e = recon_error(p.W, r.dequantized, p.H, p.N, p.K);
                const double e_ref = recon_error(p.W, ref, p.H, p.N, p.K);
                CHECK(std::fabs(e - e_ref) < 0.01 * e_ref);
            }
        }
    }
}

TEST_CASE("block size only changes rounding while groups start on block boundaries") {
    // (Where a group starts mid-block, the reference's grid sees that block's columns before
    // their in-block updates, so block size then legitimately changes the grids; see above.)
    const Problem p = make_problem(48, 256, 2048, 15);
    GptqOptions opt;
    opt.bits = 4; opt.group_size = 128; opt.desc_act = true;
    const GptqResult a = gptq_quantize_layer(p.W.data(), p.N, p.K, p.H.data(), opt, "t");
    for (int bs : {1, 32, 64}) {
        CAPTURE(bs);
        opt.block_size = bs;
        const GptqResult b = gptq_quantize_layer(p.W.data(), p.N, p.K, p.H.data(), opt, "t");
        size_t same = 0;
        for (size_t i = 0; i < a.codes.size(); ++i) same += a.codes[i] == b.codes[i];
        CHECK(double(same) / a.codes.size() > 0.99);
    }
    opt.group_size = -1;
    const GptqResult c = gptq_quantize_layer(p.W.data(), p.N, p.K, p.H.data(), opt, "t");
    for (int bs : {1, 100, 1000}) {
        CAPTURE(bs);
        opt.block_size = bs;
        const GptqResult d = gptq_quantize_layer(p.W.data(), p.N, p.K, p.H.data(), opt, "t");
        size_t same = 0;
        for (size_t i = 0; i < c.codes.size(); ++i) same += c.codes[i] == d.codes[i];
        CHECK(double(same) / c.codes.size() > 0.99);
    }
}

TEST_CASE("the reported error is the GPTQ loss: ½ Σ ΔHΔᵀ on the damped Hessian") {
    const Problem p = make_problem(32, 128, 1024, 16);
    for (bool fp16 : {true, false}) {
        GptqOptions opt;
        opt.bits = 3; opt.group_size = 32; opt.fp16_scales = fp16;
        const GptqResult r = gptq_quantize_layer(p.W.data(), p.N, p.K, p.H.data(), opt, "t");
        double mean = 0;
        for (int k = 0; k < p.K; ++k) mean += p.H[size_t(k) * p.K + k];
        mean /= p.K;
        // The fake-quant weights the solver used: with fp32 scales they differ from the file's.
        std::vector<float> used(size_t(p.N) * p.K);
        for (int n = 0; n < p.N; ++n)
            for (int k = 0; k < p.K; ++k) {
                const size_t gn = size_t(r.g_idx[k]) * p.N + n;
                used[size_t(n) * p.K + k] =
                    dequantize_value(r.codes[size_t(k) * p.N + n], r.scales[gn], float(r.zeros[gn]));
            }
        const double loss = 0.5 * recon_error(p.W, used, p.H, p.N, p.K, opt.damp_percent * mean);
        CAPTURE(fp16);
        CHECK(r.error == doctest::Approx(loss).epsilon(2e-3));
        CHECK(r.damp_used == opt.damp_percent);
        bool exact = true;
        for (float s : r.scales) exact = exact && s == f16_round(s);
        CHECK(exact == fp16);  // fp32 scales are kept as the reference computes them
        CHECK(dequantize_result(r, 3) == r.dequantized);
    }
}

TEST_CASE("the solver's first column rounds half to even, like the grid") {
    // Per-column grid with max |w| = 7.5 (sym 4-bit: scale 1, z 8); column 0 is quantized before
    // any error feedback, so its codes are exactly round(w) + 8 with ties to even.
    const int N = 24, K = 64;
    const Problem p = make_problem(N, K, 256, 22);
    std::vector<float> W(size_t(N) * K);
    std::mt19937 rng(22);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    for (auto &w : W) w = u(rng);
    const float halves[8] = {0.5f, 1.5f, 2.5f, 3.5f, -0.5f, -1.5f, -2.5f, -6.5f};
    const int expect[8] = {8, 10, 10, 12, 8, 6, 6, 2};
    for (int n = 0; n < N; ++n) {
        W[size_t(n) * K + 0] = halves[n % 8];
        W[size_t(n) * K + 1] = 7.5f;
    }
    GptqOptions opt;
    opt.group_size = -1;
    const GptqResult r = gptq_quantize_layer(W.data(), N, K, p.H.data(), opt, "t");
    for (int n = 0; n < N; ++n) {
        CAPTURE(n);
        CHECK(r.scales[n] == 1.0f);
        CHECK(int(r.codes[n]) == expect[n % 8]);  // codes row k = 0
    }
}

TEST_CASE("dead inputs give zero weights") {
    const std::vector<int> dead = {0, 5, 77, 127};
    const Problem p = make_problem(32, 128, 512, 17, dead);
    for (int k : dead) CHECK(p.H[size_t(k) * p.K + k] == 0.f);
    for (bool desc_act : {false, true})
        for (bool sym : {false, true}) {
            GptqOptions opt;
            opt.group_size = 32; opt.desc_act = desc_act; opt.sym = sym;
            const GptqResult r = gptq_quantize_layer(p.W.data(), p.N, p.K, p.H.data(), opt, "t");
            int nonzero = 0;
            for (int n = 0; n < p.N; ++n)
                for (int k : dead) nonzero += r.dequantized[size_t(n) * p.K + k] != 0.f;
            CHECK(nonzero == 0);
        }
}

TEST_CASE("bad Hessians and options are refused with clear errors") {
    const Problem p = make_problem(16, 64, 256, 18);
    GptqOptions opt;
    opt.group_size = 32;
    std::string msg;
    std::vector<float> H = p.H;
    H[3 * 64 + 9] = NAN;
    CHECK(status_of([&] { gptq_quantize_layer(p.W.data(), 16, 64, H.data(), opt, "blk.0.q"); }, &msg) ==
          GPTQ_ERR_NUMERIC);
    CHECK(msg.find("blk.0.q") != std::string::npos);
    std::vector<float> W = p.W;
    W[100] = -INFINITY;
    CHECK(status_of([&] { gptq_quantize_layer(W.data(), 16, 64, p.H.data(), opt, "blk.0.q"); }) ==
          GPTQ_ERR_NUMERIC);
    CHECK(status_of([&] { rtn_quantize_layer(W.data(), 16, 64, opt); }) == GPTQ_ERR_NUMERIC);

    for (int gs : {48, 0, -2, 128}) {
        opt.group_size = gs;
        CAPTURE(gs);
        CHECK(status_of([&] { gptq_quantize_layer(p.W.data(), 16, 64, p.H.data(), opt, "x"); }) ==
              GPTQ_ERR_INVALID_ARG);
        CHECK(status_of([&] { rtn_quantize_layer(p.W.data(), 16, 64, opt); }) == GPTQ_ERR_INVALID_ARG);
    }
    opt.group_size = 32;
    opt.bits = 5;
    CHECK(status_of([&] { gptq_quantize_layer(p.W.data(), 16, 64, p.H.data(), opt, "x"); }) ==
          GPTQ_ERR_UNSUPPORTED);
}

namespace {
std::vector<std::string> g_warnings;
void collect_log(int32_t level, const char *message, void *) {
    if (level == GPTQ_LOG_WARN) g_warnings.push_back(message);
}
} // namespace

TEST_CASE("an indefinite Hessian is re-damped; a hopeless one fails naming the layer") {
    const int K = 64, N = 16;
    std::vector<float> W(size_t(N) * K);
    std::mt19937 rng(19);
    std::normal_distribution<float> g(0.f, 0.1f);
    for (auto &w : W) w = g(rng);
    // Identity with a 2x2 block [[1, 1.045], [1.045, 1]]: eigenvalue -0.045, mean diagonal 1, so
    // damping must reach 0.05 (four increments of 0.01 past the first try).
    std::vector<float> H(size_t(K) * K, 0.f);
    for (int k = 0; k < K; ++k) H[size_t(k) * K + k] = 1.f;
    H[3 * K + 7] = H[7 * K + 3] = 1.045f;
    GptqOptions opt;
    opt.group_size = 32;
    g_warnings.clear();
    set_log_callback(collect_log, nullptr);
    const GptqResult r = gptq_quantize_layer(W.data(), N, K, H.data(), opt, "layers.2.mlp.up_proj");
    set_log_callback(nullptr, nullptr);
    CHECK(r.damp_used > 0.045f);
    CHECK(r.damp_used < 0.055f);
    CHECK(g_warnings.size() == 4);
    REQUIRE_FALSE(g_warnings.empty());
    CHECK(g_warnings[0].find("layers.2.mlp.up_proj") != std::string::npos);

    // Eigenvalue -1 needs a damp above 1: ten tries of +0.01 cannot get there.
    H[3 * K + 7] = H[7 * K + 3] = 2.f;
    std::string msg;
    CHECK(status_of([&] { gptq_quantize_layer(W.data(), N, K, H.data(), opt, "layers.2.mlp.up_proj"); },
                    &msg) == GPTQ_ERR_NUMERIC);
    CHECK(msg.find("layers.2.mlp.up_proj") != std::string::npos);
    // No automatic increment: the first failure is final.
    opt.damp_auto_increment = 0;
    H[3 * K + 7] = H[7 * K + 3] = 1.05f;
    CHECK(status_of([&] { gptq_quantize_layer(W.data(), N, K, H.data(), opt, "l"); }) == GPTQ_ERR_NUMERIC);
}

TEST_CASE("round-to-nearest quantizes each weight on its group's grid") {
    const Problem p = make_problem(16, 128, 64, 20);
    for (bool sym : {true, false}) {
        GptqOptions opt;
        opt.bits = 4; opt.group_size = 64; opt.sym = sym;
        const GptqResult r = rtn_quantize_layer(p.W.data(), p.N, p.K, opt);
        int bad = 0;
        for (int n = 0; n < p.N; ++n)
            for (int k = 0; k < p.K; ++k) {
                QuantParams q = find_quant_params(p.W.data() + size_t(n) * p.K + k / 64 * 64, 64, 1, 4, sym);
                q.scale = f16_round(q.scale);
                const int code = quantize_value(p.W[size_t(n) * p.K + k], q.scale, q.zero, 15);
                bad += r.codes[size_t(k) * p.N + n] != code;
                bad += r.dequantized[size_t(n) * p.K + k] != dequantize_value(code, q.scale, q.zero);
            }
        CHECK(bad == 0);
    }
}

TEST_CASE("Llama-shaped layers solve quickly (1536x512 and 512x1536)") {
    for (int K : {512, 1536}) {
        const int N = K == 512 ? 1536 : 512;
        const Problem p = make_problem(N, K, 256, 21);
        GptqOptions opt;
        opt.desc_act = true;
        opt.n_threads = 2;
        const auto t0 = std::chrono::steady_clock::now();
        const GptqResult r = gptq_quantize_layer(p.W.data(), N, K, p.H.data(), opt, "t");
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        MESSAGE("GPTQ w4 g128 act-order, N=" << N << " K=" << K << ": " << s * 1e3 << " ms");
        CHECK(r.error > 0);
    }
}
