// cpu_linear.cpp — see cpu_linear.h.
#include "cpu_linear.h"
#include "ops.h"
#include "../quant/pack.h"

#include <cstring>
#include <vector>

namespace gptq {

CpuLinear::CpuLinear(const LinearWeights &w) : in_(w.in), out_(w.out), quantized_(w.quantized) {
    if (w.bias) {
        bias_.resize(size_t(out_));
        tensor_to_f32(*w.bias, bias_.data());
    }
    if (!quantized_) {
        w_.resize(size_t(in_) * size_t(out_));
        tensor_to_f32(*w.weight, w_.data());
        return;
    }
    const QuantTensors &q = w.q;
    bits_ = q.bits;
    G_ = q.G;
    const int K = in_, N = out_;
    qweight_.resize(size_t(K) * bits_ / 32 * N);
    std::memcpy(qweight_.data(), q.qweight->data, qweight_.size() * 4);
    scales_.resize(size_t(G_) * N);
    tensor_to_f32(*q.scales, scales_.data());
    std::vector<int32_t> z(size_t(G_) * N);
    std::vector<int32_t> packed(size_t(G_) * N * bits_ / 32);
    std::memcpy(packed.data(), q.qzeros->data, packed.size() * 4);
    unpack_qzeros(packed.data(), G_, N, bits_, q.format, z.data());
    zeros_.resize(z.size());
    for (size_t i = 0; i < z.size(); i++) zeros_[i] = float(z[i]);
    g_idx_.resize(size_t(K));
    if (q.g_idx) {
        std::memcpy(g_idx_.data(), q.g_idx->data, size_t(K) * 4);
    } else {
        for (int k = 0; k < K; k++) g_idx_[size_t(k)] = k / q.group_size;
    }
}

int64_t CpuLinear::bytes() const {
    return int64_t(w_.size() * 4 + bias_.size() * 4 + qweight_.size() * 4 + scales_.size() * 2 +
                   zeros_.size() * size_t(bits_) / 8 + g_idx_.size() * 4);
}

void CpuLinear::dequantize_t(float *Wt, int n_threads) const {
    const int K = in_, N = out_, bits = bits_;
    const uint32_t mask = (1u << bits) - 1;
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (int k = 0; k < K; k++) {
        const int64_t bit = int64_t(k) * bits;
        const int64_t word = bit / 32;
        const int shift = int(bit % 32);
        const bool straddles = shift + bits > 32;
        const uint32_t *row = reinterpret_cast<const uint32_t *>(qweight_.data()) + word * N;
        const uint32_t *next = row + N;
        const int g = g_idx_[size_t(k)];
        const float *sc = scales_.data() + int64_t(g) * N;
        const float *zr = zeros_.data() + int64_t(g) * N;
        float *out = Wt + int64_t(k) * N;
        if (!straddles) {
            for (int n = 0; n < N; n++) out[n] = sc[n] * (float((row[n] >> shift) & mask) - zr[n]);
        } else {
            for (int n = 0; n < N; n++) {
                const uint32_t code = ((row[n] >> shift) | (next[n] << (32 - shift))) & mask;
                out[n] = sc[n] * (float(code) - zr[n]);
            }
        }
    }
}

void CpuLinear::dequantize(float *W, int n_threads) const {
    if (!quantized_) {
        std::memcpy(W, w_.data(), w_.size() * 4);
        return;
    }
    Buffer<float> Wt(size_t(in_) * out_);
    dequantize_t(Wt.data(), n_threads);
    for (int k = 0; k < in_; k++)
        for (int n = 0; n < out_; n++) W[int64_t(n) * in_ + k] = Wt[size_t(k) * out_ + size_t(n)];
}

void CpuLinear::forward(const float *x, int64_t M, float *y, float *scratch, int n_threads) const {
    const float *b = bias_.empty() ? nullptr : bias_.data();
    if (!quantized_) {
        matmul_wt(x, M, in_, w_.data(), out_, b, y);
        return;
    }
    dequantize_t(scratch, n_threads);
    matmul_w(x, M, in_, scratch, out_, b, y);
}

} // namespace gptq
