// gptq-cuda.cu — the CUDA backend: weights in device memory, one stream per context, the decode
// step replayed as a CUDA graph, dispatch to the kernels of src/cuda/.
//
// Layout of one evaluation (n tokens, fp32 residual stream x, fp16 everywhere else):
//
//   x = embed(tokens)
//   per layer:  xn = rmsnorm(x) [gathered by the act-order permutation when the layer has one]
//               qkv = xn · Wqkv (+bias)            q, k, v fused into one product
//               rope(q, k); k, v -> cache[layer][seq][kv_head][pos]
//               att = attention(q, cache)          split kernel (few tokens) or cuBLAS (long runs)
//               x += att · Wo                      the product accumulates into x directly
//               xn = rmsnorm(x); gu = xn · Wgate|up; act = silu(gate) * up
//               x += act · Wdown
//   logits (wanted rows only) = rmsnorm(x[rows]) · Wheadᵀ, fp32, copied to the host
//
// Weights (gpu_linear.cuh): 4-bit GPTQ layers repacked once into the tiled layout (q4_layout.cuh) —
// decode through the fused kernel, prefill through the wgmma kernel on Hopper (q4_wgmma.cuh) or
// dequantize + cuBLAS elsewhere; every other layer (fp16/bf16/fp32 checkpoints, 2/3/8-bit, group
// sizes the kernels cannot take) as fp16 through cuBLAS.
// Every CUDA / cuBLAS call is checked and turns into gptq::Error; nothing synchronizes the host
// inside a forward pass.
#include "src/backend.h"
#include "src/cuda/attention.cuh"
#include "src/cuda/attention_decode.cuh"
#include "src/cuda/cuda_backend.cuh"
#include "src/cuda/cuda_check.cuh"
#include "src/cuda/cuda_handles.cuh"
#include "src/cuda/elementwise.cuh"
#include "src/cuda/gpu_linear.cuh"
#include "src/cuda/launch.cuh"
#include "src/cuda/q4_gemm.cuh"
#include "src/cuda/q4_wgmma.cuh"
#include "src/cuda/random_fill.cuh"
#include "src/cuda/top_candidates.cuh"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <tuple>
#include <vector>

namespace gptq {

int cuda_device_count() {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return n;
}

std::string cuda_device_unsupported(int device) {
    const int count = cuda_device_count();
    if (device < 0 || device >= count)
        return strprintf("CUDA device %d not available (%d device%s found)", device, count, count == 1 ? "" : "s");
    int major = 0, minor = 0;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess) {
        cudaGetLastError();
        return strprintf("CUDA device %d: its compute capability cannot be read", device);
    }
    const std::string why = compute_capability_unsupported(major, minor);
    if (why.empty()) return why;
    cudaDeviceProp prop;  // its name, for the message only
    const bool named = cudaGetDeviceProperties(&prop, device) == cudaSuccess;
    if (!named) cudaGetLastError();
    return strprintf("CUDA device %d (%s) has %s", device, named ? prop.name : "unnamed", why.c_str());
}

namespace cuda {

void require_cuda_device(int device, const char *who) {
    const std::string why = cuda_device_unsupported(device);
    if (why.empty()) return;
    const bool present = device >= 0 && device < cuda_device_count();
    fail(present ? GPTQ_ERR_UNSUPPORTED : GPTQ_ERR_BACKEND, "%s: %s", who, why.c_str());
}

namespace {

int round8(int v) { return (v + 7) / 8 * 8; }

// ------------------------------------------------------------------ weights on the device

__global__ void fill_f32_kernel(float *p, size_t n, float v) {
    for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) p[i] = v;
}

struct GpuLayer {
    DeviceBuffer attn_norm, mlp_norm;  // fp32 [H]
    GpuLinear qkv, o, gate_up, down;
};

// ------------------------------------------------------------------ the backend

class CudaBackend final : public Backend {
public:
    CudaBackend(const Model &m, int device) : cfg_(m.cfg), device_(device) {
        init_device();
        const ModelConfig &c = cfg_;
        std::vector<uint16_t> e;
        append_f16(*m.embed, e);
        embed_ = upload(e);
        final_norm_ = upload(tensor_f32(*m.final_norm));
        layers_.resize(size_t(c.n_layers));
        for (int i = 0; i < c.n_layers; ++i) {
            const LayerWeights &w = m.layers[size_t(i)];
            GpuLayer &L = layers_[size_t(i)];
            L.attn_norm = upload(tensor_f32(*w.attn_norm));
            L.mlp_norm = upload(tensor_f32(*w.mlp_norm));
            L.qkv = build_linear({&w.q, &w.k, &w.v});
            L.o = build_linear({&w.o});
            L.gate_up = build_linear({&w.gate, &w.up});
            L.down = build_linear({&w.down});
        }
        if (m.lm_head.weight == m.embed) {
            tie_head();
        } else {
            lm_head_ = build_linear({&m.lm_head});
        }
        finish();
    }

    CudaBackend(const SyntheticModelSpec &s, int device) : cfg_(s.cfg), device_(device) {
        init_device();
        const ModelConfig &c = cfg_;
        const int H = c.hidden_size, I = c.intermediate_size, D = c.head_dim;
        const int QD = c.n_heads * D, KVD = c.n_kv_heads * D;
        embed_.alloc(size_t(c.vocab_size) * H * 2);
        fill_random_f16(embed_.as<__half>(), size_t(c.vocab_size) * H, s.seed, -1.0f, 1.0f);
        auto ones = [&](DeviceBuffer &b) {
            b.alloc(size_t(H) * 4);
            fill_f32_kernel<<<8, 256>>>(b.as<float>(), size_t(H), 1.0f);
            CUDA_CHECK_LAUNCH();
        };
        ones(final_norm_);
        layers_.resize(size_t(c.n_layers));
        uint64_t seed = s.seed * 1000;
        for (GpuLayer &L : layers_) {
            ones(L.attn_norm);
            ones(L.mlp_norm);
            L.qkv = synthetic_linear(H, QD + 2 * KVD, s.q4, s.group_size, ++seed);
            L.o = synthetic_linear(QD, H, s.q4, s.group_size, ++seed);
            L.gate_up = synthetic_linear(H, 2 * I, s.q4, s.group_size, ++seed);
            L.down = synthetic_linear(I, H, s.q4, s.group_size, ++seed);
        }
        if (c.tie_word_embeddings) tie_head();
        else lm_head_ = synthetic_linear(H, c.vocab_size, false, 0, ++seed);  // heads stay fp16, as in GPTQ files
        CUDA_CHECK(cudaDeviceSynchronize());
        finish();
    }

    std::unique_ptr<BackendContext> create_context(int n_ctx, int n_seq, int n_batch) override;
    int64_t weight_bytes() const override { return int64_t(weight_bytes_); }
    const char *name() const override { return "cuda"; }

    ModelConfig cfg_;
    int device_;
    int sm_count_ = 1;
    DeviceBuffer embed_, final_norm_, inv_freq_;
    std::vector<GpuLayer> layers_;
    GpuLinear lm_head_;
    size_t weight_bytes_ = 0;

private:
    void init_device() {
        require_cuda_device(device_, "CUDA backend");
        CUDA_CHECK(cudaSetDevice(device_));
        CUDA_CHECK(cudaDeviceGetAttribute(&sm_count_, cudaDevAttrMultiProcessorCount, device_));
        const ModelConfig &c = cfg_;
        if (c.head_dim % 2 || c.n_heads % c.n_kv_heads)
            fail(GPTQ_ERR_UNSUPPORTED, "CUDA backend: head_dim %d / heads %d / kv heads %d not supported", c.head_dim,
                 c.n_heads, c.n_kv_heads);
    }
    void tie_head() {
        lm_head_ = GpuLinear();
        lm_head_.K = cfg_.hidden_size;
        lm_head_.N = cfg_.vocab_size;
        lm_head_.w16 = embed_.as<const __half>();
    }
    void finish() {
        std::vector<float> inv(size_t(cfg_.head_dim / 2));
        for (int i = 0; i < cfg_.head_dim / 2; ++i)  // as the CPU backend (and transformers) compute it
            inv[size_t(i)] = 1.0f / float(std::pow(cfg_.rope_theta, double(2 * i) / cfg_.head_dim));
        inv_freq_ = upload(inv);
        weight_bytes_ = embed_.bytes() + final_norm_.bytes() + lm_head_.bytes();
        for (const GpuLayer &L : layers_)
            weight_bytes_ += L.attn_norm.bytes() + L.mlp_norm.bytes() + L.qkv.bytes() + L.o.bytes() +
                             L.gate_up.bytes() + L.down.bytes();
    }
};

// ------------------------------------------------------------------ one context: cache, scratch, graphs

// The decode fusions' bits (kFuse*) and the stages GPTQ_CUDA_SKIP leaves out (kSkip*): cuda_backend.cuh.
constexpr int kFuseMaxRows = 4;  // batches up to this size take the chunk merge / deferred fusions
                                 // (device run 2, b=16: both cost ~3% there)

constexpr int kGraphMaxTokens = 16;   // batches up to this size run as a replayed CUDA graph
constexpr int kSplitMaxTokens = 64;   // tokens per attention_split call (bounds its scratch)
constexpr int kGemmMinRun = 16;       // runs of one sequence this long use cuBLAS attention
constexpr size_t kGemmScratchBudget = size_t(256) << 20;
constexpr int kGemmMaxRows = 256;     // rows per cuBLAS attention call: later rows see longer L, so
                                      // pieces skip most of the causal upper triangle

// Chunks attention_split covers for tokens up to position max_pos: the n_chunks of an eager call
// (the ranges' stride in its scratch, which o_proj's merge prologue reads too).
inline int split_chunks(int max_pos) { return max_pos / kAttnChunk + 1; }

class CudaContext final : public BackendContext {
public:
    CudaContext(const CudaBackend &b, int n_ctx, int n_seq, int n_batch)
        : b_(b), c_(b.cfg_), n_ctx_(n_ctx), n_seq_(n_seq), nb_(n_batch) {
        CUDA_CHECK(cudaSetDevice(b_.device_));
        const int H = c_.hidden_size, I = c_.intermediate_size, D = c_.head_dim;
        const int QD = c_.n_heads * D, KVD = c_.n_kv_heads * D, V = c_.vocab_size;
        ldn_ = round8(std::max({H, I, QD}));
        ldqkv_ = round8(QD + 2 * KVD);
        ldatt_ = round8(QD);
        const size_t B = size_t(nb_);
        ids_.alloc(B * 4 * 4);
        x32_.alloc(B * H * 4);
        xn_.alloc(B * ldn_ * 2);
        xg_.alloc(B * ldn_ * 2);
        qkv_.alloc(B * ldqkv_ * 2);
        att_.alloc(B * ldatt_ * 2);
        gu_.alloc(B * 2 * I * 2);
        act_.alloc(B * I * 2);
        logits_.alloc(B * V * 4);
        const size_t per_layer = size_t(n_seq) * c_.n_kv_heads * n_ctx * D;
        cache_.alloc(per_layer * 2 * 2 * c_.n_layers);
        for (int l = 0; l < c_.n_layers; ++l) {
            KVLayer kv;
            kv.k = cache_.as<__half>() + per_layer * 2 * l;
            kv.v = kv.k + per_layer;
            kv.n_seq = n_seq; kv.n_kv = c_.n_kv_heads; kv.n_ctx = n_ctx; kv.D = D;
            kv_.push_back(kv);
        }
        CUDA_CHECK(cudaMemsetAsync(cache_.as<void>(), 0, cache_.bytes(), 0));

        // Scratch of the 4-bit kernels, sized for the largest layer and batch they will see.
        size_t partial = 0, sums = 0, deq = 0, kx = 0;
        int strips = 1;
        const Q4Limits lim = q4_limits(b_.sm_count_);
        auto visit = [&](const GpuLinear &L) {
            if (!L.q4) return;
            const Q4ScratchNeed need = q4_scratch_need(L.q, nb_, lim);
            partial = std::max(partial, need.partial_floats);
            sums = std::max(sums, need.sums_floats);
            strips = std::max(strips, need.strips);
            deq = std::max(deq, L.dequant_elems());
            kx = std::max(kx, size_t(q4_wgmma_kx(L.q)));
        };
        for (const GpuLayer &L : b_.layers_)
            for (const GpuLinear *l : {&L.qkv, &L.o, &L.gate_up, &L.down}) visit(*l);
        visit(b_.lm_head_);
        q4_partial_.alloc(partial * 4);
        q4_sums_.alloc(std::max<size_t>(sums, 1) * 4);
        CUDA_CHECK(cudaMemsetAsync(q4_sums_.as<void>(), 0, q4_sums_.bytes(), 0));
        // Deferred shares of q|k|v (one token) and gate|up (up to kFuseMaxRows rows).
        size_t qkv_part = 1, gu_part = 1;
        for (const GpuLayer &L : b_.layers_) {
            if (L.qkv.q4) qkv_part = std::max(qkv_part, q4_deferred_need(L.qkv.q, 1, lim));
            if (L.gate_up.q4) gu_part = std::max(gu_part, q4_deferred_need(L.gate_up.q, std::min(nb_, kFuseMaxRows), lim));
        }
        qkv_part_.alloc(qkv_part * 4);
        gu_part_.alloc(gu_part * 4);
        q4_counters_.alloc(size_t(strips) * 4);
        CUDA_CHECK(cudaMemsetAsync(q4_counters_.as<void>(), 0, q4_counters_.bytes(), 0));
        ws_.fused = {q4_partial_.as<float>(), partial, q4_counters_.as<unsigned>(), strips, q4_sums_.as<float>(), sums};
        ws_.sm_count = b_.sm_count_;
        if (kx && nb_ >= ws_.wgmma_min_m && q4_wgmma_supported()) {
            // Hopper: batches of wgmma_min_m .. wgmma_max_m rows on the wgmma kernel, which needs
            // the activations permuted (rows of the widest K), not a dequantized copy of a weight.
            const size_t elems = q4_wgmma_xfrag_elems(std::min(nb_, ws_.wgmma_max_m), int(kx));
            q4_xfrag_.alloc(elems * 2);
            ws_.wgmma = true;
            ws_.xfrag = q4_xfrag_.as<__half>();
            ws_.xfrag_elems = elems;
            // Stream-K plans into fp16 hand over the sums of cut tiles: a slot and a flag per SM.
            q4_sk_partial_.alloc(q4_wgmma_sk_floats(b_.sm_count_) * 4);
            q4_sk_flags_.alloc(size_t(b_.sm_count_) * 4);
            CUDA_CHECK(cudaMemsetAsync(q4_sk_flags_.as<void>(), 0, q4_sk_flags_.bytes(), 0));
            ws_.wgmma_sk = {q4_sk_partial_.as<float>(), q4_wgmma_sk_floats(b_.sm_count_), q4_sk_flags_.as<unsigned>(),
                            b_.sm_count_};
        }
        const int deq_from = ws_.wgmma ? ws_.wgmma_max_m + 1 : ws_.large_m;  // rows that take dequantize + cuBLAS
        if (nb_ >= deq_from && deq) {
            q4_deq_.alloc(deq * 2);
            ws_.dequant = q4_deq_.as<__half>();
            ws_.dequant_elems = deq;
        } else {
            ws_.large_m = 1 << 30;  // never needed: batches stay on the fused (or wgmma) kernel
        }

        // Attention scratch.
        chunks_max_ = (n_ctx + kAttnChunk - 1) / kAttnChunk;
        split_scratch_.alloc(attn_split_scratch_floats(std::min(nb_, kSplitMaxTokens), c_.n_heads, D, chunks_max_) * 4);
        attn_counters_.alloc(attn_split_counters(std::min(nb_, kSplitMaxTokens), c_.n_heads) * 4);
        attn_used_.alloc(size_t(nb_) * 4);
        CUDA_CHECK(cudaMemsetAsync(attn_used_.as<void>(), 0, attn_used_.bytes(), 0));
        CUDA_CHECK(cudaMemsetAsync(attn_counters_.as<void>(), 0, attn_counters_.bytes(), 0));
        if (nb_ >= kGemmMinRun) {
            size_t want = attention_gemm_scratch_floats(nb_, c_.n_heads, n_ctx) * 4;
            gemm_scratch_bytes_ = std::min(want, std::max(kGemmScratchBudget,
                                                          attention_gemm_scratch_floats(kGemmMinRun, c_.n_heads, n_ctx) * 4));
            gemm_scratch_.alloc(gemm_scratch_bytes_);
        }

        owned_stream_ = make_stream(cudaStreamNonBlocking);
        stream_ = owned_stream_.get();
        cublas_ws_.alloc(size_t(32) << 20);  // cuBLAS's own default on Hopper; graph capture reuses it
        owned_cublas_ = make_cublas(stream_, cublas_ws_.as<void>(), cublas_ws_.bytes());
        cublas_ = owned_cublas_.get();
        ws_.cublas = cublas_;
        ids_h_.reserve(B * 4 * 4);  // logits_h_ only on first use: a Context's evals never need it
        const char *e = std::getenv("GPTQ_CUDA_GRAPHS");
        use_graphs_ = !(e && std::strcmp(e, "0") == 0);
        fuse_ = env_int("GPTQ_CUDA_FUSE", kFuseAll);
        skip_ = env_int("GPTQ_CUDA_SKIP", 0);
        // Candidates ranked on the device (generate's default sampler: H200, 7B shape, b = 16
        // 3306 -> 4456 tok/s at 32000 ids, 1967 -> 4170 at 128256; bench-e2e --sampling).
        // GPTQ_CUDA_RANK=0 sends the logits to the host instead.
        rank_on_device_ = env_int("GPTQ_CUDA_RANK", 1) != 0;
        CUDA_CHECK(cudaDeviceSynchronize());
    }

    ~CudaContext() override {
        cudaSetDevice(b_.device_);
        if (stream_) cudaStreamSynchronize(stream_);
        for (auto &kv : graphs_) cudaGraphExecDestroy(kv.second);
    }

    void reset(int) override {}  // cached positions are simply overwritten by later evals

    // Logits land where the caller reads them when that is pinned memory of logits_storage (the
    // Context's rows); elsewhere through logits_h_, reserved here on first use, and a host copy;
    // with no page-locked memory to be had, straight into the caller's pageable memory (correct,
    // only slower).
    void eval(const EvalToken *toks, int n, const int8_t *want, float *logits_out) override {
        const int m = enqueue(toks, n, want);
        const size_t bytes = size_t(m) * c_.vocab_size * 4;
        const uintptr_t at = reinterpret_cast<uintptr_t>(logits_out);
        const uintptr_t base = reinterpret_cast<uintptr_t>(rows_h_.as<void>());
        bool direct = base && at >= base && at + bytes <= base + rows_h_.bytes();
        if (m > 0 && !direct) {
            try {
                logits_h_.reserve(bytes);
            } catch (const Error &) {
                direct = true;
            }
        }
        void *dst = direct ? static_cast<void *>(logits_out) : logits_h_.as<void>();
        if (m > 0) CUDA_CHECK(cudaMemcpyAsync(dst, logits_.as<void>(), bytes, cudaMemcpyDeviceToHost, stream_));
        CUDA_CHECK(cudaStreamSynchronize(stream_));
        if (m > 0 && !direct) std::memcpy(logits_out, logits_h_.as<const float>(), bytes);
    }

    // Null where there is nothing to hold or no page-locked memory to be had (the Context's own
    // pageable rows then, through the staging buffer as before).
    float *logits_storage(size_t floats) override {
        if (floats == 0) return nullptr;
        try {
            rows_h_.reserve(floats * 4);
        } catch (const Error &) {
            return nullptr;
        }
        return rows_h_.as<float>();
    }

    int max_candidates() const override { return rank_on_device_ ? kTopCandidatesMax : 0; }

    // The forward pass, then the kept rows' candidates ranked on the device (top_candidates.cuh):
    // k (key, id) pairs and a count per row come back instead of the vocabulary's logits. Where
    // the batch runs as a decode graph the ranking is part of it (H100, 7B shape, 32000 ids,
    // bench-e2e --sampling: greedy b = 1 562.7 -> 568.4 tok/s with k = 1's minimum, the default
    // sampler 560.0 -> 563.7).
    void eval_candidates(const EvalToken *toks, int n, const int8_t *want, const CandidateQuery &q, float *values,
                         int32_t *ids, int32_t *usable) override {
        if (q.k < 1 || q.k > max_candidates())
            fail(GPTQ_ERR_INVALID_ARG, "CUDA eval: %d candidates per row (1 to %d)", q.k, max_candidates());
        // The rows' penalised ids (offsets rebased to 0, then the ids) go up before the forward
        // pass, so that the ranking starts as soon as the logits are there.
        int m = 0;
        for (int i = 0; i < n; ++i) m += want[i] != 0;
        const size_t out_words = size_t(m) * size_t(q.k) * 2 + size_t(m);  // keys, ids, usable counts
        const Ranking rank{q.k, q.penalty, m > 0 ? top_candidates_scratch_words(m, c_.vocab_size, q.k) : 0};
        if (m > 0) {
            const int32_t base = q.offsets[0], n_pen = q.offsets[m] - base;
            const size_t words = size_t(m) + 1 + size_t(n_pen);
            query_h_.reserve(words * 4);
            int32_t *h = query_h_.as<int32_t>();
            for (int r = 0; r <= m; ++r) h[r] = q.offsets[r] - base;
            if (n_pen > 0) std::memcpy(h + m + 1, q.penalised + base, size_t(n_pen) * 4);
            // A decode graph that ranks holds these buffers' addresses: they grow by doubling (a
            // history's penalised ids grow a few at a step) and its graphs go when one moves.
            const bool moved = grow(query_, words * 4) | grow(cand_scratch_, rank.scratch_words * 4) |
                               grow(cand_, out_words * 4);
            if (moved) drop_ranking_graphs();
            cand_h_.reserve(out_words * 4);
            CUDA_CHECK(cudaMemcpyAsync(query_.as<void>(), h, words * 4, cudaMemcpyHostToDevice, stream_));
        }
        if (enqueue(toks, n, want, m > 0 ? &rank : nullptr) != m)
            fail(GPTQ_ERR_INTERNAL, "CUDA eval: kept rows miscounted");
        if (m > 0)
            CUDA_CHECK(cudaMemcpyAsync(cand_h_.as<void>(), cand_.as<void>(), out_words * 4, cudaMemcpyDeviceToHost,
                                       stream_));
        CUDA_CHECK(cudaStreamSynchronize(stream_));
        if (m == 0) return;
        const uint32_t *keys_h = cand_h_.as<const uint32_t>();
        const int32_t *ids_h = reinterpret_cast<const int32_t *>(keys_h + size_t(m) * q.k);
        for (size_t i = 0; i < size_t(m) * size_t(q.k); ++i) {
            ids[i] = ids_h[i];
            values[i] = ids_h[i] < 0 ? -INFINITY : candidate_value(keys_h[i]);
        }
        std::memcpy(usable, ids_h + size_t(m) * q.k, size_t(m) * 4);
    }

private:
    // The kept rows' candidates ranked after the forward pass (eval_candidates): k per row,
    // the repetition penalty, top_candidates' scratch words.
    struct Ranking {
        int k;
        float penalty;
        size_t scratch_words;
    };

    // Ranks the m rows of logits_ into cand_ (keys, then ids, then usable counts).
    void rank_rows(const Ranking &r, int m) {
        uint32_t *keys = cand_.as<uint32_t>();
        int32_t *ids_d = reinterpret_cast<int32_t *>(keys + size_t(m) * r.k), *usable_d = ids_d + size_t(m) * r.k;
        const int32_t *offsets_d = query_.as<int32_t>();
        top_candidates(logits_.as<float>(), m, c_.vocab_size, size_t(c_.vocab_size), offsets_d + m + 1, offsets_d,
                       r.penalty, r.k, keys, ids_d, usable_d, cand_scratch_.as<uint32_t>(), r.scratch_words, stream_);
    }

    // At least `bytes`, doubling; whether the buffer moved.
    static bool grow(DeviceBuffer &b, size_t bytes) {
        if (bytes <= b.bytes()) return false;
        b.reserve(std::max(bytes, 2 * b.bytes()));
        return true;
    }

    // No launch of them is in flight: every eval ends with the stream synchronized.
    void drop_ranking_graphs() {
        for (auto it = graphs_.begin(); it != graphs_.end();) {
            if (std::get<3>(it->first) == 0) {
                ++it;
                continue;
            }
            cudaGraphExecDestroy(it->second);
            it = graphs_.erase(it);
        }
    }

    // Validates and uploads the batch, enqueues its forward pass and, with `rank`, the ranking of
    // its kept rows (inside the decode graph where the batch has one); returns the rows of logits
    // it leaves in logits_ (the kept tokens').
    int enqueue(const EvalToken *toks, int n, const int8_t *want, const Ranking *rank = nullptr) {
        if (n <= 0) return 0;
        if (n > nb_) fail(GPTQ_ERR_INVALID_ARG, "CUDA eval: %d tokens exceed the batch size %d", n, nb_);
        CUDA_CHECK(cudaSetDevice(b_.device_));
        // The batch's four arrays packed at a stride of n, so a step uploads 16 bytes a token, not
        // 16 a batch slot (8 KB a one-token step at a 512-token batch).
        int32_t *tok = ids_h_.as<int32_t>(), *pos = tok + n, *seq = tok + 2 * n, *rows = tok + 3 * n;
        int m = 0, maxpos = 0;
        for (int i = 0; i < n; ++i) {
            const EvalToken &t = toks[i];
            if (t.token < 0 || t.token >= c_.vocab_size || t.pos < 0 || t.pos >= n_ctx_ || t.seq < 0 || t.seq >= n_seq_)
                fail(GPTQ_ERR_INVALID_ARG, "CUDA eval: token %d (id %d, pos %d, seq %d) out of range", i, t.token,
                     t.pos, t.seq);
            tok[i] = t.token;
            pos[i] = t.pos;
            seq[i] = t.seq;
            maxpos = std::max(maxpos, t.pos);
            if (want[i]) rows[m++] = i;
        }
        CUDA_CHECK(
            cudaMemcpyAsync(ids_.as<void>(), ids_h_.as<void>(), size_t(n) * 4 * 4, cudaMemcpyHostToDevice, stream_));

        if (use_graphs_ && n <= kGraphMaxTokens) {
            int chunks = 1;
            while (chunks * kAttnChunk < maxpos + 1) chunks *= 2;
            chunks = std::min(chunks, chunks_max_);
            uint32_t penalty_bits = 0;
            if (rank) std::memcpy(&penalty_bits, &rank->penalty, 4);
            auto key = std::make_tuple(n, m, chunks, rank ? rank->k : 0, penalty_bits);
            auto it = graphs_.find(key);
            if (it == graphs_.end()) it = graphs_.emplace(key, capture(n, m, chunks, rank)).first;
            CUDA_CHECK(cudaGraphLaunch(it->second, stream_));
        } else {
            std::vector<Run> runs;
            for (int i = 0; i < n;) {
                int j = i;
                while (j < n && seq[j] == seq[i]) ++j;
                runs.push_back({i, j - i, seq[i]});
                i = j;
            }
            forward(n, m, 0, &runs, pos);
            if (rank && m > 0) rank_rows(*rank, m);
        }
        return m;
    }

    struct Run {
        int start, len, seq;
    };

    cudaGraphExec_t capture(int n, int m, int chunks, const Ranking *rank) {
        CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
        try {
            forward(n, m, chunks, nullptr, nullptr);
            if (rank && m > 0) rank_rows(*rank, m);
        } catch (...) {
            cudaGraph_t g = nullptr;
            cudaStreamEndCapture(stream_, &g);
            if (g) cudaGraphDestroy(g);
            cudaGetLastError();
            throw;
        }
        cudaGraph_t graph = nullptr;
        CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
        cudaGraphExec_t exec = nullptr;
        cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
        cudaGraphDestroy(graph);
        if (e != cudaSuccess) cuda_fail(e, "cudaGraphInstantiate", __FILE__, __LINE__);
        return exec;
    }

    // y = x · Wᵀ into out (fp16 or, accumulating, fp32); x gathered by W's permutation first.
    void linear(const GpuLinear &L, const __half *x, int M, int ldx, Q4Out out) {
        if (skip_ & kSkipLinear) return;
        out.bias = L.bias;
        if (!L.q4) {
            dense_matmul(cublas_, x, M, ldx, L.w16, L.K, L.N, L.K, out, stream_);
            return;
        }
        if (L.q.perm) {
            gather_columns(x, M, ldx, L.q.perm, L.K, xg_.as<__half>(), stream_);
            x = xg_.as<const __half>();
            ldx = L.K;
        }
        q4_matmul(x, M, ldx, L.q, out, ws_, stream_);
    }

    // chunks > 0: the fixed-shape decode forward (graph capture): split attention for all tokens.
    // chunks == 0: runs (host copy of positions in pos_h) choose the attention path per run.
    void forward(int n, int m, int chunks, const std::vector<Run> *runs, const int32_t *pos_h) {
        const int H = c_.hidden_size, I = c_.intermediate_size, D = c_.head_dim, Hq = c_.n_heads;
        const int *tok = ids_.as<int>(), *pos = tok + n, *seq = tok + 2 * n, *rows = tok + 3 * n;
        float *x = x32_.as<float>();
        __half *xn = xn_.as<__half>(), *qkv = qkv_.as<__half>(), *att = att_.as<__half>();
        __half *gu = gu_.as<__half>(), *act = act_.as<__half>();
        const float scale = 1.0f / std::sqrt(float(D));
        auto o16 = [](__half *p, int ld) { Q4Out o; o.out16 = p; o.ldo = ld; return o; };
        auto o32 = [](float *p, int ld) { Q4Out o; o.out32 = p; o.ldo = ld; return o; };

        embed_lookup(tok, n, b_.embed_.as<const __half>(), H, x, stream_);
        // One-token batches rotate and store the new key inside the attention kernel.
        const bool rope_in_attn = (fuse_ & kFuseRope) && n == 1;
        const bool few = n <= kFuseMaxRows;
        for (int l = 0; l < c_.n_layers; ++l) {
            const GpuLayer &L = b_.layers_[size_t(l)];
            // q|k|v: deferred shares straight into the attention kernel (one token), or fp16.
            const bool defer_qkv = (fuse_ & kFuseDefer) && rope_in_attn && L.qkv.q4 && !L.qkv.bias &&
                                   !(skip_ & kSkipAttention);
            Q4Out qo = o16(qkv, ldqkv_);
            if (defer_qkv) {
                qo = Q4Out();
                qo.defer = qkv_part_.as<float>();
                qo.defer_floats = qkv_part_.bytes() / sizeof(float);
            }
            // rmsnorm gathers the act-order permutation itself when the fused product has one.
            const int qkv_splits = norm_linear(L.qkv, x, n, L.attn_norm.as<const float>(), qo);
            // One token: the attention kernel leaves its ranges unmerged and o_proj's activation
            // staging merges them (no fence, counter and merge pass at the attention kernel's end).
            const bool merge_in_o = (fuse_ & kFuseAttnMerge) && n == 1 && L.o.q4 && !L.o.q.perm &&
                                    L.o.K == Hq * D && D % 8 == 0 && attention_decode_available(D) &&
                                    q4_takes_prologue(1, ws_) && !(skip_ & kSkipAttention);
            // The ranges' stride in the scratch: what attention() passes as n_chunks for one token.
            const int attn_stride = runs ? split_chunks(pos_h[0]) : chunks;
            if (!(skip_ & kSkipAttention)) {
                if (!rope_in_attn)
                    rope_store_kv(qkv, n, ldqkv_, pos, seq, b_.inv_freq_.as<const float>(), Hq, c_.n_kv_heads, D,
                                  kv_[size_t(l)], stream_);
                AttnSplitFusion fz;
                if ((fuse_ & kFuseCombine) && few) fz.counters = attn_counters_.as<unsigned>();
                if (rope_in_attn) fz.inv_freq = b_.inv_freq_.as<const float>();
                if (defer_qkv) {
                    fz.qkv_part = qkv_part_.as<const float>();
                    fz.qkv_splits = qkv_splits;
                    fz.qkv_ld = L.qkv.q.NT * kQ4TileN;
                }
                if (merge_in_o) fz.merge_used = attn_used_.as<int>();
                attention(l, n, chunks, runs, pos_h, scale, fz);
            }
            if (merge_in_o) {
                Q4Prologue pro;
                pro.kind = 4;
                pro.attn_o = split_scratch_.as<const float>();
                pro.attn_ml = pro.attn_o + attn_split_ml_offset(n, Hq, D, attn_stride);
                pro.attn_used = attn_used_.as<const int>();
                pro.attn_stride = attn_stride;
                pro.attn_heads = Hq;
                pro.attn_d = D;
                Q4Out out = o32(x, H);
                out.bias = L.o.bias;
                if (!(skip_ & kSkipLinear)) q4_matmul_pro(pro, n, L.o.q, out, ws_, stream_);
            } else {
                linear(L.o, att, n, ldatt_, o32(x, H));
            }
            const bool silu_in_down = (fuse_ & kFuseSilu) && L.down.q4 && !L.down.q.perm && I % 8 == 0 &&
                                      n <= q4_prologue_silu_rows() && q4_takes_prologue(n, ws_);
            const bool defer_gu = silu_in_down && (fuse_ & kFuseDefer) && L.gate_up.q4 && !L.gate_up.bias && few &&
                                  L.gate_up.N == 2 * I;
            Q4Out go = o16(gu, 2 * I);
            if (defer_gu) {
                go = Q4Out();
                go.defer = gu_part_.as<float>();
                go.defer_floats = gu_part_.bytes() / sizeof(float);
            }
            const int gu_splits = norm_linear(L.gate_up, x, n, L.mlp_norm.as<const float>(), go);
            if (silu_in_down) {
                Q4Prologue pro;
                if (defer_gu) {
                    pro.kind = 3;
                    pro.gu_part = gu_part_.as<const float>();
                    pro.gu_splits = gu_splits;
                    pro.ldgu = L.gate_up.q.NT * kQ4TileN;
                } else {
                    pro.kind = 2;
                    pro.gu = gu;
                    pro.ldgu = 2 * I;
                }
                Q4Out out = o32(x, H);
                out.bias = L.down.bias;
                if (!(skip_ & kSkipLinear)) q4_matmul_pro(pro, n, L.down.q, out, ws_, stream_);
            } else {
                silu_mul(gu, n, I, act, stream_);
                linear(L.down, act, n, I, o32(x, H));
            }
        }
        if (m == 0) return;
        const GpuLinear &head = b_.lm_head_;
        rmsnorm(x, H, rows, m, H, b_.final_norm_.as<const float>(), c_.rms_norm_eps, head.perm(), xn, ldn_, stream_);
        // A dense head stores its logits; the 4-bit kernels add into a cleared buffer.
        Q4Out lo = o32(logits_.as<float>(), c_.vocab_size);
        lo.overwrite32 = !head.q4 && !(skip_ & kSkipHead);
        if (!lo.overwrite32) CUDA_CHECK(cudaMemsetAsync(logits_.as<void>(), 0, size_t(m) * c_.vocab_size * 4, stream_));
        if (!(skip_ & kSkipHead)) linear_nogather(head, xn, m, ldn_, lo);
    }

    // out = rmsnorm(x) · Wᵀ: the norm inside the 4-bit kernel for few rows, else its own kernel.
    // Returns the 4-bit product's splits (what a deferred output's consumer must add up).
    int norm_linear(const GpuLinear &L, const float *x, int n, const float *norm_w, Q4Out out) {
        const int H = c_.hidden_size;
        if ((fuse_ & kFuseNorm) && L.q4 && n <= q4_prologue_norm_rows() && H % 4 == 0 && q4_takes_prologue(n, ws_)) {
            Q4Prologue pro;
            pro.kind = 1;
            pro.x32 = x;
            pro.ldx32 = H;
            pro.norm_w = norm_w;
            pro.eps = c_.rms_norm_eps;
            pro.perm = L.q.perm;
            if (!out.defer) out.bias = L.bias;
            if (skip_ & kSkipLinear) return q4_default_plan(n, L.q, ws_, pro.kind).splits;
            return q4_matmul_pro(pro, n, L.q, out, ws_, stream_);
        }
        __half *xn = xn_.as<__half>();
        rmsnorm(x, H, nullptr, n, H, norm_w, c_.rms_norm_eps, L.perm(), xn, ldn_, stream_);
        return linear_nogather(L, xn, n, ldn_, out);
    }

    // The input was already gathered (by rmsnorm).
    int linear_nogather(const GpuLinear &L, const __half *x, int M, int ldx, Q4Out out) {
        if (out.defer && !L.q4) fail(GPTQ_ERR_BACKEND, "CUDA: a deferred product needs a 4-bit layer");
        if ((skip_ & kSkipLinear) && &L != &b_.lm_head_) return L.q4 ? q4_default_plan(M, L.q, ws_).splits : 0;
        if (!out.defer) out.bias = L.bias;
        if (L.q4) return q4_matmul(x, M, ldx, L.q, out, ws_, stream_);
        dense_matmul(cublas_, x, M, ldx, L.w16, L.K, L.N, L.K, out, stream_);
        return 0;
    }

    void attention(int l, int n, int chunks, const std::vector<Run> *runs, const int32_t *pos_h, float scale,
                   const AttnSplitFusion &fuse) {
        const bool rope_inside = fuse.inv_freq != nullptr;
        const int Hq = c_.n_heads;
        const int *pos = ids_.as<int>() + n, *seq = ids_.as<int>() + 2 * n;
        const __half *q = qkv_.as<__half>();
        __half *att = att_.as<__half>();
        const KVLayer &kv = kv_[size_t(l)];
        if (!runs) {  // decode graph: every token through the split kernel
            attention_split(q, ldqkv_, pos, seq, n, Hq, kv, scale, chunks, split_scratch_.as<float>(), att, ldatt_,
                            stream_, fuse);
            return;
        }
        if (rope_inside && !(runs->size() == 1 && (*runs)[0].len == 1))
            fail(GPTQ_ERR_BACKEND, "attention: RoPE inside the attention kernel needs a one-token batch");
        for (const Run &r : *runs) {
            if (r.len >= kGemmMinRun && gemm_scratch_.bytes()) {
                // Rows in pieces whose score matrix fits the scratch.
                for (int s = 0; s < r.len;) {
                    int L = 0, cnt = 0;
                    for (int i = s; i < r.len && cnt < kGemmMaxRows; ++i) {
                        const int Li = std::max(L, pos_h[r.start + i] + 1);
                        if (attention_gemm_scratch_floats(cnt + 1, Hq, Li) * 4 > gemm_scratch_bytes_) break;
                        L = Li;
                        ++cnt;
                    }
                    if (cnt == 0) fail(GPTQ_ERR_BACKEND, "attention scratch too small for one row");
                    const int t0 = r.start + s;
                    attention_gemm(cublas_, q + size_t(t0) * ldqkv_, ldqkv_, pos + t0, cnt, L, r.seq, Hq, kv, scale,
                                   gemm_scratch_.as<float>(), att + size_t(t0) * ldatt_, ldatt_, stream_);
                    s += cnt;
                }
            } else {
                for (int s = 0; s < r.len; s += kSplitMaxTokens) {
                    const int t0 = r.start + s, cnt = std::min(kSplitMaxTokens, r.len - s);
                    int maxp = 0;
                    for (int i = 0; i < cnt; ++i) maxp = std::max(maxp, pos_h[t0 + i]);
                    attention_split(q + size_t(t0) * ldqkv_, ldqkv_, pos + t0, seq + t0, cnt, Hq, kv, scale,
                                    split_chunks(maxp), split_scratch_.as<float>(), att + size_t(t0) * ldatt_,
                                    ldatt_, stream_, fuse);
                }
            }
        }
    }

    const CudaBackend &b_;
    const ModelConfig &c_;
    int n_ctx_, n_seq_, nb_;
    int ldn_ = 0, ldqkv_ = 0, ldatt_ = 0, chunks_max_ = 1;
    DeviceBuffer ids_, x32_, xn_, xg_, qkv_, att_, gu_, act_, logits_, cache_;
    // eval_candidates: the penalised ids (offsets, then ids), the ranking's scratch, its output
    // (keys, ids, usable counts), and their host copies.
    DeviceBuffer query_, cand_scratch_, cand_;
    PinnedBuffer query_h_, cand_h_;
    bool rank_on_device_ = false;
    DeviceBuffer q4_partial_, q4_sums_, q4_counters_, q4_deq_, q4_xfrag_, q4_sk_partial_, q4_sk_flags_;
    DeviceBuffer split_scratch_, attn_counters_, attn_used_, gemm_scratch_, cublas_ws_;
    DeviceBuffer qkv_part_, gu_part_;  // deferred split shares (few-row batches)
    size_t gemm_scratch_bytes_ = 0;
    std::vector<KVLayer> kv_;
    Q4Workspace ws_;
    OwnedStream owned_stream_;  // released after owned_cublas_ (declared first)
    OwnedCublas owned_cublas_;
    cudaStream_t stream_ = nullptr;     // owned_stream_'s
    cublasHandle_t cublas_ = nullptr;   // owned_cublas_'s
    PinnedBuffer ids_h_, logits_h_;  // the batch's tokens going up, its logits coming back
    PinnedBuffer rows_h_;            // logits_storage: the Context's kept rows
    bool use_graphs_ = true;
    int fuse_ = 0, skip_ = 0;
    // Decode graphs by (tokens, kept rows, attention chunks, candidates ranked per row or 0, the
    // ranking's penalty's bits).
    std::map<std::tuple<int, int, int, int, uint32_t>, cudaGraphExec_t> graphs_;
};

std::unique_ptr<BackendContext> CudaBackend::create_context(int n_ctx, int n_seq, int n_batch) {
    if (n_ctx <= 0 || n_seq <= 0 || n_batch <= 0)
        fail(GPTQ_ERR_INVALID_ARG, "CUDA context: n_ctx %d, n_seq %d, n_batch %d must be positive", n_ctx, n_seq, n_batch);
    return std::make_unique<CudaContext>(*this, n_ctx, n_seq, n_batch);
}

} // namespace

SyntheticModelSpec llama2_7b_spec(bool q4, int n_layers) {
    SyntheticModelSpec spec;
    ModelConfig &c = spec.cfg;
    c.architecture = "llama";
    c.vocab_size = 32000;
    c.hidden_size = 4096;
    c.intermediate_size = 11008;
    c.n_layers = n_layers;
    c.n_heads = 32;
    c.n_kv_heads = 32;
    c.head_dim = 128;
    c.rms_norm_eps = 1e-5f;
    c.rope_theta = 10000.0;
    c.tie_word_embeddings = false;
    spec.q4 = q4;
    spec.group_size = 128;
    return spec;
}

std::unique_ptr<Backend> make_synthetic_backend(const SyntheticModelSpec &spec, int device) {
    return std::make_unique<CudaBackend>(spec, device);
}
void set_pdl_enabled(bool on) { set_pdl(on); }

} // namespace cuda

std::unique_ptr<Backend> make_cuda_backend(const Model &model, int device) {
    return std::make_unique<cuda::CudaBackend>(model, device);
}

} // namespace gptq
