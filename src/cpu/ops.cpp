// ops.cpp — see ops.h.
#include "ops.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace gptq {

void rmsnorm(const float *x, const float *w, float *y, int64_t rows, int dim, float eps, int n_threads) {
#pragma omp parallel for num_threads(n_threads) if (rows > 1)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * dim;
        float *yr = y + r * dim;
        double ss = 0;
        for (int i = 0; i < dim; i++) ss += double(xr[i]) * xr[i];
        const float inv = 1.0f / std::sqrt(float(ss / dim) + eps);
        for (int i = 0; i < dim; i++) yr[i] = w[i] * (xr[i] * inv);
    }
}

void rope_inv_freq(float *inv_freq, int head_dim, double theta) {
    for (int i = 0; i < head_dim / 2; i++)
        inv_freq[i] = 1.0f / float(std::pow(theta, double(2 * i) / head_dim));
}

void rope_apply(float *x, int n_heads, int head_dim, int pos, const float *inv_freq) {
    const int half = head_dim / 2;
    for (int i = 0; i < half; i++) {
        const float angle = float(pos) * inv_freq[i];
        const float c = std::cos(angle), s = std::sin(angle);
        for (int h = 0; h < n_heads; h++) {
            float *xh = x + h * head_dim;
            const float a = xh[i], b = xh[i + half];
            xh[i] = a * c - b * s;
            xh[i + half] = b * c + a * s;
        }
    }
}

void silu_mul(float *gate, const float *up, int64_t n, int n_threads) {
#pragma omp parallel for num_threads(n_threads) if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        const float g = gate[i];
        gate[i] = g / (1.0f + std::exp(-g)) * up[i];
    }
}

static void add_bias(float *y, int64_t M, int N, const float *bias) {
    if (!bias) return;
    for (int64_t m = 0; m < M; m++)
        for (int n = 0; n < N; n++) y[m * N + n] += bias[n];
}

void matmul_wt(const float *x, int64_t M, int K, const float *W, int N, const float *bias, float *y) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(M), N, K, 1.0f, x, K, W, K, 0.0f, y, N);
    add_bias(y, M, N, bias);
}

void matmul_w(const float *x, int64_t M, int K, const float *Wt, int N, const float *bias, float *y) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(M), N, K, 1.0f, x, K, Wt, N, 0.0f, y, N);
    add_bias(y, M, N, bias);
}

void add_inplace(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

void attend_head(const float *Q, int ldq, int m, const int *pos, const float *K, const float *V, int ldkv, int L,
                 int head_dim, float *O, int ldo, float *S) {
    const float scale = 1.0f / std::sqrt(float(head_dim));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, L, head_dim, scale, Q, ldq, K, ldkv, 0.0f, S, L);
    for (int i = 0; i < m; i++) {
        float *s = S + int64_t(i) * L;
        const int n = pos[i] + 1;
        float mx = -INFINITY;
        for (int j = 0; j < n; j++) mx = std::max(mx, s[j]);
        float sum = 0;
        for (int j = 0; j < n; j++) {
            s[j] = std::exp(s[j] - mx);
            sum += s[j];
        }
        const float inv = 1.0f / sum;
        for (int j = 0; j < n; j++) s[j] *= inv;
        std::fill(s + n, s + L, 0.0f);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, head_dim, L, 1.0f, S, L, V, ldkv, 0.0f, O, ldo);
}

void causal_attention(const float *q, const float *k, const float *v, float *out, int n_seq, int seq_len,
                      int n_heads, int n_kv_heads, int head_dim, int n_threads) {
    const int group = n_heads / n_kv_heads;
    const int qd = n_heads * head_dim, kvd = n_kv_heads * head_dim;
    std::vector<int> pos(static_cast<size_t>(seq_len));
    for (int t = 0; t < seq_len; t++) pos[size_t(t)] = t;
    std::vector<float> S(size_t(seq_len) * size_t(seq_len));
    for (int s = 0; s < n_seq; s++) {
        const int64_t base = int64_t(s) * seq_len;
        for (int h = 0; h < n_heads; h++) {
            const int kh = h / group;
            attend_head(q + base * qd + h * head_dim, qd, seq_len, pos.data(), k + base * kvd + kh * head_dim,
                        v + base * kvd + kh * head_dim, kvd, seq_len, head_dim, out + base * qd + h * head_dim, qd,
                        S.data());
        }
    }
}

} // namespace gptq
