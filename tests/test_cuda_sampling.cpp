// test_cuda_sampling.cpp — the sampler's candidates ranked on the device (top_candidates.cuh)
// against the host's definition (gptq::top_candidates), pair for pair, at vocabularies that take
// one, two and three rounds, with ties, NaN, infinities, -0 and repetition penalties.
#include <doctest/doctest.h>

#include "testutil.h"

GPTQ_TEST_REQUIRES("cuda")

#ifdef GPTQ_USE_CUDA

#include "common.h"
#include "cuda/cuda_check.cuh"
#include "cuda/top_candidates.cuh"
#include "sampler.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <set>
#include <vector>

using namespace gptq;

namespace {

template <class T> struct Dev {
    T *p = nullptr;
    size_t n = 0;
    explicit Dev(size_t count) : n(count) { CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(count, 1) * sizeof(T))); }
    explicit Dev(const std::vector<T> &h) : Dev(h.size()) {
        if (!h.empty()) CUDA_CHECK(cudaMemcpy(p, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
    }
    ~Dev() { cudaFree(p); }
    Dev(const Dev &) = delete;
    Dev &operator=(const Dev &) = delete;
    std::vector<T> download() const {
        std::vector<T> h(n);
        CUDA_CHECK(cudaDeviceSynchronize());
        CUDA_CHECK(cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost));
        return h;
    }
    void poison() { CUDA_CHECK(cudaMemset(p, 0xA5, n * sizeof(T))); }
};

uint32_t bits_of(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}

// rows x V logits: normal, or on a coarse grid (ties within and across chunks), with NaN,
// infinities, -0 and the largest float sprinkled in, and each row its own penalised ids.
struct Rows {
    std::vector<float> logits;
    std::vector<int32_t> penalised, offsets;
};

Rows random_rows(std::mt19937 &rng, int rows, int V, size_t ld, bool grid) {
    Rows r;
    std::normal_distribution<float> nd(0.0f, 3.0f);
    r.logits.assign(size_t(rows) * ld, std::numeric_limits<float>::quiet_NaN());  // the gap poisoned
    std::uniform_int_distribution<int> pick(0, V - 1);
    const float specials[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                              -std::numeric_limits<float>::infinity(), -0.0f, 0.0f,
                              std::numeric_limits<float>::max(), -std::numeric_limits<float>::max(), 1e-45f};
    r.offsets.push_back(0);
    for (int i = 0; i < rows; ++i) {
        float *row = &r.logits[size_t(i) * ld];
        for (int v = 0; v < V; ++v) row[v] = grid ? std::round(nd(rng)) : nd(rng);
        for (int s = 0; s < std::min(V, 8); ++s) row[pick(rng)] = specials[rng() % 8];
        if (i % 3 == 2) {  // a row of nothing usable but a few ids
            for (int v = 0; v < V; ++v) row[v] = -std::numeric_limits<float>::infinity();
            row[pick(rng)] = 1.0f;
        }
        std::set<int32_t> pen;
        const int n_pen = i % 4 == 0 ? 0 : int(rng() % 300);
        for (int j = 0; j < n_pen; ++j) pen.insert(pick(rng));
        r.penalised.insert(r.penalised.end(), pen.begin(), pen.end());
        r.offsets.push_back(int32_t(r.penalised.size()));
    }
    return r;
}

} // namespace

TEST_CASE("top_candidates on the device lists what the host's top_candidates lists, pair for pair") {
    std::mt19937 rng(2024);
    struct Shape {
        int V, rows, k;
        size_t pad;
    };
    // One round (V <= 4096), two (up to 4096 / k chunks), three (151936 at k 256: 38 chunks, 9728
    // pairs, 3 chunks, one); k past V; a row stride wider than V; k = 1 (no sort: a block minimum)
    // in one round and in two (300007 at chunks of 1024: 293 pairs, then one).
    const Shape shapes[] = {{1, 1, 1, 0},       {7, 3, 40, 0},       {100, 2, 256, 5},   {4095, 3, 2, 0},
                            {4096, 2, 64, 0},   {4097, 3, 40, 3},    {32000, 16, 40, 0}, {32000, 4, 1, 0},
                            {151936, 5, 256, 0}, {151936, 3, 40, 16}, {300007, 2, 128, 0},
                            {4097, 3, 1, 3},     {151936, 3, 1, 0},   {300007, 2, 1, 5}};
    const float penalties[] = {1.1f, 0.5f, 3.0f};  // 0.5: the largest float penalised to +inf
    int compared = 0, tied = 0;
    for (const char *items : {"16", "8", "4"})  // round one's chunk: 4096, 2048, 1024 pairs
        for (const Shape &s : shapes)
            for (int grid = 0; grid < 2; ++grid) {
                setenv("GPTQ_RANK_ITEMS", items, 1);
                CAPTURE(items);
                const size_t ld = size_t(s.V) + s.pad;
                const float penalty = penalties[rng() % 3];
                CAPTURE(s.V);
                CAPTURE(s.rows);
                CAPTURE(s.k);
                CAPTURE(grid);
                CAPTURE(penalty);
                const Rows r = random_rows(rng, s.rows, s.V, ld, grid != 0);
                Dev<float> logits(r.logits);
                Dev<int32_t> penalised(r.penalised), offsets(r.offsets);
                Dev<uint32_t> keys(size_t(s.rows) * s.k);
                Dev<int32_t> ids(size_t(s.rows) * s.k), usable(size_t(s.rows));
                const size_t words = cuda::top_candidates_scratch_words(s.rows, s.V, s.k);
                Dev<uint32_t> scratch(words);
                keys.poison();
                ids.poison();
                usable.poison();
                cuda::top_candidates(logits.p, s.rows, s.V, ld, penalised.p, offsets.p, penalty, s.k, keys.p, ids.p,
                                     usable.p, scratch.p, words, nullptr);
                CUDA_CHECK(cudaGetLastError());
                const std::vector<uint32_t> got_keys = keys.download();
                const std::vector<int32_t> got_ids = ids.download(), got_usable = usable.download();
                for (int i = 0; i < s.rows; ++i) {
                    CAPTURE(i);
                    std::vector<float> want_v(size_t(s.k));
                    std::vector<int32_t> want_id(size_t(s.k));
                    const int want_usable = top_candidates(&r.logits[size_t(i) * ld], s.V, r.penalised.data() + r.offsets[i],
                                                           r.offsets[i + 1] - r.offsets[i], penalty, s.k, want_v.data(),
                                                           want_id.data());
                    CHECK(got_usable[size_t(i)] == want_usable);
                    for (int j = 0; j < s.k; ++j) {
                        CAPTURE(j);
                        const size_t at = size_t(i) * s.k + j;
                        REQUIRE(got_ids[at] == want_id[size_t(j)]);
                        if (want_id[size_t(j)] >= 0)
                            REQUIRE(bits_of(cuda::candidate_value(got_keys[at])) == bits_of(want_v[size_t(j)]));
                        tied += j > 0 && want_id[size_t(j)] >= 0 && want_v[size_t(j)] == want_v[size_t(j - 1)];
                        ++compared;
                    }
                }
            }
    unsetenv("GPTQ_RANK_ITEMS");
    CHECK(compared > 15000);  // 3 x 6374 pairs
    CHECK(tied > 3000);       // ties were there to order by id
}

TEST_CASE("top_candidates refuses bad shapes and short scratch before launching") {
    Dev<float> logits(size_t(8192));
    Dev<int32_t> offsets(std::vector<int32_t>{0, 0}), ids(size_t(8)), usable(size_t(1));
    const size_t need = cuda::top_candidates_scratch_words(1, 8192, 8);
    CHECK(need == 4 * 64 + 8);  // two areas of keys and ids, 8 chunks of 1024 x 8 pairs; 8 counts
    Dev<uint32_t> keys(size_t(8)), scratch(need);
    auto call = [&](int rows, int V, size_t ld, int k, float penalty, size_t words) {
        cuda::top_candidates(logits.p, rows, V, ld, nullptr, offsets.p, penalty, k, keys.p, ids.p, usable.p, scratch.p,
                             words, nullptr);
    };
    CHECK_THROWS_AS(call(1, 8192, 8192, 0, 1.0f, 64), Error);     // k 0
    CHECK_THROWS_AS(call(1, 8192, 8192, 257, 1.0f, 64), Error);   // k past the maximum
    CHECK_THROWS_AS(call(1, 8192, 8191, 8, 1.0f, 64), Error);     // row stride under V
    CHECK_THROWS_AS(call(1, 8192, 8192, 8, 0.0f, need), Error);    // penalty not positive
    CHECK_THROWS_AS(call(1, 8192, 8192, 8, 1.0f, need - 1), Error);  // scratch one word short
    CHECK_THROWS_AS(call(0, 8192, 8192, 8, 1.0f, need), Error);    // no rows
    call(1, 8192, 8192, 8, 1.0f, need);  // the same call with enough scratch runs
    CUDA_CHECK(cudaDeviceSynchronize());
}

#endif  // GPTQ_USE_CUDA
