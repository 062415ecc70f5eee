// pack.cpp — the GPTQ checkpoint's integer layout and the reference quantizer's grid.
//
// Both qweight (along K) and qzeros (along N) are one little-endian bit stream per column/row:
// field j occupies bits [j*bits, (j+1)*bits) of the concatenated 32-bit words. For 2/4/8 bits a
// field never crosses a word; for 3 bits fields 10 and 21 of every 32 straddle two words.
#include "quant/pack.h"

#include "common.h"
#include "quant/grid.h"

#include <algorithm>
#include <cmath>

namespace gptq {

static void check_bits(int bits, const char *what) {
    if (bits != 2 && bits != 3 && bits != 4 && bits != 8)
        fail(GPTQ_ERR_UNSUPPORTED, "%s: %d bits is not a GPTQ bit width (2, 3, 4 or 8)", what, bits);
}

int pack_unit(int bits) {
    check_bits(bits, "pack_unit");
    int g = 32, b = bits;  // gcd(32, bits)
    while (b) { int t = g % b; g = b; b = t; }
    return 32 / g;
}

bool packable(int K, int bits) { return K > 0 && K % pack_unit(bits) == 0; }

// Words of packed stream that hold `count` fields of `bits` (count a multiple of pack_unit).
static size_t packed_words(int count, int bits) { return size_t(count) * size_t(bits) / 32; }

void pack_qweight(const uint8_t *codes, int K, int N, int bits, int32_t *qweight) {
    check_bits(bits, "pack_qweight");
    if (N <= 0 || K <= 0) fail(GPTQ_ERR_INVALID_ARG, "pack_qweight: empty shape [%d, %d]", K, N);
    if (!packable(K, bits))
        fail(GPTQ_ERR_INVALID_ARG,
             "pack_qweight: K = %d input rows cannot be packed at %d bits (needs a multiple of %d)", K,
             bits, pack_unit(bits));
    const uint32_t maxq = (1u << bits) - 1;
    const size_t words = packed_words(K, bits);
    uint32_t *out = reinterpret_cast<uint32_t *>(qweight);
    std::fill(out, out + words * size_t(N), 0u);
    for (int k = 0; k < K; ++k) {
        const uint8_t *row = codes + size_t(k) * N;
        const size_t pos = size_t(k) * bits;
        const size_t r = pos / 32;
        const unsigned off = unsigned(pos % 32);
        uint32_t *lo = out + r * N;
        for (int n = 0; n < N; ++n) {
            if (row[n] > maxq)
                fail(GPTQ_ERR_INVALID_ARG, "pack_qweight: code %u at [%d, %d] exceeds %u for %d bits",
                     unsigned(row[n]), k, n, maxq, bits);
            lo[n] |= uint32_t(row[n]) << off;
        }
        if (off + bits > 32) {  // 3-bit straddle: the high bits open the next word
            uint32_t *hi = out + (r + 1) * N;
            for (int n = 0; n < N; ++n) hi[n] |= uint32_t(row[n]) >> (32 - off);
        }
    }
}

void unpack_qweight(const int32_t *qweight, int K, int N, int bits, uint8_t *codes) {
    check_bits(bits, "unpack_qweight");
    if (N <= 0 || K <= 0) fail(GPTQ_ERR_INVALID_ARG, "unpack_qweight: empty shape [%d, %d]", K, N);
    if (!packable(K, bits))
        fail(GPTQ_ERR_INVALID_ARG,
             "unpack_qweight: K = %d input rows cannot be packed at %d bits (needs a multiple of %d)",
             K, bits, pack_unit(bits));
    const uint32_t mask = (1u << bits) - 1;
    const uint32_t *in = reinterpret_cast<const uint32_t *>(qweight);
    for (int k = 0; k < K; ++k) {
        uint8_t *row = codes + size_t(k) * N;
        const size_t pos = size_t(k) * bits;
        const size_t r = pos / 32;
        const unsigned off = unsigned(pos % 32);
        const uint32_t *lo = in + r * N;
        if (off + bits <= 32) {
            for (int n = 0; n < N; ++n) row[n] = uint8_t((lo[n] >> off) & mask);
        } else {
            const uint32_t *hi = in + (r + 1) * N;
            for (int n = 0; n < N; ++n)
                row[n] = uint8_t(((lo[n] >> off) | (hi[n] << (32 - off))) & mask);
        }
    }
}

static void check_zero_shape(const char *what, int G, int N, int bits) {
    check_bits(bits, what);
    if (G <= 0 || N <= 0) fail(GPTQ_ERR_INVALID_ARG, "%s: empty shape [%d, %d]", what, G, N);
    if (N % pack_unit(bits) != 0)
        fail(GPTQ_ERR_INVALID_ARG,
             "%s: N = %d output columns cannot be packed into qzeros at %d bits (needs a multiple of %d)",
             what, N, bits, pack_unit(bits));
}

static void check_format(const char *what, int format) {
    if (format != 1 && format != 2)
        fail(GPTQ_ERR_INVALID_ARG, "%s: checkpoint format %d is neither 1 (gptq) nor 2 (gptq_v2)", what,
             format);
}

void pack_qzeros(const int32_t *zeros, int G, int N, int bits, int format, int32_t *qzeros) {
    check_zero_shape("pack_qzeros", G, N, bits);
    check_format("pack_qzeros", format);
    const int32_t maxq = (1 << bits) - 1;
    const size_t words = packed_words(N, bits);
    for (int g = 0; g < G; ++g) {
        const int32_t *z = zeros + size_t(g) * N;
        uint32_t *out = reinterpret_cast<uint32_t *>(qzeros) + size_t(g) * words;
        std::fill(out, out + words, 0u);
        for (int n = 0; n < N; ++n) {
            if (z[n] < 0 || z[n] > maxq)
                fail(GPTQ_ERR_INVALID_ARG, "pack_qzeros: zero point %d at [%d, %d] is outside [0, %d]",
                     int(z[n]), g, n, int(maxq));
            // v1 stores z - 1 as the reference does: the int32 is reinterpreted as uint32 and
            // shifted into place unmasked, so z = 0 (stored -1 = 0xFFFFFFFF) sets every higher bit
            // of its word. Only the carried-over high part of a straddling 3-bit field is masked.
            const uint32_t v = uint32_t(format == 1 ? z[n] - 1 : z[n]);
            const size_t pos = size_t(n) * bits;
            const size_t w = pos / 32;
            const unsigned off = unsigned(pos % 32);
            out[w] |= v << off;
            if (off + bits > 32) {
                const unsigned rest = off + bits - 32;
                out[w + 1] |= (v >> (32 - off)) & ((1u << rest) - 1);
            }
        }
    }
}

void unpack_qzeros(const int32_t *qzeros, int G, int N, int bits, int format, int32_t *zeros) {
    check_zero_shape("unpack_qzeros", G, N, bits);
    check_format("unpack_qzeros", format);
    const uint32_t mask = (1u << bits) - 1;
    const size_t words = packed_words(N, bits);
    for (int g = 0; g < G; ++g) {
        const uint32_t *in = reinterpret_cast<const uint32_t *>(qzeros) + size_t(g) * words;
        int32_t *z = zeros + size_t(g) * N;
        for (int n = 0; n < N; ++n) {
            const size_t pos = size_t(n) * bits;
            const size_t w = pos / 32;
            const unsigned off = unsigned(pos % 32);
            uint32_t field = in[w] >> off;
            if (off + bits > 32) field |= in[w + 1] << (32 - off);
            // Peers read the bits-wide field and add 1 for v1 (a wrapped -1 thus reads 2^bits).
            z[n] = int32_t(field & mask) + (format == 1 ? 1 : 0);
        }
    }
}

bool v1_zeros_representable(const int32_t *zeros, size_t n) {
    for (size_t i = 0; i < n; ++i)
        if (zeros[i] <= 0) return false;
    return true;
}

void dequantize_gptq(const int32_t *qweight, const int32_t *qzeros, const uint16_t *scales_f16,
                     const int32_t *g_idx, int K, int N, int G, int bits, int format, float *W) {
    if (G <= 0) fail(GPTQ_ERR_INVALID_ARG, "dequantize_gptq: %d groups", G);
    for (int k = 0; k < K; ++k)
        if (g_idx[k] < 0 || g_idx[k] >= G)
            fail(GPTQ_ERR_FORMAT, "dequantize_gptq: g_idx[%d] = %d is outside [0, %d)", k,
                 int(g_idx[k]), G);
    std::vector<uint8_t> codes(size_t(K) * N);
    unpack_qweight(qweight, K, N, bits, codes.data());
    std::vector<int32_t> zeros(size_t(G) * N);
    unpack_qzeros(qzeros, G, N, bits, format, zeros.data());
    std::vector<float> scales(size_t(G) * N);
    for (size_t i = 0; i < scales.size(); ++i) scales[i] = f16_to_f32(scales_f16[i]);
    // Walk k-major (the codes' layout) and scatter into W[n, k]; blocks of k keep W's rows warm.
    const int KB = 64;
    for (int k0 = 0; k0 < K; k0 += KB) {
        const int k1 = std::min(K, k0 + KB);
        for (int n = 0; n < N; ++n) {
            float *wrow = W + size_t(n) * K;
            for (int k = k0; k < k1; ++k) {
                const size_t gn = size_t(g_idx[k]) * N + n;
                wrow[k] = dequantize_value(codes[size_t(k) * N + n], scales[gn], float(zeros[gn]));
            }
        }
    }
}

QuantParams quant_params_from_range(float wmin, float wmax, int bits, bool sym) {
    const float maxq = float((1 << bits) - 1);
    float xmin = std::min(wmin, 0.f), xmax = std::max(wmax, 0.f);  // the range always includes 0
    if (sym) {
        xmax = std::max(std::fabs(xmin), xmax);
        if (xmin < 0) xmin = -xmax;
    }
    if (xmin == 0 && xmax == 0) { xmin = -1; xmax = 1; }
    QuantParams p;
    p.scale = (xmax - xmin) / maxq;
    p.zero = sym ? (maxq + 1) / 2 : std::nearbyint(-xmin / p.scale);
    return p;
}

QuantParams find_quant_params(const float *w, int n, int stride, int bits, bool sym) {
    float wmin = 0.f, wmax = 0.f;
    for (int i = 0; i < n; ++i) {
        const float v = w[size_t(i) * stride];
        wmin = std::min(wmin, v);
        wmax = std::max(wmax, v);
    }
    return quant_params_from_range(wmin, wmax, bits, sym);
}

int quantize_value(float w, float scale, float zero, int maxq) {
    return quantize_code(w, scale, zero, maxq);
}

} // namespace gptq
