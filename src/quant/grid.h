// grid.h — the reference quantizer's rounding step, inline so the solver's column loops vectorize.
// pack.cpp's quantize_value() is this function; keep one definition of the arithmetic.
#pragma once

#include <algorithm>
#include <cmath>

namespace gptq {

// clamp(round_half_even(w / scale) + zero, 0, maxq): the reference rounds w / scale and then adds
// the zero point. std::nearbyint rounds half to even under the default rounding mode. A NaN
// (only from a zero scale) lands on 0; the argument order of max/min makes that so.
inline int quantize_code(float w, float scale, float zero, int maxq) {
    float v = std::nearbyint(w / scale) + zero;
    v = std::max(0.f, v);
    v = std::min(float(maxq), v);
    return int(v);
}

} // namespace gptq
