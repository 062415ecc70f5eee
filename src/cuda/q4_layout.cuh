// q4_layout.cuh — the tiled 4-bit weight layout the CUDA GEMV/GEMM kernels read, and the one-time
// host-side repack from a GPTQ checkpoint's tensors into it. Plain C++: host code may include it.
//
// A K x N weight (K inputs, N outputs) is cut into tiles of 16 rows (k) x 64 columns (n):
// KT = 2*ceil(K/32) row tiles (always even), NT = ceil(N/64) column tiles (padding holds code 0).
// One tile is what one warp feeds to eight mma.m16n8k16 instructions, and it is stored as the
// 32 uint4 (512 bytes) that the warp's lanes load with one 16-byte load each:
//
//   qw uint4 [NT][KT][32 lanes]          (a warp streams its column tile contiguously along k)
//
//   lane L:  g = L / 4 (column within an 8-column sub-tile), c = L % 4
//   word w (0..3) covers sub-tiles j = 2w and 2w+1; its 8 nibbles are the fragment rows
//
//     bits  0..3  row 2c   , col 8(2w)+g      bits 16..19 row 2c+1 , col 8(2w)+g
//     bits  4..7  row 2c+8 , col 8(2w)+g      bits 20..23 row 2c+9 , col 8(2w)+g
//     bits  8..11 row 2c   , col 8(2w+1)+g    bits 24..27 row 2c+1 , col 8(2w+1)+g
//     bits 12..15 row 2c+8 , col 8(2w+1)+g    bits 28..31 row 2c+9 , col 8(2w+1)+g
//
//   which is exactly mma.m16n8k16's B fragment: (w & 0x000F000F) | 0x64006400 is the half2
//   {1024+q(2c), 1024+q(2c+1)}, (w & 0x00F000F0) | 0x64006400 is {1024+16q(2c+8), 1024+16q(2c+9)},
//   and the same on w >> 8 for the odd sub-tile. Dequantizing is a mask, a subtract and a multiply.
//
//   Fragment rows are not the weight's rows in order: tiles come in pairs (kt = 2P + h), and
//   fragment row r = 2c + e (+8 when hi) of tile 2P+h is weight row
//
//     32P + 8c + 4h + 2*hi + e
//
//   so the 8 activations lane c needs for both tiles of a pair (rows 2c, 2c+1, 2c+8, 2c+9 of
//   each) are x[32P + 8c .. 32P + 8c + 7]: one 16-byte load per activation row per two k-steps.
//   (A dot product does not care in which order k runs, as long as x and W agree.)
//
//   scales half [NT][G][8 g][8 j]        scale of column nt*64 + 8j + g in group G: one 16-byte load
//   zeros  half [NT][G][8 g][8 j]        1024 + z, only when the zero points are not all equal
//
// Groups must be runs of a multiple of 32 rows (or one group) so that a tile pair never straddles
// two groups. Act-order: rows are permuted once (stable sort by g_idx) so that each group is
// contiguous; perm[i] = original row of stored row i, and activations are gathered by perm.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gptq {
namespace cuda {

constexpr int kQ4TileK = 16;
constexpr int kQ4TileN = 64;
constexpr int kQ4PairK = 32;  // rows of a tile pair

struct Q4Host {
    int K = 0, N = 0;       // logical shape (inputs, outputs)
    int KT = 0, NT = 0;     // tiles (KT even)
    int G = 1;              // groups
    int group_kt = 0;       // rows per group in tiles of 16 (the whole padded K when G == 1)
    bool uniform_zero = true;
    int zero = 8;           // the common zero point when uniform_zero
    std::vector<uint32_t> qw;      // NT*KT*32*4 words
    std::vector<uint16_t> scales;  // NT*G*64 fp16
    std::vector<uint16_t> zeros;   // NT*G*64 fp16 (1024+z), empty when uniform_zero
    std::vector<int32_t> perm;     // K entries, empty when the identity
};

// Repacks one GPTQ 4-bit layer (FORMAT.md tensors: qweight [K/8, N], qzeros [G, N/8], scales fp16
// [G, N], g_idx [K] or null). format 1 = v1 (stored zeros are z-1, read as the peers do), 2 = v2.
// Returns false, with the reason in *why, when the layer cannot use this layout (group size not a
// multiple of 32, or act-order groups of unequal size); the caller then uses the dense fp16 path.
bool repack_q4(const int32_t *qweight, const int32_t *qzeros, const uint16_t *scales, const int32_t *g_idx,
               int K, int N, int G, int group_size, int format, Q4Host &out, std::string *why);

// Inverse of the code placement, for tests: the code of stored row i (after perm) and column n.
int q4_layout_code(const Q4Host &h, int i, int n);

} // namespace cuda
} // namespace gptq
