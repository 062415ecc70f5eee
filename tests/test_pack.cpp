// Packing of the GPTQ checkpoint format (shared/docs/FORMAT.md) and the reference quantizer grid.
#include <doctest/doctest.h>

#include "common.h"
#include "quant/pack.h"

#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <vector>

using namespace gptq;

namespace {

const int kBits[] = {2, 3, 4, 8};

// An independent packer: sets the stream bit by bit (field j at bits [j*bits, (j+1)*bits) of the
// concatenated 32-bit words), to check the word-level implementation against.
std::vector<uint32_t> bit_stream(const std::vector<uint32_t> &fields, int bits) {
    std::vector<uint32_t> words(fields.size() * bits / 32, 0);
    for (size_t j = 0; j < fields.size(); ++j)
        for (int b = 0; b < bits; ++b)
            if ((fields[j] >> b) & 1) {
                const size_t pos = j * bits + b;
                words[pos / 32] |= 1u << (pos % 32);
            }
    return words;
}

gptq_status status_of(const std::function<void()> &f) {
    try {
        f();
    } catch (const Error &e) {
        return e.status();
    }
    return GPTQ_OK;
}

} // namespace

TEST_CASE("pack_unit and packable follow 32/gcd(32, bits)") {
    CHECK(pack_unit(2) == 16);
    CHECK(pack_unit(3) == 32);
    CHECK(pack_unit(4) == 8);
    CHECK(pack_unit(8) == 4);
    CHECK(packable(64, 3));
    CHECK_FALSE(packable(48, 3));
    CHECK(packable(8, 4));
    CHECK_FALSE(packable(172, 4));  // stories260k's down_proj
    CHECK_FALSE(packable(0, 4));
    CHECK(status_of([] { pack_unit(5); }) == GPTQ_ERR_UNSUPPORTED);
}

TEST_CASE("4-bit qweight: codes 0..7 of rows 0..7 give 0x76543210") {
    // Two columns: 0..7 and 7..0, so a column mix-up would show.
    std::vector<uint8_t> codes(16);
    for (int k = 0; k < 8; ++k) { codes[k * 2] = uint8_t(k); codes[k * 2 + 1] = uint8_t(7 - k); }
    int32_t q[2];
    pack_qweight(codes.data(), 8, 2, 4, q);
    CHECK(uint32_t(q[0]) == 0x76543210u);
    CHECK(uint32_t(q[1]) == 0x01234567u);
}

TEST_CASE("2-bit and 8-bit qweight words") {
    std::vector<uint8_t> c2(16);
    for (int k = 0; k < 16; ++k) c2[k] = uint8_t(k % 4);
    int32_t w2;
    pack_qweight(c2.data(), 16, 1, 2, &w2);
    CHECK(uint32_t(w2) == 0xE4E4E4E4u);  // 0b11'10'01'00 per byte

    const uint8_t c8[8] = {0x01, 0xF0, 0x02, 0x0F, 0x03, 0xAA, 0xFF, 0x55};  // [4, 2]
    int32_t w8[2];
    pack_qweight(c8, 4, 2, 8, w8);
    CHECK(uint32_t(w8[0]) == 0xFF030201u);
    CHECK(uint32_t(w8[1]) == 0x55AA0FF0u);
}

TEST_CASE("3-bit codes straddle words at the documented bits") {
    SUBCASE("code 10 = 0b110: low 2 bits at bits 30..31 of word 0, high bit at bit 0 of word 1") {
        std::vector<uint8_t> codes(32, 0);
        codes[10] = 6;
        int32_t q[3];
        pack_qweight(codes.data(), 32, 1, 3, q);
        CHECK(uint32_t(q[0]) == 0x80000000u);  // low bits 10 -> bit 31 set, bit 30 clear
        CHECK(uint32_t(q[1]) == 0x00000001u);
        CHECK(uint32_t(q[2]) == 0u);
    }
    SUBCASE("code 21 = 0b011: low bit at bit 31 of word 1, high 2 bits at bits 0..1 of word 2") {
        std::vector<uint8_t> codes(32, 0);
        codes[21] = 3;
        int32_t q[3];
        pack_qweight(codes.data(), 32, 1, 3, q);
        CHECK(uint32_t(q[0]) == 0u);
        CHECK(uint32_t(q[1]) == 0x80000000u);
        CHECK(uint32_t(q[2]) == 0x00000001u);
    }
    SUBCASE("code 9 and 11, 20 and 22 sit beside the straddlers") {
        std::vector<uint8_t> codes(32, 0);
        codes[9] = 7;   // bits 27..29 of word 0
        codes[11] = 7;  // bits 1..3 of word 1
        codes[20] = 7;  // bits 28..30 of word 1
        codes[22] = 7;  // bits 2..4 of word 2
        codes[31] = 5;  // bits 29..31 of word 2
        int32_t q[3];
        pack_qweight(codes.data(), 32, 1, 3, q);
        CHECK(uint32_t(q[0]) == 0x38000000u);
        CHECK(uint32_t(q[1]) == 0x7000000Eu);
        CHECK(uint32_t(q[2]) == 0xA000001Cu);
    }
    SUBCASE("qzeros use the same scheme along N") {
        std::vector<int32_t> z(32, 0);
        z[10] = 6;
        z[21] = 3;
        int32_t w[3];
        pack_qzeros(z.data(), 1, 32, 3, 2, w);
        CHECK(uint32_t(w[0]) == 0x80000000u);
        CHECK(uint32_t(w[1]) == 0x80000001u);
        CHECK(uint32_t(w[2]) == 0x00000001u);
    }
}

TEST_CASE("qweight packing equals an independent bit-by-bit packer and round-trips (odd N)") {
    std::mt19937 rng(1234);
    for (int bits : kBits) {
        CAPTURE(bits);
        const int K = 3 * pack_unit(bits), N = 13;
        std::vector<uint8_t> codes(size_t(K) * N);
        for (auto &c : codes) c = uint8_t(rng() % (1u << bits));
        std::vector<int32_t> q(size_t(K) * bits / 32 * N);
        pack_qweight(codes.data(), K, N, bits, q.data());
        for (int n = 0; n < N; ++n) {
            std::vector<uint32_t> column(K);
            for (int k = 0; k < K; ++k) column[k] = codes[size_t(k) * N + n];
            const std::vector<uint32_t> expect = bit_stream(column, bits);
            for (size_t r = 0; r < expect.size(); ++r) CHECK(uint32_t(q[r * N + n]) == expect[r]);
        }
        std::vector<uint8_t> back(codes.size());
        unpack_qweight(q.data(), K, N, bits, back.data());
        CHECK(back == codes);
    }
}

TEST_CASE("qweight refuses what the format cannot hold") {
    std::vector<uint8_t> codes(64 * 4, 0);
    std::vector<int32_t> q(64 * 4);
    CHECK(status_of([&] { pack_qweight(codes.data(), 12, 4, 4, q.data()); }) == GPTQ_ERR_INVALID_ARG);
    CHECK(status_of([&] { pack_qweight(codes.data(), 48, 4, 3, q.data()); }) == GPTQ_ERR_INVALID_ARG);
    CHECK(status_of([&] { unpack_qweight(q.data(), 12, 4, 4, codes.data()); }) == GPTQ_ERR_INVALID_ARG);
    CHECK(status_of([&] { pack_qweight(codes.data(), 8, 4, 5, q.data()); }) == GPTQ_ERR_UNSUPPORTED);
    codes[5] = 16;  // does not fit in 4 bits
    CHECK(status_of([&] { pack_qweight(codes.data(), 8, 4, 4, q.data()); }) == GPTQ_ERR_INVALID_ARG);
}

TEST_CASE("symmetric qzeros: v1 stores z-1 (0x77777777), v2 stores z (0x88888888)") {
    std::vector<int32_t> z(2 * 16, 8);  // G = 2, N = 16
    int32_t v1[4], v2[4];
    pack_qzeros(z.data(), 2, 16, 4, 1, v1);
    pack_qzeros(z.data(), 2, 16, 4, 2, v2);
    for (int i = 0; i < 4; ++i) {
        CHECK(uint32_t(v1[i]) == 0x77777777u);
        CHECK(uint32_t(v2[i]) == 0x88888888u);
    }
    std::vector<int32_t> back(z.size());
    unpack_qzeros(v1, 2, 16, 4, 1, back.data());
    CHECK(back == z);
    unpack_qzeros(v2, 2, 16, 4, 2, back.data());
    CHECK(back == z);

    // Other widths: 2-bit sym z = 2 (v1 field 1), 8-bit z = 128 (v1 field 127).
    std::vector<int32_t> z2(16, 2), z8(4, 128);
    int32_t w;
    pack_qzeros(z2.data(), 1, 16, 2, 1, &w);
    CHECK(uint32_t(w) == 0x55555555u);
    pack_qzeros(z8.data(), 1, 4, 8, 1, &w);
    CHECK(uint32_t(w) == 0x7F7F7F7Fu);
    pack_qzeros(z8.data(), 1, 4, 8, 2, &w);
    CHECK(uint32_t(w) == 0x80808080u);
}

TEST_CASE("v1 <-> v2 is a per-field add of 1 while no field overflows") {
    std::mt19937 rng(7);
    std::vector<int32_t> z(64);
    for (auto &v : z) v = 1 + int32_t(rng() % 15);  // 1..15: representable in v1
    CHECK(v1_zeros_representable(z.data(), z.size()));
    int32_t v1[8], v2[8];
    pack_qzeros(z.data(), 1, 64, 4, 1, v1);
    pack_qzeros(z.data(), 1, 64, 4, 2, v2);
    for (int i = 0; i < 8; ++i) CHECK(uint32_t(v2[i]) - uint32_t(v1[i]) == 0x11111111u);
}

TEST_CASE("v1 asymmetric zero 0 wraps to -1 as the reference writes it") {
    SUBCASE("4 bits: 0xFFFFFFF2 reads back 3, 16, 16, ...") {
        const int32_t z[8] = {3, 0, 5, 5, 5, 5, 5, 5};
        CHECK_FALSE(v1_zeros_representable(z, 8));
        int32_t w;
        pack_qzeros(z, 1, 8, 4, 1, &w);
        CHECK(uint32_t(w) == 0xFFFFFFF2u);
        int32_t back[8];
        unpack_qzeros(&w, 1, 8, 4, 1, back);
        CHECK(back[0] == 3);
        for (int i = 1; i < 8; ++i) CHECK(back[i] == 16);
        // v2 holds the same zeros faithfully.
        pack_qzeros(z, 1, 8, 4, 2, &w);
        unpack_qzeros(&w, 1, 8, 4, 2, back);
        CHECK(std::memcmp(back, z, sizeof z) == 0);
    }
    SUBCASE("3 bits: the wrapped field sets the rest of its word; a straddler's carry is masked") {
        std::vector<int32_t> z(32, 1);  // v1 stores 0 everywhere...
        z[10] = 0;                      // ...except -1 in the straddling field 10
        int32_t w[3];
        pack_qzeros(z.data(), 1, 32, 3, 1, w);
        CHECK(uint32_t(w[0]) == 0xC0000000u);  // -1 << 30
        CHECK(uint32_t(w[1]) == 0x00000001u);  // (-1 >> 2) & 1
        CHECK(uint32_t(w[2]) == 0u);
        z[10] = 1;
        z[12] = 0;  // field 12 at bit 4 of word 1: sets bits 4..31 of word 1
        pack_qzeros(z.data(), 1, 32, 3, 1, w);
        CHECK(uint32_t(w[0]) == 0u);
        CHECK(uint32_t(w[1]) == 0xFFFFFFF0u);
        CHECK(uint32_t(w[2]) == 0u);
        std::vector<int32_t> back(32);
        unpack_qzeros(w, 1, 32, 3, 1, back.data());
        for (int n = 0; n < 12; ++n) CHECK(back[n] == 1);
        for (int n = 12; n < 21; ++n) CHECK(back[n] == 8);  // field 7, + 1
        CHECK(back[21] == 2);  // bit 31 of word 1 set, word 2 clear: field 1, + 1
        for (int n = 22; n < 32; ++n) CHECK(back[n] == 1);
    }
}

TEST_CASE("qzeros round-trip at every width; N that does not fill whole words is refused") {
    std::mt19937 rng(99);
    for (int bits : kBits) {
        CAPTURE(bits);
        const int G = 3, N = 2 * pack_unit(bits);
        for (int format : {1, 2}) {
            std::vector<int32_t> z(size_t(G) * N);
            for (auto &v : z) v = int32_t(rng() % (1u << bits)) | (format == 1 ? 1 : 0);
            std::vector<int32_t> packed(size_t(G) * N * bits / 32);
            pack_qzeros(z.data(), G, N, bits, format, packed.data());
            std::vector<int32_t> back(z.size());
            unpack_qzeros(packed.data(), G, N, bits, format, back.data());
            CHECK(back == z);
        }
        if (pack_unit(bits) > 1) {
            std::vector<int32_t> z(64, 1), packed(64);
            const int odd = pack_unit(bits) + 1;
            CHECK(status_of([&] { pack_qzeros(z.data(), 1, odd, bits, 2, packed.data()); }) ==
                  GPTQ_ERR_INVALID_ARG);
            CHECK(status_of([&] { unpack_qzeros(packed.data(), 1, odd, bits, 1, z.data()); }) ==
                  GPTQ_ERR_INVALID_ARG);
        }
    }
    std::vector<int32_t> z(8, 16), packed(1);  // 16 does not fit 4 bits
    CHECK(status_of([&] { pack_qzeros(z.data(), 1, 8, 4, 2, packed.data()); }) == GPTQ_ERR_INVALID_ARG);
    z.assign(8, 3);
    CHECK(status_of([&] { pack_qzeros(z.data(), 1, 8, 4, 3, packed.data()); }) == GPTQ_ERR_INVALID_ARG);
}

TEST_CASE("dequantize_gptq equals scales * (q - z) through g_idx") {
    std::mt19937 rng(5);
    for (int bits : kBits) {
        for (int format : {1, 2}) {
            CAPTURE(bits);
            CAPTURE(format);
            const int K = 2 * pack_unit(bits) * (bits == 3 ? 1 : 4), N = 2 * pack_unit(bits), G = 4;
            const int maxq = (1 << bits) - 1;
            std::vector<uint8_t> codes(size_t(K) * N);
            for (auto &c : codes) c = uint8_t(rng() % (maxq + 1));
            std::vector<int32_t> zeros(size_t(G) * N);
            for (auto &z : zeros) z = int32_t(rng() % (maxq + 1)) | (format == 1 ? 1 : 0);
            std::vector<uint16_t> scales(size_t(G) * N);
            std::uniform_real_distribution<float> u(0.001f, 0.1f);
            for (auto &s : scales) s = f32_to_f16(u(rng));
            std::vector<int32_t> g_idx(K);
            for (auto &g : g_idx) g = int32_t(rng() % G);  // an act-order style, unsorted g_idx
            std::vector<int32_t> qw(size_t(K) * bits / 32 * N), qz(size_t(G) * N * bits / 32);
            pack_qweight(codes.data(), K, N, bits, qw.data());
            pack_qzeros(zeros.data(), G, N, bits, format, qz.data());
            std::vector<float> W(size_t(N) * K);
            dequantize_gptq(qw.data(), qz.data(), scales.data(), g_idx.data(), K, N, G, bits, format,
                            W.data());
            int bad = 0;
            for (int n = 0; n < N; ++n)
                for (int k = 0; k < K; ++k) {
                    const size_t gn = size_t(g_idx[k]) * N + n;
                    const float expect = f16_to_f32(scales[gn]) *
                                         float(int(codes[size_t(k) * N + n]) - zeros[gn]);
                    bad += W[size_t(n) * K + k] != expect;
                }
            CHECK(bad == 0);
            g_idx[3] = G;  // out of range
            CHECK(status_of([&] {
                      dequantize_gptq(qw.data(), qz.data(), scales.data(), g_idx.data(), K, N, G,
                                      bits, format, W.data());
                  }) == GPTQ_ERR_FORMAT);
        }
    }
}

TEST_CASE("grid: symmetric, hand-computed, with round half to even") {
    // range [-7.5, 3.5] -> sym xmax = 7.5, xmin = -7.5, scale = 15/15 = 1, z = 8.
    const float w[] = {-7.5f, 2.5f, 3.5f, -2.5f, 0.5f, 1.5f};
    QuantParams p = find_quant_params(w, 6, 1, 4, true);
    CHECK(p.scale == 1.0f);
    CHECK(p.zero == 8.0f);
    CHECK(quantize_value(2.5f, p.scale, p.zero, 15) == 10);   // round(2.5) = 2
    CHECK(quantize_value(3.5f, p.scale, p.zero, 15) == 12);   // round(3.5) = 4
    CHECK(quantize_value(-2.5f, p.scale, p.zero, 15) == 6);   // round(-2.5) = -2
    CHECK(quantize_value(0.5f, p.scale, p.zero, 15) == 8);    // round(0.5) = 0
    CHECK(quantize_value(1.5f, p.scale, p.zero, 15) == 10);   // round(1.5) = 2
    CHECK(quantize_value(-7.5f, p.scale, p.zero, 15) == 0);   // round(-7.5) = -8
    CHECK(quantize_value(7.5f, p.scale, p.zero, 15) == 15);   // 16 clamps to maxq
    CHECK(quantize_value(-100.f, p.scale, p.zero, 15) == 0);
    CHECK(dequantize_value(12, p.scale, p.zero) == 4.0f);

    // Only positive weights: xmin stays 0 (the reference only mirrors a negative xmin).
    const float pos[] = {1.f, 2.f, 3.f};
    p = find_quant_params(pos, 3, 1, 4, true);
    CHECK(p.scale == 3.f / 15.f);
    CHECK(p.zero == 8.0f);

    // Other widths: z = (maxq + 1) / 2.
    CHECK(find_quant_params(w, 6, 1, 2, true).zero == 2.0f);
    CHECK(find_quant_params(w, 6, 1, 3, true).zero == 4.0f);
    CHECK(find_quant_params(w, 6, 1, 8, true).zero == 128.0f);
    CHECK(find_quant_params(w, 6, 1, 2, true).scale == 15.f / 3.f);
}

TEST_CASE("grid: asymmetric, hand-computed, with round half to even zero points") {
    const float w[] = {-2.f, 13.f, -1.5f, 0.5f, 2.5f};
    QuantParams p = find_quant_params(w, 5, 1, 4, false);
    CHECK(p.scale == 1.0f);
    CHECK(p.zero == 2.0f);
    CHECK(quantize_value(13.f, p.scale, p.zero, 15) == 15);
    CHECK(quantize_value(-2.f, p.scale, p.zero, 15) == 0);
    CHECK(quantize_value(-1.5f, p.scale, p.zero, 15) == 0);  // round(-1.5) = -2
    CHECK(quantize_value(0.5f, p.scale, p.zero, 15) == 2);
    CHECK(quantize_value(2.5f, p.scale, p.zero, 15) == 4);

    const float a[] = {-2.5f, 12.5f};  // z = round(2.5) = 2
    CHECK(find_quant_params(a, 2, 1, 4, false).zero == 2.0f);
    const float b[] = {-3.5f, 11.5f};  // z = round(3.5) = 4
    CHECK(find_quant_params(b, 2, 1, 4, false).zero == 4.0f);
    const float c[] = {1.f, 15.f};  // range [0, 15]: z = 0 (the v1 hazard)
    CHECK(find_quant_params(c, 2, 1, 4, false).zero == 0.0f);

    // Strided access: column 1 of a [3, 2] row-major block.
    const float m[] = {100.f, -2.f, 100.f, 13.f, 100.f, 0.f};
    p = find_quant_params(m + 1, 3, 2, 4, false);
    CHECK(p.scale == 1.0f);
    CHECK(p.zero == 2.0f);
    QuantParams r = quant_params_from_range(-2.f, 13.f, 4, false);
    CHECK(r.scale == p.scale);
    CHECK(r.zero == p.zero);
}

TEST_CASE("grid: an all-zero group uses the range [-1, 1]") {
    const float z[4] = {0, 0, 0, 0};
    QuantParams s = find_quant_params(z, 4, 1, 4, true);
    CHECK(s.scale == 2.f / 15.f);
    CHECK(s.zero == 8.f);
    QuantParams a = find_quant_params(z, 4, 1, 4, false);
    CHECK(a.scale == 2.f / 15.f);
    CHECK(a.zero == 7.f);  // 1 / (2/15) is 7.4999995 in fp32
    QuantParams a2 = find_quant_params(z, 4, 1, 2, false);
    CHECK(a2.scale == 2.f / 3.f);
    CHECK(a2.zero == 2.f);  // 1.5 rounds to even
    CHECK(quantize_value(0.f, a.scale, a.zero, 15) == 7);
    CHECK(dequantize_value(quantize_value(0.f, a.scale, a.zero, 15), a.scale, a.zero) == 0.f);
}
