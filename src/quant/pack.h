// pack.h — the GPTQ checkpoint's integer layout (shared/docs/FORMAT.md) and its quantization grid.
//
//   qweight int32 [K*bits/32, N]  codes packed along K, lowest bits first (3 bits straddle words)
//   qzeros  int32 [G, N*bits/32]  zero points packed along N, same scheme; v1 stores z-1
//   scales  fp16  [G, N]
//   g_idx   int32 [K]
//   W[n, k] = scales[g, n] * (q[k, n] - z[g, n]),  g = g_idx[k]
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace gptq {

// Rows of K per packing unit: 32/gcd(32,bits) (8 for 4 bits, 32 for 3, 16 for 2, 4 for 8).
int pack_unit(int bits);
bool packable(int K, int bits);   // K a multiple of pack_unit(bits)

// codes: [K, N] row-major (k-major), values in [0, 2^bits). qweight: [K*bits/32, N].
void pack_qweight(const uint8_t *codes, int K, int N, int bits, int32_t *qweight);
void unpack_qweight(const int32_t *qweight, int K, int N, int bits, uint8_t *codes);

// zeros: [G, N] true zero points z in [0, 2^bits). qzeros: [G, N*bits/32].
// format 1 (v1) stores z-1 with the reference's wrap-around (z = 0 stores -1, which sets the
// higher bits of the word: callers must check v1_zeros_representable() first); format 2 stores z.
void pack_qzeros(const int32_t *zeros, int G, int N, int bits, int format, int32_t *qzeros);
// Reads back true zero points z (adds 1 for v1, reading each field as the peers do).
void unpack_qzeros(const int32_t *qzeros, int G, int N, int bits, int format, int32_t *zeros);
// v1 can store z only when no zero is 0 (z - 1 = -1 would overflow into neighbouring fields).
bool v1_zeros_representable(const int32_t *zeros, size_t n);

// Dequantizes a whole layer to fp32 W[N, K] (Hugging Face Linear layout).
void dequantize_gptq(const int32_t *qweight, const int32_t *qzeros, const uint16_t *scales_f16,
                     const int32_t *g_idx, int K, int N, int G, int bits, int format, float *W);

// The reference quantizer's grid for one group of one output column (FORMAT.md "Quantizer
// conventions"): range always includes 0; sym: z = (maxq+1)/2; asym: z = round(-xmin/scale).
struct QuantParams {
    float scale;
    float zero;  // an integer value held as float
};
QuantParams find_quant_params(const float *w, int n, int stride, int bits, bool sym);
// The same grid from a group's observed minimum and maximum (0 is added to the range here), for
// callers that reduce min/max themselves (the solver does it row-wise over many columns at once).
QuantParams quant_params_from_range(float wmin, float wmax, int bits, bool sym);
// q = clamp(round_half_even(w / scale) + zero, 0, maxq)
int quantize_value(float w, float scale, float zero, int maxq);
inline float dequantize_value(int q, float scale, float zero) { return scale * (float(q) - zero); }

} // namespace gptq
