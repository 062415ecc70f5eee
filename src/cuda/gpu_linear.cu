// gpu_linear.cu — building the CUDA backend's linear layers (gpu_linear.cuh).
#include "gpu_linear.cuh"

#include "common.h"
#include "cuda_check.cuh"
#include "quant/pack.h"
#include "random_fill.cuh"

#include <cmath>
#include <cstring>
#include <string>

namespace gptq {
namespace cuda {

std::vector<float> tensor_f32(const TensorView &t) {
    std::vector<float> v(size_t(t.numel()));
    tensor_to_f32(t, v.data());
    return v;
}

void append_f16(const TensorView &t, std::vector<uint16_t> &dst) {
    const size_t n = size_t(t.numel()), off = dst.size();
    dst.resize(off + n);
    if (t.dtype == DType::F16) {
        std::memcpy(dst.data() + off, t.data, n * 2);
        return;
    }
    std::vector<float> f = tensor_f32(t);
    for (size_t i = 0; i < n; ++i) dst[off + i] = f32_to_f16(f[i]);
}

namespace {


// The tensors are memory-mapped and may be unaligned: copy int32 data out first.
std::vector<int32_t> copy_i32(const TensorView &t) {
    std::vector<int32_t> v(size_t(t.numel()));
    std::memcpy(v.data(), t.data, v.size() * 4);
    return v;
}
std::vector<uint16_t> copy_u16(const TensorView &t) {
    std::vector<uint16_t> v(size_t(t.numel()));
    std::memcpy(v.data(), t.data, v.size() * 2);
    return v;
}

void set_q4(GpuLinear &L, const Q4Host &h) {
    L.q4 = true;
    L.qw = upload(h.qw);
    L.sc = upload(h.scales);
    if (!h.uniform_zero) L.zr = upload(h.zeros);
    if (!h.perm.empty()) L.pm = upload(h.perm);
    Q4Dev &v = L.q;
    v.qw = L.qw.as<const uint4>();
    v.scales = L.sc.as<const __half>();
    v.zeros = h.uniform_zero ? nullptr : L.zr.as<const __half>();
    v.perm = h.perm.empty() ? nullptr : L.pm.as<const int32_t>();
    v.K = h.K; v.N = h.N; v.KT = h.KT; v.NT = h.NT; v.G = h.G; v.group_kt = h.group_kt; v.zero = h.zero;
}

// Tries the 4-bit path for parts fused along N: same bits (4), groups and g_idx.
bool try_q4(const std::vector<const LinearWeights *> &parts, GpuLinear &L, std::string *why) {
    const QuantTensors &q0 = parts[0]->q;
    for (const LinearWeights *p : parts) {
        if (!p->quantized || p->q.bits != 4) { *why = "not 4-bit"; return false; }
        if (p->q.group_size != q0.group_size || p->q.G != q0.G) { *why = "parts differ in groups"; return false; }
        if (!p->q.g_idx != !q0.g_idx ||
            (p->q.g_idx && std::memcmp(p->q.g_idx->data, q0.g_idx->data, size_t(L.K) * 4) != 0)) {
            *why = "parts differ in g_idx";
            return false;
        }
    }
    const int K = L.K, N = L.N, G = q0.G;
    // Concatenate the parts' GPTQ tensors along N (zeros re-packed as true values, format v2).
    std::vector<int32_t> qweight(size_t(K / 8) * N), zeros_true(size_t(G) * N), qzeros(size_t(G) * (N / 8));
    std::vector<uint16_t> scales(size_t(G) * N);
    int off = 0;
    for (const LinearWeights *p : parts) {
        const int n = p->out;
        std::vector<int32_t> w = copy_i32(*p->q.qweight), z = copy_i32(*p->q.qzeros);
        std::vector<uint16_t> s = copy_u16(*p->q.scales);
        std::vector<int32_t> zt(size_t(G) * n);
        unpack_qzeros(z.data(), G, n, 4, p->q.format, zt.data());
        for (int r = 0; r < K / 8; ++r) std::memcpy(&qweight[size_t(r) * N + off], &w[size_t(r) * n], size_t(n) * 4);
        for (int g = 0; g < G; ++g) {
            std::memcpy(&zeros_true[size_t(g) * N + off], &zt[size_t(g) * n], size_t(n) * 4);
            std::memcpy(&scales[size_t(g) * N + off], &s[size_t(g) * n], size_t(n) * 2);
        }
        off += n;
    }
    pack_qzeros(zeros_true.data(), G, N, 4, 2, qzeros.data());
    std::vector<int32_t> gidx;
    if (q0.g_idx) gidx = copy_i32(*q0.g_idx);
    Q4Host h;
    if (!repack_q4(qweight.data(), qzeros.data(), scales.data(), gidx.empty() ? nullptr : gidx.data(), K, N, G,
                   q0.group_size, 2, h, why))
        return false;
    set_q4(L, h);
    return true;
}

} // namespace

GpuLinear build_linear(const std::vector<const LinearWeights *> &parts) {
    GpuLinear L;
    L.K = parts[0]->in;
    for (const LinearWeights *p : parts) {
        if (p->in != L.K) fail(GPTQ_ERR_BACKEND, "%s: fused parts differ in input size", p->name.c_str());
        L.N += p->out;
    }
    std::string why;
    bool any_q = false, any_bias = false;
    for (const LinearWeights *p : parts) {
        any_q |= p->quantized;
        any_bias |= p->bias != nullptr;
    }
    if (!(any_q && try_q4(parts, L, &why))) {
        if (any_q)
            log_msg(GPTQ_LOG_DEBUG, "%s: dense fp16 path (%s)", parts[0]->name.c_str(), why.c_str());
        // Dense fp16 [N, K]: float weights converted, quantized ones dequantized once.
        std::vector<uint16_t> w;
        w.reserve(size_t(L.N) * L.K);
        for (const LinearWeights *p : parts) {
            if (!p->quantized) {
                append_f16(*p->weight, w);
                continue;
            }
            const QuantTensors &q = p->q;
            std::vector<int32_t> qw = copy_i32(*q.qweight), qz = copy_i32(*q.qzeros), gi;
            std::vector<uint16_t> s = copy_u16(*q.scales);
            if (q.g_idx) gi = copy_i32(*q.g_idx);
            std::vector<float> W(size_t(p->out) * p->in);
            dequantize_gptq(qw.data(), qz.data(), s.data(), gi.empty() ? nullptr : gi.data(), p->in, p->out, q.G,
                            q.bits, q.format, W.data());
            for (float f : W) w.push_back(f32_to_f16(f));
        }
        L.w16_own = upload(w);
        L.w16 = L.w16_own.as<const __half>();
    }
    if (any_bias) {
        std::vector<uint16_t> b;
        for (const LinearWeights *p : parts) {
            if (p->bias) append_f16(*p->bias, b);
            else b.resize(b.size() + size_t(p->out), 0);
        }
        L.bias_buf = upload(b);
        L.bias = L.bias_buf.as<const __half>();
    }
    return L;
}

GpuLinear synthetic_linear(int K, int N, bool q4, int group_size, uint64_t seed) {
    GpuLinear L;
    L.K = K;
    L.N = N;
    // Weights of standard deviation 1/sqrt(K): outputs keep the inputs' scale.
    const float stdw = 1.0f / std::sqrt(float(K));
    if (q4) {
        const int KT = 2 * ((K + 31) / 32), NT = (N + 63) / 64;
        const int G = group_size > 0 ? (K + group_size - 1) / group_size : 1;
        L.q4 = true;
        L.qw.alloc(size_t(NT) * KT * 512);
        L.sc.alloc(size_t(NT) * G * 64 * 2);
        fill_random_u32(L.qw.as<uint32_t>(), L.qw.bytes() / 4, seed);
        // codes uniform in 0..15 around z = 8: standard deviation ~4.6 code steps.
        fill_random_f16(L.sc.as<__half>(), L.sc.bytes() / 2, seed + 1, 0.5f * stdw / 4.6f, 1.5f * stdw / 4.6f);
        Q4Dev &v = L.q;
        v.qw = L.qw.as<const uint4>();
        v.scales = L.sc.as<const __half>();
        v.K = K; v.N = N; v.KT = KT; v.NT = NT; v.G = G;
        v.group_kt = G == 1 ? KT : group_size / 16;
        v.zero = 8;
    } else {
        L.w16_own.alloc(size_t(N) * K * 2);
        const float a = stdw * std::sqrt(3.0f);
        fill_random_f16(L.w16_own.as<__half>(), size_t(N) * K, seed, -a, a);
        L.w16 = L.w16_own.as<const __half>();
    }
    return L;
}

} // namespace cuda
} // namespace gptq
