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

// Where stored row i and column n live: tile (kt, nt), lane, word, bit shift (q4_layout.cuh).
struct Slot {
    int kt, nt, lane, word, shift;
};
inline Slot place(int i, int n) {
    const int P = i / kQ4PairK, o = i % kQ4PairK;
    const int c = o / 8, h = (o % 8) / 4, hi = (o % 4) / 2, e = o % 2;
    const int col = n % kQ4TileN, j = col / 8, g = col % 8;
    Slot s;
    s.kt = 2 * P + h;
    s.nt = n / kQ4TileN;
    s.lane = g * 4 + c;
    s.word = j / 2;
    s.shift = ((j % 2) * 2 + hi) * 4 + e * 16;  // nibble 0..3 of the low half-word, +16 for odd rows
    return s;
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
    out.KT = 2 * ((K + kQ4PairK - 1) / kQ4PairK);
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

    // The kernels find a tile's group as kt / group_kt: groups must be equal runs of a multiple
    // of 32 rows (a tile pair), or one group spanning everything.
    int gsize = (G == 1) ? out.KT * kQ4TileK : K / G;
    if (G > 1 && (K % G || gsize % kQ4PairK))
        return refuse(strprintf("group size %d (K=%d, G=%d) is not a multiple of 32", K / std::max(G, 1), K, G));
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
        const int k = perm[i];
        for (int n = 0; n < N; ++n) {
            const Slot s = place(i, n);
            const size_t idx = ((size_t(s.nt) * out.KT + s.kt) * 32 + s.lane) * 4 + s.word;
            out.qw[idx] |= uint32_t(code_at(qweight, N, k, n)) << s.shift;
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
    const Slot s = place(i, n);
    const size_t idx = ((size_t(s.nt) * h.KT + s.kt) * 32 + s.lane) * 4 + s.word;
    return int((h.qw[idx] >> s.shift) & 0xF);
}

} // namespace cuda
} // namespace gptq
