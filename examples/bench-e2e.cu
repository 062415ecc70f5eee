// bench-e2e — the CUDA backend end to end on a Llama-2-7B-shaped model with random weights made
// on the GPU (4-bit group-128 in the kernels' layout, then fp16): decode tokens/s at batch 1 with
// a 512-token context, decode at batch 16, prefill tokens/s for a 2048-token prompt, peak memory.
//
//   bench-e2e [--small] [--q4-only] [--variants] [--trace] [--stamps] [--sampling] [--sweep NAME=...]
//     --small: a 4-layer model, for a smoke run
//     --variants: 4-bit model only; decode at batch 1 (and 16) under each decode fusion switched
//       off (GPTQ_CUDA_FUSE), the 4-bit split fitted to one wave or not, and with stages left out
//       (GPTQ_CUDA_SKIP: what each stage costs inside the graph)
//     --sweep NAME=v1,v2,...: 4-bit model only; decode at batch 1 and 16 with the environment
//       variable NAME set to each value in turn (one context each; the list runs twice, so that
//       drift between the first and the last value shows)
//     --sampling: 4-bit model only; decode at batch 1 and 16 with the default sampler (T 0.8,
//       top-k 40, top-p 0.95, min-p 0.05, penalty 1.1 over the last 64 ids) and with the greedy
//       one (T 0, the same penalty) feeding back the drawn ids, at vocabularies of 32000 and
//       128256: the logits copied to the host and sampled there (one thread), against the
//       candidates ranked on the device (GPTQ_CUDA_RANK=1, k = 40, greedy 1); the ranking alone
//       first
//     --trace: 4-bit model only; the kernel timeline of one decode step at batch 1 (CUPTI): each
//       kernel's time and the gap before it, summed by kernel, and the first layer in order
//     --stamps: 4-bit model only; the phases of each 4-bit product's and attention's blocks in one
//       decode step at batch 1 (%globaltimer stamps: entry, PDL wait, staging, main loop), means
//       over the layers; GPTQ_STAMPS_CSV=FILE also writes every block's stamps
//       (benchmarks/stamps_deciles.py reads it; attention's rows have K = N = 0)
#include "cuda/cuda_backend.cuh"
#include "cuda/cuda_check.cuh"
#include "cuda/q4_gemm.cuh"
#include "cuda/top_candidates.cuh"
#include "kernel_trace.h"
#include "sampler.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

using namespace gptq;

namespace {

double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Result {
    double decode1 = 0, decode16 = 0, prefill = 0, decode1_nograph = 0, decode1_nopdl = 0;
    double weights_gib = 0, peak_gib = 0, used_gib = 0;
};

// Prefills n_prompt tokens into each of n_seq sequences, then decodes `steps` tokens per sequence
// one batch (one token per sequence) at a time; returns decode tokens/s.
double decode_rate(BackendContext &ctx, int n_seq, int n_prompt, int steps, int V, int n_batch) {
    std::vector<EvalToken> b;
    std::vector<int8_t> want;
    std::vector<float> logits(size_t(std::max(n_seq, 1)) * V);
    for (int s = 0; s < n_seq; ++s)
        for (int p0 = 0; p0 < n_prompt; p0 += n_batch) {
            b.clear();
            want.clear();
            for (int p = p0; p < std::min(n_prompt, p0 + n_batch); ++p) {
                b.push_back({(p * 7 + s * 13 + 1) % V, p, s});
                want.push_back(p == n_prompt - 1);
            }
            ctx.eval(b.data(), int(b.size()), want.data(), logits.data());
        }
    // As the library's Context takes them: into the backend's own host storage where it has one.
    auto step = [&](int pos) {
        b.clear();
        want.assign(size_t(n_seq), 1);
        for (int s = 0; s < n_seq; ++s) b.push_back({(pos * 31 + s) % V, pos, s});
        float *out = ctx.logits_storage(size_t(n_seq) * V);
        ctx.eval(b.data(), n_seq, want.data(), out ? out : logits.data());
    };
    for (int i = 0; i < 3; ++i) step(n_prompt + i);  // warm-up (graph capture)
    const double t0 = now_s();
    for (int i = 3; i < steps; ++i) step(n_prompt + i);
    return double(steps - 3) * n_seq / (now_s() - t0);
}

cuda::SyntheticModelSpec llama7b(bool q4, bool small) { return cuda::llama2_7b_spec(q4, small ? 4 : 32); }

// Decode rates under the switches of --variants, one context each.
void variants(bool small) {
    const cuda::SyntheticModelSpec spec = llama7b(true, small);
    auto backend = cuda::make_synthetic_backend(spec, 0);
    const int V = spec.cfg.vocab_size;
    struct Var {
        const char *label;
        int fuse, skip;  // GPTQ_CUDA_FUSE and GPTQ_CUDA_SKIP masks
        const char *silu_rows;
        int fit;     // 4-bit splits fitted to one wave: -1 by M (default), 0 never, 1 always
        int atomic;  // 1: fp32 outputs accumulated with atomics
        bool b16;
        const char *env = nullptr;  // one more NAME=VALUE for this variant
    };
    using namespace cuda;
    constexpr int all = kFuseAll, skip_all = kSkipAttention | kSkipLinear | kSkipHead;
    const Var vars[] = {
        {"all fusions (default)", all, 0, "4", -1, 1, true},
        {"no fusions", 0, 0, "4", -1, 1, true},
        {"all but deferred", all & ~kFuseDefer, 0, "4", -1, 1, false},
        {"all but chunk combine", all & ~kFuseCombine, 0, "4", -1, 1, false},
        {"attn merges (counters)", all & ~kFuseAttnMerge, 0, "4", -1, 1, false},
        {"all but rope+deferred", all & ~(kFuseRope | kFuseDefer), 0, "4", -1, 1, false},
        {"all, deterministic", all, 0, "4", -1, 0, true},
        {"all, split fit off", all, 0, "4", 0, 1, true},
        {"all, silu <= 16 rows", all, 0, "16", -1, 1, true},
        {"all, norm stash off", all, 0, "4", -1, 1, false},
        {"none, determ., fit off", 0, 0, "4", 0, 0, true},
        {"all, skip attention", all, kSkipAttention, "4", -1, 1, false},
        {"all, skip linears", all, kSkipLinear, "4", -1, 1, false},
        {"all, skip head", all, kSkipHead, "4", -1, 1, false},
        {"all, skip all three", all, skip_all, "4", -1, 1, false},
        {"all, chunk attention", all, 0, "4", -1, 1, true, "GPTQ_CUDA_ATTN_CHUNKED=1"},
        {"all, attention 4 ranges", all, 0, "4", -1, 1, false, "GPTQ_CUDA_ATTN_SPLITS=4"},
        {"all, attention 16 ranges", all, 0, "4", -1, 1, false, "GPTQ_CUDA_ATTN_SPLITS=16"},
        {"all fusions (again)", all, 0, "4", -1, 1, true},
    };
    std::printf("%-24s | %12s %12s\n", "variant", "decode b=1", "decode b=16");
    for (const Var &v : vars) {
        setenv("GPTQ_CUDA_FUSE", std::to_string(v.fuse).c_str(), 1);
        setenv("GPTQ_CUDA_SKIP", std::to_string(v.skip).c_str(), 1);
        setenv("GPTQ_Q4_SILU_ROWS", v.silu_rows, 1);
        setenv("GPTQ_Q4_NORM_STASH", std::strstr(v.label, "stash off") ? "0" : "1", 1);
        cuda::q4_set_split_fit(v.fit);
        cuda::q4_set_atomic_accumulate(v.atomic == 1);
        std::string env_name;
        if (v.env) {
            const std::string kv = v.env;
            env_name = kv.substr(0, kv.find('='));
            setenv(env_name.c_str(), kv.substr(kv.find('=') + 1).c_str(), 1);
        }
        double b1 = 0, b16 = 0;
        {
            auto ctx = backend->create_context(1024, 1, 512);
            b1 = decode_rate(*ctx, 1, 512, 67, V, 512);
        }
        if (v.b16) {
            auto ctx = backend->create_context(1024, 16, 512);
            b16 = decode_rate(*ctx, 16, 512, 35, V, 512);
        }
        if (!env_name.empty()) unsetenv(env_name.c_str());
        std::printf("%-24s | %8.1f t/s %8.1f t/s\n", v.label, b1, b16);
        std::fflush(stdout);
    }
    unsetenv("GPTQ_Q4_SILU_ROWS");
    unsetenv("GPTQ_Q4_NORM_STASH");
    cuda::q4_set_atomic_accumulate(true);
    unsetenv("GPTQ_CUDA_FUSE");
    unsetenv("GPTQ_CUDA_SKIP");
    cuda::q4_set_split_fit(-1);
}

// Decode rates with one environment variable set to each of a list of values (--sweep).
void sweep(bool small, const std::string &spec_arg) {
    const size_t eq = spec_arg.find('=');
    if (eq == std::string::npos) throw std::runtime_error("--sweep wants NAME=v1,v2,...");
    const std::string name = spec_arg.substr(0, eq);
    std::vector<std::string> values;
    for (size_t a = eq + 1; a <= spec_arg.size();) {
        size_t b = spec_arg.find(',', a);
        if (b == std::string::npos) b = spec_arg.size();
        values.push_back(spec_arg.substr(a, b - a));
        a = b + 1;
    }
    const cuda::SyntheticModelSpec spec = llama7b(true, small);
    auto backend = cuda::make_synthetic_backend(spec, 0);
    const int V = spec.cfg.vocab_size;
    std::printf("%-28s | %12s %12s\n", name.c_str(), "decode b=1", "decode b=16");
    for (int pass = 0; pass < 2; ++pass)
        for (const std::string &v : values) {
            setenv(name.c_str(), v.c_str(), 1);
            double b1 = 0, b16 = 0;
            {
                auto ctx = backend->create_context(1024, 1, 512);
                b1 = decode_rate(*ctx, 1, 512, 131, V, 512);
            }
            {
                auto ctx = backend->create_context(1024, 16, 512);
                b16 = decode_rate(*ctx, 16, 512, 35, V, 512);
            }
            std::printf("%-28s | %8.1f t/s %8.1f t/s\n", v.c_str(), b1, b16);
            std::fflush(stdout);
        }
    unsetenv(name.c_str());
}

// Decode tokens/s with sampling: n_seq sequences prefilled with n_prompt tokens, then `steps`
// steps of one token each, every token drawn by a default sampler from the logits on the host or
// from the candidates ranked on the device (ranked) and fed back.
double sampled_decode_rate(BackendContext &ctx, int n_seq, int n_prompt, int steps, int V, bool ranked,
                           bool greedy) {
    std::vector<Sampler> samplers;
    std::vector<std::vector<int>> hist(static_cast<size_t>(n_seq));
    for (int s = 0; s < n_seq; ++s) {
        SamplerParams p;
        p.seed = uint64_t(s) + 1;
        if (greedy) p.temperature = 0.0f;
        samplers.emplace_back(p);
    }
    const int k = samplers[0].candidates_needed();
    std::vector<EvalToken> b;
    std::vector<int8_t> want;
    std::vector<float> logits(size_t(n_seq) * V), values(size_t(n_seq) * k);
    std::vector<int32_t> ids(size_t(n_seq) * k), usable(static_cast<size_t>(n_seq));
    PenalisedRows pen;
    float *rows = logits.data();  // the backend's host storage where it has one, as the Context
    auto eval = [&]() {
        const int n = int(b.size());
        if (!ranked) {
            float *storage = ctx.logits_storage(size_t(n_seq) * V);
            rows = storage ? storage : logits.data();
            ctx.eval(b.data(), n, want.data(), rows);
            return;
        }
        pen.clear();
        for (int i = 0; i < n; ++i)
            if (want[size_t(i)]) {
                const int s = b[size_t(i)].seq;
                pen.add(samplers[size_t(s)], hist[size_t(s)], V);
            }
        CandidateQuery q;
        q.k = k;
        q.penalty = samplers[0].repeat_penalty();
        q.penalised = pen.ids();
        q.offsets = pen.offsets();
        ctx.eval_candidates(b.data(), n, want.data(), q, values.data(), ids.data(), usable.data());
    };
    auto draw = [&](int s) {
        const size_t at = size_t(s);
        return ranked ? samplers[at].sample_top(&values[at * k], &ids[at * k], k, usable[at], V)
                      : samplers[at].sample(rows + at * V, V, hist[at]);
    };
    for (int s = 0; s < n_seq; ++s) {
        b.clear();
        want.clear();
        for (int p = 0; p < n_prompt; ++p) {
            b.push_back({(p * 7 + s * 13 + 1) % V, p, s});
            want.push_back(p == n_prompt - 1);
            hist[size_t(s)].push_back(b.back().token);
        }
        eval();
    }
    std::vector<int> next(static_cast<size_t>(n_seq));
    for (int s = 0; s < n_seq; ++s) next[size_t(s)] = 0;  // the prompts' draws are not timed
    double t0 = 0;
    for (int i = 0; i < steps; ++i) {
        if (i == 3) t0 = now_s();  // after the warm-up (graph capture)
        b.clear();
        want.assign(size_t(n_seq), 1);
        for (int s = 0; s < n_seq; ++s) {
            b.push_back({next[size_t(s)], n_prompt + i, s});
            hist[size_t(s)].push_back(next[size_t(s)]);
        }
        eval();
        for (int s = 0; s < n_seq; ++s) next[size_t(s)] = draw(s);
    }
    return double(steps - 3) * n_seq / (now_s() - t0);
}

// The ranking alone (top_candidates, k 40 and k 1, 64 penalised ids per row) on rows of normal
// logits: µs per call, the mean of 200 calls back to back after 10, for each round-one chunk size
// and the one top_candidates plans.
void ranking_alone() {
    std::printf("%-8s %5s %3s | %14s %14s %14s %14s\n", "vocab", "rows", "k", "chunk 4096", "chunk 2048",
                "chunk 1024", "planned");
    for (int V : {32000, 128256})
        for (int rows : {1, 16}) {
            std::vector<float> h(size_t(rows) * V);
            uint32_t x = 12345;
            for (float &v : h) {
                x = x * 1664525u + 1013904223u;
                v = float(int(x >> 9) - (1 << 22)) * (3.0f / (1 << 22));
            }
            std::vector<int32_t> q(size_t(rows) + 1 + size_t(rows) * 64);
            for (int r = 0; r <= rows; ++r) q[size_t(r)] = 64 * r;
            for (int i = 0; i < rows * 64; ++i) q[size_t(rows) + 1 + size_t(i)] = (i % 64) * (V / 64) + i / 64;
            const size_t words = cuda::top_candidates_scratch_words(rows, V, 40);  // k = 40's, the larger
            float *logits = nullptr;
            int32_t *query = nullptr, *out = nullptr;
            uint32_t *scratch = nullptr;
            CUDA_CHECK(cudaMalloc(&logits, h.size() * 4));
            CUDA_CHECK(cudaMalloc(&query, q.size() * 4));
            CUDA_CHECK(cudaMalloc(&out, size_t(rows) * 81 * 4));
            CUDA_CHECK(cudaMalloc(&scratch, words * 4));
            CUDA_CHECK(cudaMemcpy(logits, h.data(), h.size() * 4, cudaMemcpyHostToDevice));
            CUDA_CHECK(cudaMemcpy(query, q.data(), q.size() * 4, cudaMemcpyHostToDevice));
            cudaEvent_t e0, e1;
            CUDA_CHECK(cudaEventCreate(&e0));
            CUDA_CHECK(cudaEventCreate(&e1));
            for (int k : {40, 1}) {
                std::printf("%-8d %5d %3d |", V, rows, k);
                for (const char *items : {"16", "8", "4", "0"}) {
                    setenv("GPTQ_RANK_ITEMS", items, 1);
                    auto call = [&] {
                        cuda::top_candidates(logits, rows, V, size_t(V), query + rows + 1, query, 1.1f, k,
                                             reinterpret_cast<uint32_t *>(out), out + rows * 40, out + rows * 80,
                                             scratch, words, nullptr);
                    };
                    for (int i = 0; i < 10; ++i) call();
                    CUDA_CHECK(cudaEventRecord(e0));
                    for (int i = 0; i < 200; ++i) call();
                    CUDA_CHECK(cudaEventRecord(e1));
                    CUDA_CHECK(cudaEventSynchronize(e1));
                    float ms = 0;
                    CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
                    std::printf(" %11.2f us", ms * 1000.0 / 200);
                }
                std::printf("\n");
            }
            unsetenv("GPTQ_RANK_ITEMS");
            cudaEventDestroy(e0);
            cudaEventDestroy(e1);
            cudaFree(logits);
            cudaFree(query);
            cudaFree(out);
            cudaFree(scratch);
        }
}

void sampling(bool small) {
    ranking_alone();
    std::printf("%-8s %-28s | %12s %12s\n", "vocab", "sampling", "decode b=1", "decode b=16");
    for (int V : {32000, 128256}) {
        cuda::SyntheticModelSpec spec = llama7b(true, small);
        spec.cfg.vocab_size = V;
        auto backend = cuda::make_synthetic_backend(spec, 0);
        for (int pass = 0; pass < 2; ++pass)
            for (bool greedy : {false, true})
                for (bool ranked : {false, true}) {
                    setenv("GPTQ_CUDA_RANK", ranked ? "1" : "0", 1);
                    double b1 = 0, b16 = 0;
                    {
                        auto ctx = backend->create_context(1024, 1, 512);
                        b1 = sampled_decode_rate(*ctx, 1, 512, 131, V, ranked, greedy);
                    }
                    {
                        auto ctx = backend->create_context(1024, 16, 512);
                        b16 = sampled_decode_rate(*ctx, 16, 512, 35, V, ranked, greedy);
                    }
                    std::printf("%-8d %-28s | %8.1f t/s %8.1f t/s\n", V,
                                greedy ? (ranked ? "greedy, ranked on the device" : "greedy, logits to the host")
                                       : (ranked ? "ranked on the device" : "logits to the host"),
                                b1, b16);
                    std::fflush(stdout);
                }
        unsetenv("GPTQ_CUDA_RANK");
    }
}

// One decode step's kernels at batch 1 (position ~515 of a 1024 context), as CUPTI saw them.
void trace(bool small) {
    const cuda::SyntheticModelSpec spec = llama7b(true, small);
    auto backend = cuda::make_synthetic_backend(spec, 0);
    const int V = spec.cfg.vocab_size;
    auto ctx = backend->create_context(1024, 1, 512);
    decode_rate(*ctx, 1, 512, 6, V, 512);  // prefill, graph capture, a few steps
    std::vector<float> logits(static_cast<size_t>(V));
    const int8_t want = 1;
    const EvalToken tok{7, 520, 0};
    std::string why;
    CUDA_CHECK(cudaDeviceSynchronize());
    if (!bench::trace_begin(&why)) {
        std::printf("trace unavailable: %s\n", why.c_str());
        return;
    }
    ctx->eval(&tok, 1, &want, logits.data());
    CUDA_CHECK(cudaDeviceSynchronize());
    const std::vector<bench::KernelSpan> ks = bench::trace_end();
    if (ks.empty()) {
        std::printf("trace: no kernels recorded\n");
        return;
    }
    struct Sum {
        int n = 0;
        double busy = 0, gap = 0;
    };
    std::vector<std::pair<std::string, Sum>> sums;
    auto sum_of = [&](const std::string &name) -> Sum & {
        for (auto &s : sums)
            if (s.first == name) return s.second;
        sums.push_back({name, Sum()});
        return sums.back().second;
    };
    double busy = 0, gaps = 0;
    for (size_t i = 0; i < ks.size(); ++i) {
        const double d = (ks[i].end - ks[i].start) * 1e-3, g = i ? (double(ks[i].start) - double(ks[i - 1].end)) * 1e-3 : 0;
        Sum &s = sum_of(ks[i].name);
        ++s.n;
        s.busy += d;
        s.gap += g;
        busy += d;
        gaps += g;
    }
    const double span = (ks.back().end - ks.front().start) * 1e-3;
    std::printf("one decode step, batch 1: %zu kernels, %.1f us from the first start to the last end; kernels %.1f us, "
                "gaps before them %.1f us (negative: overlap under PDL)\n",
                ks.size(), span, busy, gaps);
    std::printf("%-58s %5s %10s %9s %10s\n", "kernel [grid]", "n", "total us", "mean us", "gaps us");
    for (const auto &s : sums)
        std::printf("%-58.58s %5d %10.1f %9.2f %10.1f\n", s.first.c_str(), s.second.n, s.second.busy,
                    s.second.busy / s.second.n, s.second.gap);
    std::printf("in order (embedding, layer 0, layer 1's first kernel):\n");
    for (size_t i = 0; i < ks.size() && i < 12; ++i)
        std::printf("  %-58.58s start %8.2f  dur %7.2f  gap %6.2f\n", ks[i].name.c_str(),
                    (ks[i].start - ks.front().start) * 1e-3, (ks[i].end - ks[i].start) * 1e-3,
                    i ? (double(ks[i].start) - double(ks[i - 1].end)) * 1e-3 : 0.0);
}

// One decode step's 4-bit products and attention kernels at batch 1 (position ~515 of a 1024
// context) as their blocks stamp them (q4_stamps_begin): per kernel, when its blocks enter, leave
// the PDL wait, have staged their activations and have finished their main loops, in µs after the
// kernel's release (its first block past the wait); means over the layers between the first and
// the last.
void stamps(bool small) {
    const cuda::SyntheticModelSpec spec = llama7b(true, small);
    auto backend = cuda::make_synthetic_backend(spec, 0);
    const int V = spec.cfg.vocab_size, L = spec.cfg.n_layers;
    cuda::q4_stamps_begin(size_t(1) << 20);
    auto ctx = backend->create_context(1024, 1, 512);
    decode_rate(*ctx, 1, 512, 6, V, 512);  // prefill, graph capture (with the stamping kernels), a few steps
    cuda::q4_stamps_clear();
    std::vector<float> logits(static_cast<size_t>(V));
    const int8_t want = 1;
    const EvalToken tok{7, 520, 0};
    ctx->eval(&tok, 1, &want, logits.data());
    const std::vector<cuda::Q4Stamp> st = cuda::q4_stamps_end();
    if (const char *path = std::getenv("GPTQ_STAMPS_CSV")) {  // every block's stamps, for analysis elsewhere
        if (FILE *f = std::fopen(path, "w")) {
            std::fprintf(f, "K,N,block,sm,entry,waited,staged,met\n");
            for (const auto &s : st)
                std::fprintf(f, "%u,%u,%u,%u,%llu,%llu,%llu,%llu\n", s.K, s.N, s.block, s.sm,
                             (unsigned long long)s.entry, (unsigned long long)s.waited, (unsigned long long)s.staged,
                             (unsigned long long)s.met);
            std::fclose(f);
        }
    }
    struct Product {
        const char *name;
        uint32_t K, N;
    };
    const int H = spec.cfg.hidden_size, I = spec.cfg.intermediate_size;
    const int kvh = spec.cfg.n_kv_heads * (spec.cfg.head_dim > 0 ? spec.cfg.head_dim : H / spec.cfg.n_heads);
    const Product prods[] = {{"q|k|v", uint32_t(H), uint32_t(H + 2 * kvh)},
                             // the one-token attention: 'staged' is its queries rotated, 'loop done' its end
                             {"attn", 0, 0},
                             {"o_proj", uint32_t(H), uint32_t(H)},
                             {"gate|up", uint32_t(H), uint32_t(2 * I)},
                             {"down", uint32_t(I), uint32_t(H)}};
    std::printf("one decode step, batch 1: %zu block stamps\n", st.size());
    // Per product and layer: the blocks, sorted by their wait's end (a layer's blocks all come after
    // the previous layer's).
    const int np = int(std::size(prods));
    std::vector<std::vector<std::vector<cuda::Q4Stamp>>> by(np, std::vector<std::vector<cuda::Q4Stamp>>(size_t(L)));
    for (int p = 0; p < np; ++p) {
        std::vector<cuda::Q4Stamp> mine;
        for (const auto &s : st)
            if (s.K == prods[p].K && s.N == prods[p].N) mine.push_back(s);
        if (mine.empty() || mine.size() % size_t(L)) {
            std::printf("%s: %zu stamps, not a whole number per layer\n", prods[p].name, mine.size());
            return;
        }
        std::sort(mine.begin(), mine.end(), [](const auto &a, const auto &b) { return a.waited < b.waited; });
        const size_t per = mine.size() / size_t(L);
        for (int l = 0; l < L; ++l) by[p][size_t(l)].assign(mine.begin() + l * per, mine.begin() + (l + 1) * per);
    }
    auto release = [&](int p, int l) {
        uint64_t r = UINT64_MAX;
        for (const auto &s : by[p][size_t(l)]) r = std::min(r, s.waited);
        return r;
    };
    // Quantiles of one field over a layer's blocks, in µs after the release.
    auto q = [](std::vector<double> v, double f) {
        std::sort(v.begin(), v.end());
        return v[std::min(v.size() - 1, size_t(f * double(v.size() - 1) + 0.5))];
    };
    std::printf("%-8s %6s | %20s | %8s | %15s | %22s | %8s %7s\n", "product", "blocks", "entry min/med/max",
                "wait max", "staged med/max", "loop done min/med/max", "next rel", "max/SM");
    const int l0 = L > 2 ? 1 : 0, l1 = L > 2 ? L - 1 : L;  // layers averaged
    for (int p = 0; p < np; ++p) {
        double acc[11] = {0};
        for (int l = l0; l < l1; ++l) {
            const auto &b = by[p][size_t(l)];
            const uint64_t r = release(p, l);
            std::vector<double> e, w, sg, m;
            std::vector<int> per_sm(1024, 0);
            int most = 0;
            for (const auto &s : b) {
                e.push_back((double(s.entry) - double(r)) * 1e-3);
                w.push_back((double(s.waited) - double(r)) * 1e-3);
                sg.push_back((double(s.staged) - double(r)) * 1e-3);
                m.push_back((double(s.met) - double(r)) * 1e-3);
                most = std::max(most, ++per_sm[s.sm % 1024]);
            }
            // The next product's release: the next one in the layer, or the next layer's q|k|v.
            const uint64_t next = p + 1 < np ? release(p + 1, l) : (l + 1 < L ? release(0, l + 1) : r);
            const double v[11] = {q(e, 0), q(e, 0.5), q(e, 1), q(w, 1), q(sg, 0.5), q(sg, 1), q(m, 0), q(m, 0.5),
                                  q(m, 1), (double(next) - double(r)) * 1e-3, double(most)};
            for (int i = 0; i < 11; ++i) acc[i] += v[i] / (l1 - l0);
        }
        std::printf("%-8s %6zu | %6.2f %6.2f %6.2f | %8.2f | %7.2f %7.2f | %7.2f %7.2f %7.2f | %8.2f %7.1f\n",
                    prods[p].name, by[p][0].size(), acc[0], acc[1], acc[2], acc[3], acc[4], acc[5], acc[6], acc[7],
                    acc[8], acc[9], acc[10]);
    }
    std::printf("(µs after each kernel's release, means over layers %d..%d; next rel: the next kernel's release; "
                "attention's blocks of unused ranges do not stamp)\n",
                l0, l1 - 1);
    // Does a block's loop end later where more blocks of its product share its SM? Loop done
    // (median, max) of the blocks on SMs holding 1, 2, 3 or 4 of them, and how many blocks that is.
    std::printf("%-8s | loop done med/max (blocks) by blocks of the product on the SM: 1 | 2 | 3 | 4\n", "product");
    for (int p = 0; p < np; ++p) {
        double med[5] = {0}, mx[5] = {0}, cnt[5] = {0};
        int layers[5] = {0};
        for (int l = l0; l < l1; ++l) {
            const auto &b = by[p][size_t(l)];
            const uint64_t r = release(p, l);
            std::vector<int> per_sm(1024, 0);
            for (const auto &s : b) ++per_sm[s.sm % 1024];
            std::vector<double> m[5];
            for (const auto &s : b) m[std::min(4, per_sm[s.sm % 1024])].push_back((double(s.met) - double(r)) * 1e-3);
            for (int c = 1; c <= 4; ++c) {
                if (m[c].empty()) continue;
                med[c] += q(m[c], 0.5);
                mx[c] += q(m[c], 1);
                cnt[c] += double(m[c].size());
                ++layers[c];
            }
        }
        std::printf("%-8s |", prods[p].name);
        for (int c = 1; c <= 4; ++c) {
            if (layers[c])
                std::printf(" %6.2f %6.2f (%4.0f) |", med[c] / layers[c], mx[c] / layers[c], cnt[c] / layers[c]);
            else
                std::printf(" %20s |", "-");
        }
        std::printf("\n");
    }
    // Is a late block late because of where it runs or of what it reads? Each block's loop end minus
    // its layer's median, averaged per SM and per block index over the even and over the odd layers:
    // the correlation of the two halves (near 1: the same SMs / blocks are late in every layer, near
    // 0: noise), and the spread of the per-SM means over all layers.
    std::printf("%-8s | loop end - layer median, even vs odd layers: r by SM, r by block | SM means p5 / p95 µs\n",
                "product");
    for (int p = 0; p < np; ++p) {
        const size_t nb = by[p][0].size();
        std::vector<double> sm_sum[2], sm_n[2], bl_sum[2], bl_n[2];
        for (int h = 0; h < 2; ++h) {  // per SM (as per_sm above) and per block index (< nb)
            sm_sum[h].assign(1024, 0.0), sm_n[h].assign(1024, 0.0);
            bl_sum[h].assign(nb, 0.0), bl_n[h].assign(nb, 0.0);
        }
        for (int l = l0; l < l1; ++l) {
            const auto &b = by[p][size_t(l)];
            std::vector<double> m;
            for (const auto &s : b) m.push_back(double(s.met) * 1e-3);
            const double med = q(m, 0.5);
            for (const auto &s : b) {
                const double d = double(s.met) * 1e-3 - med;
                sm_sum[l & 1][s.sm % 1024] += d, sm_n[l & 1][s.sm % 1024] += 1;
                if (s.block < nb) bl_sum[l & 1][s.block] += d, bl_n[l & 1][s.block] += 1;
            }
        }
        auto corr = [](const std::vector<double> *sum, const std::vector<double> *n) {
            std::vector<double> a, b;
            for (size_t i = 0; i < sum[0].size(); ++i)
                if (n[0][i] > 0 && n[1][i] > 0) a.push_back(sum[0][i] / n[0][i]), b.push_back(sum[1][i] / n[1][i]);
            if (a.size() < 3) return 0.0;
            double ma = 0, mb = 0;
            for (size_t i = 0; i < a.size(); ++i) ma += a[i] / a.size(), mb += b[i] / b.size();
            double sab = 0, saa = 0, sbb = 0;
            for (size_t i = 0; i < a.size(); ++i)
                sab += (a[i] - ma) * (b[i] - mb), saa += (a[i] - ma) * (a[i] - ma), sbb += (b[i] - mb) * (b[i] - mb);
            return saa > 0 && sbb > 0 ? sab / std::sqrt(saa * sbb) : 0.0;
        };
        std::vector<double> sm_mean;
        for (size_t i = 0; i < 1024; ++i)
            if (sm_n[0][i] + sm_n[1][i] > 0)
                sm_mean.push_back((sm_sum[0][i] + sm_sum[1][i]) / (sm_n[0][i] + sm_n[1][i]));
        std::printf("%-8s | %6.2f %6.2f | %6.2f %6.2f\n", prods[p].name, corr(sm_sum, sm_n), corr(bl_sum, bl_n),
                    sm_mean.empty() ? 0.0 : q(sm_mean, 0.05), sm_mean.empty() ? 0.0 : q(sm_mean, 0.95));
    }
}

Result run(bool q4, bool small) {
    const cuda::SyntheticModelSpec spec = llama7b(q4, small);
    const ModelConfig &c = spec.cfg;
    Result r;
    auto backend = cuda::make_synthetic_backend(spec, 0);
    r.weights_gib = double(backend->weight_bytes()) / (1 << 30);
    const int V = c.vocab_size;
    {
        auto ctx = backend->create_context(1024, 1, 512);
        r.decode1 = decode_rate(*ctx, 1, 512, 131, V, 512);
    }
    {
        auto ctx = backend->create_context(1024, 16, 512);
        r.decode16 = decode_rate(*ctx, 16, 512, 67, V, 512);
    }
    {
        auto ctx = backend->create_context(2048, 1, 2048);
        std::vector<EvalToken> b;
        std::vector<int8_t> want(2048, 0);
        want[2047] = 1;
        std::vector<float> logits(V);
        for (int p = 0; p < 2048; ++p) b.push_back({(p * 7 + 1) % V, p, 0});
        ctx->eval(b.data(), 2048, want.data(), logits.data());  // warm-up
        double best = 1e30;
        for (int rep = 0; rep < 3; ++rep) {
            const double t0 = now_s();
            ctx->eval(b.data(), 2048, want.data(), logits.data());
            best = std::min(best, now_s() - t0);
        }
        r.prefill = 2048 / best;
    }
    {
        setenv("GPTQ_CUDA_GRAPHS", "0", 1);
        auto ctx = backend->create_context(1024, 1, 512);
        r.decode1_nograph = decode_rate(*ctx, 1, 512, 67, V, 512);
        unsetenv("GPTQ_CUDA_GRAPHS");
    }
    {
        cuda::set_pdl_enabled(false);
        auto ctx = backend->create_context(1024, 1, 512);
        r.decode1_nopdl = decode_rate(*ctx, 1, 512, 67, V, 512);
        cuda::set_pdl_enabled(true);
    }
    size_t free_b = 0, total_b = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    r.peak_gib = double(cuda::device_bytes_peak()) / (1 << 30);
    r.used_gib = double(total_b - free_b) / (1 << 30);
    return r;
}

} // namespace

int main(int argc, char **argv) try {
    bool small = false, q4_only = false, vars = false, tr = false, samp = false, stm = false;
    std::string sweep_arg;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--sweep") && i + 1 < argc) sweep_arg = argv[++i];
        if (!std::strcmp(argv[i], "--small")) small = true;
        if (!std::strcmp(argv[i], "--q4-only")) q4_only = true;
        if (!std::strcmp(argv[i], "--variants")) vars = true;
        if (!std::strcmp(argv[i], "--trace")) tr = true;
        if (!std::strcmp(argv[i], "--sampling")) samp = true;
        if (!std::strcmp(argv[i], "--stamps")) stm = true;
    }
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    std::printf("device: %s; model: Llama-2-7B shape%s (hidden 4096, 32 heads, intermediate 11008, vocab 32000), "
                "random weights\n",
                prop.name, small ? " with 4 layers" : ", 32 layers");
    if (vars) {
        variants(small);
        return 0;
    }
    if (tr) {
        trace(small);
        return 0;
    }
    if (samp) {
        sampling(small);
        return 0;
    }
    if (stm) {
        stamps(small);
        return 0;
    }
    if (!sweep_arg.empty()) {
        sweep(small, sweep_arg);
        return 0;
    }
    std::printf("%-6s | %14s %14s %16s %16s %16s | %9s %9s\n", "weights", "decode b=1", "decode b=16", "prefill 2048",
                "b=1 no graph", "b=1 no PDL", "weights", "peak");
    for (int q = 1; q >= (q4_only ? 1 : 0); --q) {
        Result r = run(q == 1, small);
        std::printf("%-7s | %10.1f t/s %10.1f t/s %12.0f t/s %12.1f t/s %12.1f t/s | %5.2f GiB %5.2f GiB (device "
                    "used %.2f GiB)\n",
                    q ? "q4 g128" : "fp16", r.decode1, r.decode16, r.prefill, r.decode1_nograph, r.decode1_nopdl,
                    r.weights_gib, r.peak_gib, r.used_gib);
        std::fflush(stdout);
    }
    return 0;
} catch (const std::exception &e) {
    std::fprintf(stderr, "bench-e2e: %s\n", e.what());
    return 1;
}
