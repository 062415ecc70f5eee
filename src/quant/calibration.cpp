// calibration.cpp — see calibration.h.
#include "calibration.h"
#include "../backend.h"
#include "../context.h"
#include "../sampler.h"

#include <algorithm>
#include <cstring>
#include <random>

namespace gptq {

CalibrationSet load_calibration_tokens(const std::string &path, int seq_len, int n_samples, int vocab) {
    const std::string bytes = read_file(path);
    if (seq_len <= 0) fail(GPTQ_ERR_INVALID_ARG, "calibration seq_len %d must be positive", seq_len);
    const size_t row_bytes = size_t(seq_len) * 4;
    if (bytes.empty() || bytes.size() % row_bytes != 0)
        fail(GPTQ_ERR_FORMAT, "%s: %zu bytes is not a whole number of rows of %d int32 tokens", path.c_str(),
             bytes.size(), seq_len);
    const int rows = int(bytes.size() / row_bytes);
    CalibrationSet c;
    c.seq_len = seq_len;
    c.n_samples = n_samples > 0 ? std::min(n_samples, rows) : rows;
    c.tokens.resize(size_t(c.n_samples) * size_t(seq_len));
    std::memcpy(c.tokens.data(), bytes.data(), c.tokens.size() * 4);  // little-endian hosts only (x86, arm64)
    for (size_t i = 0; i < c.tokens.size(); i++)
        if (c.tokens[i] < 0 || c.tokens[i] >= vocab)
            fail(GPTQ_ERR_FORMAT, "%s: token %d at row %zu, column %zu is outside the vocabulary [0, %d)", path.c_str(),
                 c.tokens[i], i / size_t(seq_len), i % size_t(seq_len), vocab);
    c.source = "tokens file " + path;
    return c;
}

CalibrationSet sample_calibration_text(const Model &model, const std::string &path, int seq_len, int n_samples,
                                       uint64_t seed) {
    const std::string text = read_file(path);
    const std::vector<int> ids = model.tok->encode(text, false);
    const int bos = model.tok->bos();
    const int body = bos >= 0 ? seq_len - 1 : seq_len;
    if (int(ids.size()) < body)
        fail(GPTQ_ERR_INVALID_ARG, "%s: %zu tokens, fewer than one calibration window of %d", path.c_str(), ids.size(), body);
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<size_t> start(0, ids.size() - size_t(body));
    CalibrationSet c;
    c.seq_len = seq_len;
    c.n_samples = n_samples;
    c.tokens.reserve(size_t(n_samples) * size_t(seq_len));
    for (int s = 0; s < n_samples; s++) {
        const size_t at = start(rng);
        if (bos >= 0) c.tokens.push_back(bos);
        c.tokens.insert(c.tokens.end(), ids.begin() + long(at), ids.begin() + long(at + size_t(body)));
    }
    c.source = "text file " + path;
    return c;
}

CalibrationSet self_generated_calibration(Model &model, int seq_len, int n_samples, uint64_t seed, int n_threads,
                                          gptq_progress_callback progress, void *user_data) {
    if (!model.backend) model.backend = make_cpu_backend(model, n_threads);
    const int bos = model.tok->bos();
    if (bos < 0) fail(GPTQ_ERR_UNSUPPORTED, "self-generated calibration needs a BOS token; give calibration data");
    // All windows advance together: one batched eval per position.
    const int batch = std::min(n_samples, 64);
    // The Context needs shared ownership semantics only for its lifetime here.
    std::shared_ptr<Model> view(&model, [](Model *) {});
    Context ctx(view, seq_len, batch, std::max(batch, 64));
    CalibrationSet c;
    c.seq_len = seq_len;
    c.n_samples = n_samples;
    c.tokens.resize(size_t(n_samples) * size_t(seq_len));
    const int vocab = model.cfg.vocab_size;
    for (int s0 = 0; s0 < n_samples; s0 += batch) {
        const int nb = std::min(batch, n_samples - s0);
        std::vector<Sampler> samplers;
        std::vector<std::vector<int>> hist(size_t(nb), std::vector<int>{bos});
        SamplerParams sp = unfiltered_sampling(1.0f);
        for (int i = 0; i < nb; i++) {
            sp.seed = seed * 1000003ull + uint64_t(s0 + i);
            samplers.emplace_back(sp);
        }
        ctx.reset(-1);
        std::vector<EvalToken> toks(static_cast<size_t>(nb));
        for (int p = 0; p < seq_len - 1; p++) {
            for (int i = 0; i < nb; i++) toks[size_t(i)] = {hist[size_t(i)].back(), p, i};
            ctx.eval(toks.data(), nb, nullptr);
            for (int i = 0; i < nb; i++) {
                int id;
                try {
                    id = samplers[size_t(i)].sample(ctx.logits(i), vocab, hist[size_t(i)]);
                } catch (const Error &e) {
                    fail(e.status(), "self-generated calibration: %s (give calibration data to find the layer)", e.what());
                }
                // An end of text would start a new document: begin again from BOS instead.
                if (id == model.tok->eos()) id = bos;
                hist[size_t(i)].push_back(id);
            }
            if (progress) {
                const int64_t done = int64_t(s0) * (seq_len - 1) + int64_t(nb) * (p + 1);
                if (progress("calibrate", done, int64_t(n_samples) * (seq_len - 1), "generating calibration text", user_data))
                    fail(GPTQ_ERR_ABORTED, "quantization cancelled while generating calibration text");
            }
        }
        for (int i = 0; i < nb; i++)
            std::copy(hist[size_t(i)].begin(), hist[size_t(i)].end(), c.tokens.begin() + long(size_t(s0 + i) * size_t(seq_len)));
    }
    c.source = "self-generated text";
    return c;
}

} // namespace gptq
