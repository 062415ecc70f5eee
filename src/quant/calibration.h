// calibration.h — the token windows a quantization run feeds through the model.
//
// Three sources, in order of precedence:
//   - a token file: int32 little-endian rows of seq_len tokens (shared/data/calib/*.bin), used as is;
//   - a text file: encoded once, n windows of seq_len-1 tokens at seeded random offsets, each
//     preceded by BOS (as the reference GPTQ code samples C4);
//   - nothing: the model writes its own calibration text, sampled from BOS at temperature 1
//     (seeded) — data-free calibration, so quantizing works on a machine with no dataset.
#pragma once

#include "../model.h"

#include <cstdint>
#include <string>
#include <vector>

namespace gptq {

struct CalibrationSet {
    int n_samples = 0;
    int seq_len = 0;
    std::vector<int32_t> tokens;  // [n_samples, seq_len]
    std::string source;           // for logs: "tokens file x", "text file y", "self-generated"
};

CalibrationSet load_calibration_tokens(const std::string &path, int seq_len, int n_samples, int vocab);
CalibrationSet sample_calibration_text(const Model &model, const std::string &path, int seq_len, int n_samples,
                                       uint64_t seed);
// Needs model.backend (generation); n_threads for the CPU backend it creates when absent.
// Reports progress as stage "calibrate" (tokens generated) and can be cancelled through it.
CalibrationSet self_generated_calibration(Model &model, int seq_len, int n_samples, uint64_t seed, int n_threads,
                                          gptq_progress_callback progress, void *user_data);

} // namespace gptq
