// test_fixed_sums.cpp — the fixed-point slots in which a 4-bit product's K splits add up an fp16
// output (src/cuda/fixed_sums.cuh; the fused kernel's atomic_out 3), checked on the CPU: whichever
// order the shares arrive in, exactly the last arrival sees the slot complete, the sum has the
// same bits, it is the shares' sum to within the units' rounding, and the clamp keeps the count
// intact at the most shares a slot takes.
#include <doctest/doctest.h>

#include "cuda/fixed_sums.cuh"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

using namespace gptq::cuda;

namespace {

// Adds the shares to a zeroed slot in `order`; returns the sum the completing arrival decodes, and
// checks that no earlier arrival completes the slot.
float add_in_order(const std::vector<float> &shares, const std::vector<int> &order, int &completions) {
    const int S = int(shares.size());
    unsigned long long slot = 0;
    float sum = 0.0f;
    completions = 0;
    for (int i = 0; i < S; ++i) {
        slot += fixed_share(shares[size_t(order[size_t(i)])]);  // the atomic: old value + share
        float s = 0.0f;
        if (fixed_complete(slot, S, s)) {
            ++completions;
            CHECK(i == S - 1);
            sum = s;
        }
    }
    return sum;
}

uint32_t bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return u;
}

} // namespace

TEST_CASE("fixed-point split sums: only the last arrival completes, in any order, with the same bits") {
    std::mt19937 rng(7);
    std::uniform_int_distribution<int> splits(2, kFixedMaxShares), exponent(-30, 16);
    std::uniform_real_distribution<float> mantissa(-1.0f, 1.0f);
    for (int trial = 0; trial < 300; ++trial) {
        const int S = trial < 10 ? 2 + trial : splits(rng);
        std::vector<float> shares(static_cast<size_t>(S));
        for (float &v : shares) v = std::ldexp(mantissa(rng), exponent(rng));  // 1e-9 .. 6e4, both signs
        std::vector<int> order(static_cast<size_t>(S));
        std::iota(order.begin(), order.end(), 0);
        int completions = 0;
        const float first = add_in_order(shares, order, completions);
        CHECK(completions == 1);
        for (int r = 0; r < 3; ++r) {
            std::shuffle(order.begin(), order.end(), rng);
            const float again = add_in_order(shares, order, completions);
            CHECK(completions == 1);
            CHECK(bits(again) == bits(first));
        }
        // Each share rounds to a unit (half a unit of error), the total to fp32.
        double exact = 0.0;
        for (float v : shares) exact += v;
        const double unit = std::ldexp(1.0, -kFixedFracBits);
        INFO("S=" << S << " exact=" << exact << " fixed=" << first);
        CHECK(std::fabs(double(first) - exact) <= S * unit / 2 + std::fabs(exact) * 0x1p-24 + 1e-30);
    }
}

TEST_CASE("fixed-point split sums: the clamp keeps the count at 255 extreme shares; non-finite shares clamp") {
    for (float v : {kFixedShareLimit, -kFixedShareLimit, 1e30f, -1e30f}) {
        std::vector<float> shares(size_t(kFixedMaxShares), v);
        std::vector<int> order(shares.size());
        std::iota(order.begin(), order.end(), 0);
        int completions = 0;
        const float sum = add_in_order(shares, order, completions);
        CHECK(completions == 1);
        CHECK(sum == std::copysign(float(kFixedMaxShares) * kFixedShareLimit, v));
    }
    // One infinite or NaN share among small ones: a sum far past fp16's range (an infinite output).
    for (float bad : {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                      std::numeric_limits<float>::quiet_NaN()}) {
        std::vector<float> shares = {0.25f, -1.5f, bad, 3.0f, 0.125f};
        std::vector<int> order = {4, 2, 0, 3, 1};
        int completions = 0;
        const float sum = add_in_order(shares, order, completions);
        CHECK(completions == 1);
        CHECK(std::fabs(sum) > 65504.0f);
    }
    // A zero slot stays complete-free: no arrivals means no count.
    float s = 0.0f;
    CHECK_FALSE(fixed_complete(0ull, 1, s));
}
