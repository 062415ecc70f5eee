// q4_repack.cu — host-side, one-time conversion of GPTQ 4-bit tensors into the tiled layout of
// q4_layout.cuh. Runs once per layer at load; plain C++ (nvcc compiles it with the kernels).
#include "q4_layout.cuh"

#include "common.h"

#include <algorithm>
#include <cstring>
#include <numeric>

namespace gptq {
namespace cuda {

namespace {

inline int code_at(const int32_t *qweight, int N, int k, int n) {
    uint32_t word = uint32_t(qweight[size_t(k / 8) * N + n]);
    return int((word >> (4 * (k % 8))) & 0xF);
}

// True zero point of (group, column), read as the peers read it: field + 1 for v1.
inline int zero_at(const int32_t *qzeros, int N, int g, int n, int format) {
    uint32_t word = uint32_t(qzeros[size_t(g) * (N / 8) + n / 8]);
    int field = int((word >> (4 * (n % 8))) & 0xF);
    return format == 1 ? field + 1 : field;
}

// Where (row r in 0..15, column col in 0..63) of a tile lives: lane, word, bit shift.
inline void place(int r, int col, int &lane, int &word, int &shift) {
    int j = col / 8, g = col % 8;
    int half = (r >= 8) ? 1 : 0;   // rows 2c+8, 2c+9
    int rr = r - 8 * half;          // 0..7 = 2c + odd
    int c = rr / 2, odd = rr % 2;
    lane = g * 4 + c;
    word = j / 2;
    int nib = (j % 2) * 2 + half;   // nibble 0..3 in the low half-word
    shift = nib * 4 + odd * 16;
}

} // namespace

bool repack_q4(const int32_t *qweight, const int32_t *qzeros, const uint16_t *scales, const int32_t *g_idx,
               int K, int N, int G, int group_size, int format, Q4Host &out, std::string *why) {
    auto refuse = [&](const std::string &msg) {
        if (why) *why = msg;
        return false;
    };
    if (K <= 0 || N <= 0 || K % 8 || N % 8 || G <= 0) return refuse(strprintf("bad shape K=%d N=%d G=%d", K, N, G));
    out = Q4Host();
    out.K = K;
    out.N = N;
    out.KT = (K + kQ4TileK - 1) / kQ4TileK;
    out.NT = (N + kQ4TileN - 1) / kQ4TileN;
    out.G = G;

    // Row order: stable sort by group, so each group's rows are contiguous.
    std::vector<int32_t> gi(K);
    for (int k = 0; k < K; ++k) {
        int g = g_idx ? g_idx[k] : (G == 1 ? 0 : k / group_size);
        if (g < 0 || g >= G) return refuse(strprintf("g_idx[%d] = %d outside [0, %d)", k, g, G));
        gi[k] = g;
    }
    std::vector<int32_t> perm(K);
    std::iota(perm.begin(), perm.end(), 0);
    std::stable_sort(perm.begin(), perm.end(), [&](int a, int b) { return gi[a] < gi[b]; });
    bool identity = true;
    for (int i = 0; i < K; ++i) identity &= (perm[i] == i);

    // The kernels find a row's group as (row / 16) / group_kt: groups must be equal runs of a
    // multiple of 16 rows (or one group spanning everything).
    int gsize = (G == 1) ? out.KT * kQ4TileK : K / G;
    if (G > 1 && (K % G || gsize % kQ4TileK))
        return refuse(strprintf("group size %d (K=%d, G=%d) is not a multiple of 16", K / std::max(G, 1), K, G));
    for (int i = 0; i < K; ++i)
        if (gi[perm[i]] != (G == 1 ? 0 : i / gsize))
            return refuse("act-order groups are not of equal size");
    out.group_kt = gsize / kQ4TileK;
    if (!identity) out.perm = perm;

    // Zero points: uniform (the symmetric case) or a per-(group, column) table.
    int z0 = zero_at(qzeros, N, 0, 0, format);
    bool uniform = true;
    for (int g = 0; g < G && uniform; ++g)
        for (int n = 0; n < N; ++n)
            if (zero_at(qzeros, N, g, n, format) != z0) { uniform = false; break; }
    out.uniform_zero = uniform;
    out.zero = z0;

    const size_t tiles = size_t(out.NT) * out.KT;
    out.qw.assign(tiles * 32 * 4, 0u);
    for (int i = 0; i < K; ++i) {
        int k = perm[i];
        int kt = i / kQ4TileK, r = i % kQ4TileK;
        for (int n = 0; n < N; ++n) {
            int q = code_at(qweight, N, k, n);
            int nt = n / kQ4TileN, col = n % kQ4TileN;
            int lane, word, shift;
            place(r, col, lane, word, shift);
            size_t idx = ((size_t(nt) * out.KT + kt) * 32 + lane) * 4 + word;
            out.qw[idx] |= uint32_t(q) << shift;
        }
    }

    out.scales.assign(size_t(out.NT) * G * 64, 0);
    if (!uniform) out.zeros.assign(size_t(out.NT) * G * 64, 0x6400);  // 1024 + 0
    for (int g = 0; g < G; ++g)
        for (int n = 0; n < N; ++n) {
            int nt = n / kQ4TileN, col = n % kQ4TileN;
            int j = col / 8, gg = col % 8;
            size_t idx = ((size_t(nt) * G + g) * 8 + gg) * 8 + j;
            out.scales[idx] = scales[size_t(g) * N + n];
            if (!uniform) out.zeros[idx] = f32_to_f16(1024.0f + float(zero_at(qzeros, N, g, n, format)));
        }
    return true;
}

int q4_layout_code(const Q4Host &h, int i, int n) {
    int kt = i / kQ4TileK, r = i % kQ4TileK;
    int nt = n / kQ4TileN, col = n % kQ4TileN;
    int lane, word, shift;
    place(r, col, lane, word, shift);
    size_t idx = ((size_t(nt) * h.KT + kt) * 32 + lane) * 4 + word;
    return int((h.qw[idx] >> shift) & 0xF);
}

} // namespace cuda
} // namespace gptq
