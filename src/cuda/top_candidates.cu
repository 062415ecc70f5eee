// top_candidates.cu — see top_candidates.cuh.
//
// Rounds of one kernel: a block sorts a chunk of 1024-4096 (key, id) pairs in shared memory (CUB's
// block radix sort, stable) and keeps its first k (k = 1, greedy decoding: the chunk's least pair
// by a block minimum, no sort). The first round reads the logits (ranked and penalised as they
// are loaded); each later round merges the kept lists of chunk / k chunks until one list per row
// is left (32000 ids at 4096 per chunk, k 40: 8 chunks, then one; 151936: 38, then one). The
// last round also sums round one's usable counts (no memset, no atomics on global memory).
//
// Ties: a key is the value's float order, flipped (ascending sort = descending value), and the
// sort is stable, so pairs of equal keys keep their input order. A chunk's input is in id order
// and a merge's input lists chunks in id order, each sorted: equal values stay in ascending id
// order through every round, as the sampler wants.
#include "top_candidates.cuh"

#include "cuda_check.cuh"
#include "float_rank.h"
#include "launch.cuh"

#include <cub/block/block_radix_sort.cuh>

namespace gptq {
namespace cuda {

namespace {

constexpr int kThreads = 256;
constexpr uint32_t kPadKey = 0xffffffffu;  // after every real key (-inf's key is 0xff800000)

// As the host's penalise, rounding spelled out (no contraction, no fast division): positive
// values divided, others multiplied, + 0 turning an underflow to -0 into +0.
__device__ __forceinline__ uint32_t penalise(uint32_t bits, float penalty) {
    const float v = __uint_as_float(bits);
    const float p = v > 0.0f ? __fdiv_rn(v, penalty) : __fmul_rn(v, penalty);
    return __float_as_uint(__fadd_rn(p, 0.0f));
}

// A chunk of kThreads * kItems pairs: staged as loaded (coalesced), then sorted in registers.
template <int kItems> struct Chunk {
    static constexpr int kSize = kThreads * kItems;
    using Sort = cub::BlockRadixSort<uint32_t, kThreads, kItems, int32_t>;
    union Smem {
        typename Sort::TempStorage sort;
        struct {
            uint32_t keys[kSize];
            int32_t ids[kSize];
        } stage;
    };

    static __device__ void keep_least(Smem &smem, uint32_t *keys_out, int32_t *ids_out);

    // Sorts the staged chunk and writes its first k pairs to keys_out / ids_out.
    static __device__ void sort_and_keep(Smem &smem, int k, uint32_t *keys_out, int32_t *ids_out) {
        if (k == 1) return keep_least(smem, keys_out, ids_out);
        uint32_t key[kItems];
        int32_t id[kItems];
        const int t = threadIdx.x;
#pragma unroll
        for (int j = 0; j < kItems; ++j) {  // blocked arrangement: thread t holds items t * kItems + j
            key[j] = smem.stage.keys[t * kItems + j];
            id[j] = smem.stage.ids[t * kItems + j];
        }
        __syncthreads();  // the staging area becomes the sort's storage
        Sort(smem.sort).Sort(key, id);
#pragma unroll
        for (int j = 0; j < kItems; ++j) {
            const int rank = t * kItems + j;
            if (rank < k) {
                keys_out[rank] = key[j];
                ids_out[rank] = id[j];
            }
        }
    }
};

// k = 1 (greedy decoding) without the sort: the stable sort's first pair is the least key, and
// among equal keys the first staged. A block minimum of (key, staged position) finds it. The
// ranking of 32000 ids, one row / 16 rows, took 16.0 / 22.8 µs sorted and 10.1 / 11.2 so (H100,
// bench-e2e --sampling; k = 40 sorted: 17.5 / 22.9).
template <int kItems>
__device__ void Chunk<kItems>::keep_least(Smem &smem, uint32_t *keys_out, int32_t *ids_out) {
    __shared__ unsigned long long warp_least[kThreads / 32];
    unsigned long long least = ~0ull;
    for (int i = threadIdx.x; i < kSize; i += kThreads)
        least = min(least, (unsigned long long)smem.stage.keys[i] << 32 | unsigned(i));
    for (int o = 16; o > 0; o >>= 1) least = min(least, __shfl_xor_sync(0xffffffffu, least, o));
    if ((threadIdx.x & 31) == 0) warp_least[threadIdx.x >> 5] = least;
    __syncthreads();
    if (threadIdx.x != 0) return;
    for (int w = 1; w < kThreads / 32; ++w) least = min(least, warp_least[w]);  // thread 0 holds warp 0's
    keys_out[0] = uint32_t(least >> 32);
    ids_out[0] = smem.stage.ids[uint32_t(least)];
}

// The usable count of row r: the sum of its chunks' counts (counts[r * chunks ..]).
__device__ void sum_counts(const int32_t *counts, int chunks, int r, int32_t *usable) {
    __shared__ int total;
    if (threadIdx.x == 0) total = 0;
    __syncthreads();
    int mine = 0;
    for (int c = threadIdx.x; c < chunks; c += kThreads) mine += counts[size_t(r) * chunks + c];
    if (mine) atomicAdd(&total, mine);
    __syncthreads();
    if (threadIdx.x == 0) usable[r] = total;
}

// Round one: grid (chunks, rows). Chunk c of row r: logits [c * kSize, (c + 1) * kSize). Its
// usable count goes to usable[r] when the row is one chunk, else to counts[r * chunks + c].
template <int kItems>
__global__ void __launch_bounds__(kThreads) rank_chunks(const float *logits, int V, size_t ld,
                                                         const int32_t *penalised, const int32_t *offsets,
                                                         float penalty, int k, uint32_t *keys_out, int32_t *ids_out,
                                                         size_t out_stride, int32_t *counts, int32_t *usable) {
    using C = Chunk<kItems>;
    __shared__ typename C::Smem smem;
    __shared__ int chunk_usable;
    const int r = blockIdx.y, c0 = blockIdx.x * C::kSize, t = threadIdx.x;
    const uint32_t *row = reinterpret_cast<const uint32_t *>(logits + size_t(r) * ld);
    if (t == 0) chunk_usable = 0;
    for (int i = t; i < C::kSize; i += kThreads) {
        const int id = c0 + i;
        smem.stage.keys[i] = id < V ? rank_bits(row[id]) : kNegInfBits;
        smem.stage.ids[i] = id < V ? id : -1;
    }
    __syncthreads();
    // The penalty, on the ranked value (ids are distinct: no two threads write one slot).
    const int p0 = offsets[r] - offsets[0], p1 = offsets[r + 1] - offsets[0];
    for (int j = p0 + t; j < p1; j += kThreads) {
        const int i = penalised[j] - c0;
        if (i >= 0 && i < C::kSize) smem.stage.keys[i] = penalise(smem.stage.keys[i], penalty);
    }
    __syncthreads();
    int mine = 0;
    for (int i = t; i < C::kSize; i += kThreads) {
        const bool real = smem.stage.ids[i] >= 0;
        mine += real && smem.stage.keys[i] != kNegInfBits;
        smem.stage.keys[i] = real ? descending_key(smem.stage.keys[i]) : kPadKey;
    }
    if (mine) atomicAdd(&chunk_usable, mine);
    __syncthreads();
    if (t == 0) {
        if (gridDim.x == 1) usable[r] = chunk_usable;
        else counts[size_t(r) * gridDim.x + blockIdx.x] = chunk_usable;
    }
    const size_t out = size_t(r) * out_stride + size_t(blockIdx.x) * k;
    C::sort_and_keep(smem, k, keys_out + out, ids_out + out);
}

// Later rounds: grid (chunks, rows). Chunk c of row r: pairs [c * kSize, (c + 1) * kSize) of the
// row's n_in kept pairs (in_stride apart between rows). The last round (one chunk per row) also
// sums round one's counts (first_chunks per row) into usable.
template <int kItems>
__global__ void __launch_bounds__(kThreads) merge_chunks(const uint32_t *keys_in, const int32_t *ids_in, int n_in,
                                                          size_t in_stride, int k, uint32_t *keys_out,
                                                          int32_t *ids_out, size_t out_stride, const int32_t *counts,
                                                          int first_chunks, int32_t *usable) {
    using C = Chunk<kItems>;
    __shared__ typename C::Smem smem;
    const int r = blockIdx.y, c0 = blockIdx.x * C::kSize, t = threadIdx.x;
    const uint32_t *kin = keys_in + size_t(r) * in_stride;
    const int32_t *iin = ids_in + size_t(r) * in_stride;
    for (int i = t; i < C::kSize; i += kThreads) {
        const int j = c0 + i;
        smem.stage.keys[i] = j < n_in ? kin[j] : kPadKey;
        smem.stage.ids[i] = j < n_in ? iin[j] : -1;
    }
    if (gridDim.x == 1) sum_counts(counts, first_chunks, r, usable);  // synchronizes the block
    __syncthreads();
    const size_t out = size_t(r) * out_stride + size_t(blockIdx.x) * k;
    C::sort_and_keep(smem, k, keys_out + out, ids_out + out);
}

// Pairs per chunk: 1024, 2048 or 4096 (kThreads x 4, 8, 16 items). Round one takes the smallest
// chunk whose kept lists one merge round can take (chunks x k <= 4096) and whose blocks fit about
// two to an SM (rows x chunks <= 2 x SMs); else 4096. A merge round takes the smallest chunk that
// holds its whole input, or 4096. Measured on the H200 (bench-e2e --sampling, k 40, µs per call
// at chunks of 4096 / 2048 / 1024): 32000 ids, 1 row 23.2 / 18.2 / 17.1, 16 rows 23.8 / 22.6 /
// 26.3; 128256 ids, 1 row 24.8 / 23.8 / 29.5 (1024: two merge rounds), 16 rows 54.3 / 59.3 / 78.9.
int round_one_items(int rows, int V, int k) {
    const int forced = env_int("GPTQ_RANK_ITEMS", 0);
    if (forced == 4 || forced == 8 || forced == 16) return forced;
    const int sms = device_attribute(cudaDevAttrMultiProcessorCount, 132);
    for (int items : {4, 8}) {
        const long long chunks = (V + kThreads * items - 1) / (kThreads * items);
        if (chunks * k <= 4096 && rows * chunks <= 2LL * sms) return items;
    }
    return 16;
}
int merge_items(int n) { return n <= 1024 ? 4 : n <= 2048 ? 8 : 16; }

int chunks_of(long long n, int items) { return int((n + kThreads * items - 1) / (kThreads * items)); }

template <int kItems>
void launch_rank(dim3 grid, cudaStream_t stream, const float *logits, int V, size_t ld, const int32_t *penalised,
                 const int32_t *offsets, float penalty, int k, uint32_t *kout, int32_t *iout, size_t out_stride,
                 int32_t *counts, int32_t *usable) {
    rank_chunks<kItems><<<grid, kThreads, 0, stream>>>(logits, V, ld, penalised, offsets, penalty, k, kout, iout,
                                                       out_stride, counts, usable);
}

template <int kItems>
void launch_merge(dim3 grid, cudaStream_t stream, const uint32_t *kin, const int32_t *iin, int n, size_t in_stride,
                  int k, uint32_t *kout, int32_t *iout, size_t out_stride, const int32_t *counts, int first_chunks,
                  int32_t *usable) {
    merge_chunks<kItems><<<grid, kThreads, 0, stream>>>(kin, iin, n, in_stride, k, kout, iout, out_stride, counts,
                                                        first_chunks, usable);
}

} // namespace

size_t top_candidates_scratch_words(int rows, int V, int k) {
    if (rows <= 0 || V <= 0 || k <= 0) return 0;
    // Two ping-pong areas of keys and ids, each the size of round one's output at its smallest
    // chunk (the largest output), and round one's counts.
    const size_t area = size_t(rows) * size_t(chunks_of(V, 4)) * size_t(k);
    return 4 * area + size_t(rows) * size_t(chunks_of(V, 4));
}

void top_candidates(const float *logits, int rows, int V, size_t ld, const int32_t *penalised, const int32_t *offsets,
                    float penalty, int k, uint32_t *keys, int32_t *ids, int32_t *usable, uint32_t *scratch,
                    size_t scratch_words, cudaStream_t stream) {
    if (rows <= 0 || rows > 65535 || V <= 0 || ld < size_t(V) || k < 1 || k > kTopCandidatesMax)
        fail(GPTQ_ERR_INVALID_ARG, "top_candidates: bad shape (rows %d, V %d, ld %zu, k %d; k at most %d)", rows, V,
             ld, k, kTopCandidatesMax);
    if (!logits || !offsets || !keys || !ids || !usable || !(penalty > 0.0f))
        fail(GPTQ_ERR_INVALID_ARG, "top_candidates: missing array or penalty %g not positive", double(penalty));
    const int items = round_one_items(rows, V, k);
    const int first_chunks = chunks_of(V, items);
    if (first_chunks > 1 && (!scratch || scratch_words < top_candidates_scratch_words(rows, V, k)))
        fail(GPTQ_ERR_INVALID_ARG, "top_candidates: scratch of %zu words, %zu needed", scratch_words,
             top_candidates_scratch_words(rows, V, k));
    // Round one writes first_chunks * k pairs per row; each later round cuts a row's list to
    // ceil(n / chunk) * k pairs. The last round (one chunk per row) writes to keys / ids.
    const size_t area = size_t(rows) * size_t(chunks_of(V, 4)) * size_t(k);
    uint32_t *area_keys[2] = {scratch, scratch ? scratch + 2 * area : nullptr};
    int32_t *counts = scratch ? reinterpret_cast<int32_t *>(scratch + 4 * area) : nullptr;
    int n = V, round = 0;
    const uint32_t *kin = nullptr;
    const int32_t *iin = nullptr;
    size_t in_stride = 0;
    for (;;) {
        const int it = round == 0 ? items : merge_items(n);
        const int chunks = chunks_of(n, it);
        uint32_t *kout = chunks == 1 ? keys : area_keys[round % 2];
        int32_t *iout = chunks == 1 ? ids : reinterpret_cast<int32_t *>(area_keys[round % 2] + area);
        const size_t out_stride = size_t(chunks) * size_t(k);
        const dim3 grid{unsigned(chunks), unsigned(rows)};
        if (round == 0) {
            auto launch = it == 4 ? launch_rank<4> : it == 8 ? launch_rank<8> : launch_rank<16>;
            launch(grid, stream, logits, V, ld, penalised, offsets, penalty, k, kout, iout, out_stride, counts, usable);
        } else {
            auto launch = it == 4 ? launch_merge<4> : it == 8 ? launch_merge<8> : launch_merge<16>;
            launch(grid, stream, kin, iin, n, in_stride, k, kout, iout, out_stride, counts, first_chunks, usable);
        }
        CUDA_CHECK_LAUNCH();
        if (chunks == 1) return;
        kin = kout;
        iin = iout;
        in_stride = out_stride;
        n = chunks * k;
        ++round;
    }
}

} // namespace cuda
} // namespace gptq
