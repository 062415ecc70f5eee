// top_candidates.cu — see top_candidates.cuh.
//
// Rounds of one kernel: a block sorts a chunk of 4096 (key, id) pairs in shared memory (CUB's
// block radix sort, stable) and keeps its first k. The first round reads the logits (ranked and
// penalised as they are loaded); each later round merges the kept lists of 4096 / k chunks until
// one list per row is left (32000 ids: 8 chunks, then one; 151936: 38, then one).
//
// Ties: a key is the value's float order, flipped (ascending sort = descending value), and the
// sort is stable, so pairs of equal keys keep their input order. A chunk's input is in id order
// and a merge's input lists chunks in id order, each sorted: equal values stay in ascending id
// order through every round, as the sampler wants.
#include "top_candidates.cuh"

#include "cuda_check.cuh"

#include <cub/block/block_radix_sort.cuh>

namespace gptq {
namespace cuda {

namespace {

constexpr int kThreads = 256, kItems = 16, kChunk = kThreads * kItems;
constexpr uint32_t kPadKey = 0xffffffffu;  // after every real key (-inf's key is 0xff800000)
constexpr uint32_t kNegInfBits = 0xff800000u;

// As the host sampler's rank_bits: NaN -> -inf, +inf -> the largest float, -0 -> +0.
__device__ __forceinline__ uint32_t rank_bits(uint32_t u) {
    uint32_t r = u == 0x80000000u ? 0u : u;
    r = u == 0x7f800000u ? 0x7f7fffffu : r;
    return (u & 0x7fffffffu) > 0x7f800000u ? kNegInfBits : r;
}

// As the host's penalise, rounding spelled out (no contraction, no fast division): positive
// values divided, others multiplied, + 0 turning an underflow to -0 into +0.
__device__ __forceinline__ uint32_t penalise(uint32_t bits, float penalty) {
    const float v = __uint_as_float(bits);
    const float p = v > 0.0f ? __fdiv_rn(v, penalty) : __fmul_rn(v, penalty);
    return __float_as_uint(__fadd_rn(p, 0.0f));
}

__device__ __forceinline__ uint32_t sort_key(uint32_t bits) {
    const int32_t s = int32_t(bits);
    const uint32_t ordered = uint32_t(s ^ ((s >> 31) & 0x7fffffff));
    return ~(ordered ^ 0x80000000u);
}

using BlockSort = cub::BlockRadixSort<uint32_t, kThreads, kItems, int32_t>;

union ChunkSmem {
    typename BlockSort::TempStorage sort;
    struct {
        uint32_t keys[kChunk];
        int32_t ids[kChunk];
    } stage;  // the chunk as loaded (coalesced), before each thread takes its blocked items
};

// Sorts the staged chunk and writes its first k pairs to keys_out / ids_out.
__device__ void sort_and_keep(ChunkSmem &smem, int k, uint32_t *keys_out, int32_t *ids_out) {
    uint32_t key[kItems];
    int32_t id[kItems];
    const int t = threadIdx.x;
#pragma unroll
    for (int j = 0; j < kItems; ++j) {  // blocked arrangement: thread t holds items t * kItems + j
        key[j] = smem.stage.keys[t * kItems + j];
        id[j] = smem.stage.ids[t * kItems + j];
    }
    __syncthreads();  // the staging area becomes the sort's storage
    BlockSort(smem.sort).Sort(key, id);
#pragma unroll
    for (int j = 0; j < kItems; ++j) {
        const int rank = t * kItems + j;
        if (rank < k) {
            keys_out[rank] = key[j];
            ids_out[rank] = id[j];
        }
    }
}

// Round one: grid (chunks, rows). Chunk c of row r: logits [c * kChunk, (c + 1) * kChunk).
__global__ void __launch_bounds__(kThreads) rank_chunks(const float *logits, int V, size_t ld,
                                                         const int32_t *penalised, const int32_t *offsets,
                                                         float penalty, int k, uint32_t *keys_out, int32_t *ids_out,
                                                         size_t out_stride, int32_t *usable) {
    __shared__ ChunkSmem smem;
    __shared__ int chunk_usable;
    const int r = blockIdx.y, c0 = blockIdx.x * kChunk, t = threadIdx.x;
    const uint32_t *row = reinterpret_cast<const uint32_t *>(logits + size_t(r) * ld);
    if (t == 0) chunk_usable = 0;
    for (int i = t; i < kChunk; i += kThreads) {
        const int id = c0 + i;
        smem.stage.keys[i] = id < V ? rank_bits(row[id]) : kNegInfBits;
        smem.stage.ids[i] = id < V ? id : -1;
    }
    __syncthreads();
    // The penalty, on the ranked value (ids are distinct: no two threads write one slot).
    const int p0 = offsets[r] - offsets[0], p1 = offsets[r + 1] - offsets[0];
    for (int j = p0 + t; j < p1; j += kThreads) {
        const int i = penalised[j] - c0;
        if (i >= 0 && i < kChunk) smem.stage.keys[i] = penalise(smem.stage.keys[i], penalty);
    }
    __syncthreads();
    int mine = 0;
    for (int i = t; i < kChunk; i += kThreads) {
        const bool real = smem.stage.ids[i] >= 0;
        mine += real && smem.stage.keys[i] != kNegInfBits;
        smem.stage.keys[i] = real ? sort_key(smem.stage.keys[i]) : kPadKey;
    }
    atomicAdd(&chunk_usable, mine);
    __syncthreads();
    if (t == 0 && chunk_usable) atomicAdd(&usable[r], chunk_usable);
    const size_t out = size_t(r) * out_stride + size_t(blockIdx.x) * k;
    sort_and_keep(smem, k, keys_out + out, ids_out + out);
}

// Later rounds: grid (chunks, rows). Chunk c of row r: pairs [c * kChunk, (c + 1) * kChunk) of
// the row's n_in kept pairs (in_stride apart between rows).
__global__ void __launch_bounds__(kThreads) merge_chunks(const uint32_t *keys_in, const int32_t *ids_in, int n_in,
                                                          size_t in_stride, int k, uint32_t *keys_out,
                                                          int32_t *ids_out, size_t out_stride) {
    __shared__ ChunkSmem smem;
    const int r = blockIdx.y, c0 = blockIdx.x * kChunk, t = threadIdx.x;
    const uint32_t *kin = keys_in + size_t(r) * in_stride;
    const int32_t *iin = ids_in + size_t(r) * in_stride;
    for (int i = t; i < kChunk; i += kThreads) {
        const int j = c0 + i;
        smem.stage.keys[i] = j < n_in ? kin[j] : kPadKey;
        smem.stage.ids[i] = j < n_in ? iin[j] : -1;
    }
    __syncthreads();
    const size_t out = size_t(r) * out_stride + size_t(blockIdx.x) * k;
    sort_and_keep(smem, k, keys_out + out, ids_out + out);
}

int chunks_of(long long n) { return int((n + kChunk - 1) / kChunk); }

} // namespace

size_t top_candidates_scratch_words(int rows, int V, int k) {
    if (rows <= 0 || V <= 0 || k <= 0) return 0;
    // Two ping-pong areas of keys and ids, each the size of round one's output (the largest).
    return size_t(4) * size_t(rows) * size_t(chunks_of(V)) * size_t(k);
}

void top_candidates(const float *logits, int rows, int V, size_t ld, const int32_t *penalised, const int32_t *offsets,
                    float penalty, int k, uint32_t *keys, int32_t *ids, int32_t *usable, uint32_t *scratch,
                    size_t scratch_words, cudaStream_t stream) {
    if (rows <= 0 || rows > 65535 || V <= 0 || ld < size_t(V) || k < 1 || k > kTopCandidatesMax)
        fail(GPTQ_ERR_INVALID_ARG, "top_candidates: bad shape (rows %d, V %d, ld %zu, k %d; k at most %d)", rows, V,
             ld, k, kTopCandidatesMax);
    if (!logits || !offsets || !keys || !ids || !usable || !(penalty > 0.0f))
        fail(GPTQ_ERR_INVALID_ARG, "top_candidates: missing array or penalty %g not positive", double(penalty));
    if (chunks_of(V) > 1 && (!scratch || scratch_words < top_candidates_scratch_words(rows, V, k)))
        fail(GPTQ_ERR_INVALID_ARG, "top_candidates: scratch of %zu words, %zu needed", scratch_words,
             top_candidates_scratch_words(rows, V, k));
    CUDA_CHECK(cudaMemsetAsync(usable, 0, size_t(rows) * sizeof(int32_t), stream));
    // Round one writes chunks * k pairs per row; each later round cuts a row's list to
    // ceil(n / kChunk) * k pairs. The last round (one chunk per row) writes to keys / ids.
    const size_t area = size_t(rows) * size_t(chunks_of(V)) * size_t(k);
    uint32_t *area_keys[2] = {scratch, scratch ? scratch + 2 * area : nullptr};
    int n = V, round = 0;
    const uint32_t *kin = nullptr;
    const int32_t *iin = nullptr;
    size_t in_stride = 0;
    for (;;) {
        const int chunks = chunks_of(n);
        uint32_t *kout = chunks == 1 ? keys : area_keys[round % 2];
        int32_t *iout = chunks == 1 ? ids : reinterpret_cast<int32_t *>(area_keys[round % 2] + area);
        const size_t out_stride = size_t(chunks) * size_t(k);
        const dim3 grid{unsigned(chunks), unsigned(rows)};
        if (round == 0)
            rank_chunks<<<grid, kThreads, 0, stream>>>(logits, V, ld, penalised, offsets, penalty, k, kout, iout,
                                                      out_stride, usable);
        else
            merge_chunks<<<grid, kThreads, 0, stream>>>(kin, iin, n, in_stride, k, kout, iout, out_stride);
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
