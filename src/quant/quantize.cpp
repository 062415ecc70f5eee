// quantize.cpp — the layer-by-layer GPTQ pipeline (CPU).
//
// Only one decoder layer's weights and the calibration activations are in memory at a time:
//   X      [rows, hidden]   the layer input, replaced in place by the layer's output
//   attn   [rows, q_dim]    attention output (input of o_proj)
// With true-sequential order (k, v, q | o | up, gate | down) each group's Hessian is collected from
// the outputs of the already-quantized groups before it; the layer's output is then recomputed
// through the fully quantized layer before the next layer starts, as the reference does.
// Passes over the calibration rows go in chunks of a few windows so temporaries stay small.
#include "quantize.h"
#include "calibration.h"
#include "checkpoint_writer.h"
#include "pack.h"
#include "pipeline_common.h"
#include "solver.h"
#include "../backend.h"
#include "../cpu/ops.h"
#include "../cuda/quant_pipeline.h"
#include "../model.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace gptq {

namespace {

using Clock = std::chrono::steady_clock;

using Options = PipelineOptions;

// One linear layer's fp32 weights, replaced by the fake-quantized weights once solved.
struct Sublayer {
    Sublayer(const LinearWeights *w, const char *n) : src(w), short_name(n) {}
    const LinearWeights *src;
    const char *short_name;  // "self_attn.q_proj"
    Buffer<float> W;         // [out, in]
    Buffer<float> bias;
    GptqResult result;
    bool quantized = false;
};

void load_sublayer(Sublayer &s) {
    const LinearWeights &w = *s.src;
    if (w.quantized) fail(GPTQ_ERR_INVALID_ARG, "%s is already GPTQ-quantized; quantize the float model", w.name.c_str());
    s.W.resize(size_t(w.in) * size_t(w.out));
    tensor_to_f32(*w.weight, s.W.data());
    if (w.bias) {
        s.bias.resize(size_t(w.out));
        tensor_to_f32(*w.bias, s.bias.data());
    }
}

void forward(const Sublayer &s, const float *x, int64_t rows, float *y) {
    matmul_wt(x, rows, s.src->in, s.W.data(), s.src->out, s.bias.empty() ? nullptr : s.bias.data(), y);
}

class Pipeline {
public:
    Pipeline(Model &m, const CalibrationSet &calib, const Options &o, CheckpointWriter &out)
        : m_(m), c_(m.cfg), calib_(calib), o_(o), out_(out) {
        rows_ = int64_t(calib.n_samples) * calib.seq_len;
        chunk_samples_ = std::max(1, int(8192 / calib.seq_len));
        inv_freq_.resize(size_t(c_.head_dim / 2));
        rope_inv_freq(inv_freq_.data(), c_.head_dim, c_.rope_theta);
        total_steps_ = int64_t(c_.n_layers) * 7;
    }

    void run() {
        const int H = c_.hidden_size;
        X_.resize(size_t(rows_) * H);
        {
            Buffer<float> embed(size_t(c_.vocab_size) * H);
            tensor_to_f32(*m_.embed, embed.data());
            for (int64_t r = 0; r < rows_; r++)
                std::copy_n(embed.data() + int64_t(calib_.tokens[size_t(r)]) * H, H, X_.data() + r * H);
            out_.add_f16("model.embed_tokens.weight", {c_.vocab_size, H}, embed.data());
        }
        for (int l = 0; l < c_.n_layers; l++) quantize_layer(l);
        write_float("model.norm.weight", *m_.final_norm);
        if (m_.lm_head.weight != m_.embed) write_float("lm_head.weight", *m_.lm_head.weight);
    }

    int n_fp16_layers() const { return n_fp16_; }
    double total_error() const { return total_error_; }

private:
    void write_float(const std::string &name, const TensorView &t) {
        Buffer<float> b(size_t(t.numel()));
        tensor_to_f32(t, b.data());
        out_.add_f16(name, t.shape, b.data());
    }

    template <class F> void for_chunks(F &&f) {
        for (int s0 = 0; s0 < calib_.n_samples; s0 += chunk_samples_) {
            const int ns = std::min(chunk_samples_, calib_.n_samples - s0);
            f(int64_t(s0) * calib_.seq_len, ns);
        }
    }

    void solve(Sublayer &s, const HessianAccumulator &H, int layer) {
        const auto t0 = Clock::now();
        const LinearWeights &w = *s.src;
        if (keep_unpackable_in_fp16(w, o_.gptq)) {
            n_fp16_++;
        } else {
            const GptqOptions opt = layer_options(o_.gptq, w);
            s.result = gptq_quantize_layer(s.W.data(), w.out, w.in, H.data(), opt, w.name.c_str());
            std::copy(s.result.dequantized.begin(), s.result.dequantized.end(), s.W.data());
            s.quantized = true;
            total_error_ += s.result.error;
        }
        step_++;
        if (o_.progress) {
            const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
            std::string detail = strprintf("layer %d/%d %s err %.3g damp %.3g %.2fs", layer + 1, c_.n_layers,
                                           s.short_name, s.quantized ? s.result.error : 0.0,
                                           double(s.quantized ? s.result.damp_used : 0.f), secs);
            if (o_.progress("quantize", step_, total_steps_, detail.c_str(), o_.user))
                fail(GPTQ_ERR_ABORTED, "quantization cancelled at layer %d (%s)", layer, s.short_name);
        }
    }

    void add_hessian(HessianAccumulator &H, const float *x, int64_t rows, int layer, const char *what) {
        try {
            H.add(x, rows);
        } catch (const Error &e) {
            fail(e.status(), "layer %d, input of %s: %s", layer, what, e.what());
        }
    }

    void write_sublayer(const Sublayer &s) {
        const LinearWeights &w = *s.src;
        if (!s.quantized) {
            out_.add_f16(w.name + ".weight", {w.out, w.in}, s.W.data());
        } else {
            const GptqResult &r = s.result;
            const int K = w.in, N = w.out, bits = o_.gptq.bits;
            std::vector<int32_t> qweight(size_t(K) * bits / 32 * N);
            pack_qweight(r.codes.data(), K, N, bits, qweight.data());
            std::vector<uint16_t> scales(r.scales.size());
            for (size_t i = 0; i < scales.size(); i++) scales[i] = f32_to_f16(r.scales[i]);
            write_gptq_tensors(out_, w.name, K, N, r.G, bits, o_.format, qweight.data(), r.zeros.data(), scales.data(),
                               r.g_idx.data());
        }
        if (!s.bias.empty()) out_.add_f16(w.name + ".bias", {w.out}, s.bias.data());
    }

    // Attention of one chunk: xn -> attn (rows x q_dim), through the current q/k/v weights.
    void attention_chunk(Sublayer &q, Sublayer &k, Sublayer &v, const float *xn, int64_t r0, int ns, float *attn) {
        const int64_t rows = int64_t(ns) * calib_.seq_len;
        const int qd = c_.n_heads * c_.head_dim, kvd = c_.n_kv_heads * c_.head_dim;
        Buffer<float> Q(size_t(rows) * qd), K(size_t(rows) * kvd), V(size_t(rows) * kvd);
        forward(q, xn, rows, Q.data());
        forward(k, xn, rows, K.data());
        forward(v, xn, rows, V.data());
        for (int64_t r = 0; r < rows; r++) {
            const int pos = int(r % calib_.seq_len);
            rope_apply(Q.data() + r * qd, c_.n_heads, c_.head_dim, pos, inv_freq_.data());
            rope_apply(K.data() + r * kvd, c_.n_kv_heads, c_.head_dim, pos, inv_freq_.data());
        }
        causal_attention(Q.data(), K.data(), V.data(), attn + r0 * qd, ns, calib_.seq_len, c_.n_heads,
                         c_.n_kv_heads, c_.head_dim, o_.n_threads);
    }

    void quantize_layer(int l) {
        const LayerWeights &lw = m_.layers[size_t(l)];
        const int H = c_.hidden_size, I = c_.intermediate_size, qd = c_.n_heads * c_.head_dim;
        const float eps = c_.rms_norm_eps;
        const int nt = o_.n_threads;
        const bool seq = o_.qc.true_sequential;
        Sublayer q{&lw.q, "self_attn.q_proj"}, k{&lw.k, "self_attn.k_proj"}, v{&lw.v, "self_attn.v_proj"},
            o{&lw.o, "self_attn.o_proj"}, gate{&lw.gate, "mlp.gate_proj"}, up{&lw.up, "mlp.up_proj"},
            down{&lw.down, "mlp.down_proj"};
        for (Sublayer *s : {&q, &k, &v, &o, &gate, &up, &down}) load_sublayer(*s);
        Buffer<float> attn_norm(static_cast<size_t>(H)), mlp_norm(static_cast<size_t>(H));
        tensor_to_f32(*lw.attn_norm, attn_norm.data());
        tensor_to_f32(*lw.mlp_norm, mlp_norm.data());
        const int64_t chunk_rows = int64_t(chunk_samples_) * calib_.seq_len;
        Buffer<float> xn(size_t(chunk_rows) * H), attn(size_t(rows_) * qd);
        HessianAccumulator H_attn(H), H_o(qd), H_mlp(H), H_down(I);

        // Without true-sequential order every Hessian comes from the unquantized layer.
        auto mlp_hessians = [&](bool want_mlp, bool want_down) {
            Buffer<float> x2(size_t(chunk_rows) * H), g(size_t(chunk_rows) * I), u(size_t(chunk_rows) * I);
            for_chunks([&](int64_t r0, int ns) {
                const int64_t rows = int64_t(ns) * calib_.seq_len;
                forward(o, attn.data() + r0 * qd, rows, x2.data());
                add_inplace(x2.data(), X_.data() + r0 * H, rows * H);
                rmsnorm(x2.data(), mlp_norm.data(), xn.data(), rows, H, eps, nt);
                if (want_mlp) add_hessian(H_mlp, xn.data(), rows, l, "mlp.gate_proj/up_proj");
                if (want_down) {
                    forward(gate, xn.data(), rows, g.data());
                    forward(up, xn.data(), rows, u.data());
                    silu_mul(g.data(), u.data(), rows * I, nt);
                    add_hessian(H_down, g.data(), rows, l, "mlp.down_proj");
                }
            });
        };

        // 1. q, k, v: input is norm(X).
        for_chunks([&](int64_t r0, int ns) {
            const int64_t rows = int64_t(ns) * calib_.seq_len;
            rmsnorm(X_.data() + r0 * H, attn_norm.data(), xn.data(), rows, H, eps, nt);
            add_hessian(H_attn, xn.data(), rows, l, "self_attn.q/k/v_proj");
            if (!seq) attention_chunk(q, k, v, xn.data(), r0, ns, attn.data());
        });
        if (!seq) {
            for_chunks([&](int64_t r0, int ns) {
                add_hessian(H_o, attn.data() + r0 * qd, int64_t(ns) * calib_.seq_len, l, "self_attn.o_proj");
            });
            mlp_hessians(true, true);
        }
        solve(k, H_attn, l);
        solve(v, H_attn, l);
        solve(q, H_attn, l);

        // 2. o: input is the attention output through the quantized q, k, v.
        for_chunks([&](int64_t r0, int ns) {
            const int64_t rows = int64_t(ns) * calib_.seq_len;
            rmsnorm(X_.data() + r0 * H, attn_norm.data(), xn.data(), rows, H, eps, nt);
            attention_chunk(q, k, v, xn.data(), r0, ns, attn.data());
            if (seq) add_hessian(H_o, attn.data() + r0 * qd, rows, l, "self_attn.o_proj");
        });
        solve(o, H_o, l);

        // 3. up, gate; 4. down — each from the outputs of what is already quantized.
        if (seq) mlp_hessians(true, false);
        solve(up, H_mlp, l);
        solve(gate, H_mlp, l);
        if (seq) mlp_hessians(false, true);
        solve(down, H_down, l);

        // 5. The layer's output through the fully quantized layer becomes the next layer's input.
        Buffer<float> x2(size_t(chunk_rows) * H), g(size_t(chunk_rows) * I), u(size_t(chunk_rows) * I);
        for_chunks([&](int64_t r0, int ns) {
            const int64_t rows = int64_t(ns) * calib_.seq_len;
            float *X = X_.data() + r0 * H;
            forward(o, attn.data() + r0 * qd, rows, x2.data());
            add_inplace(X, x2.data(), rows * H);
            rmsnorm(X, mlp_norm.data(), xn.data(), rows, H, eps, nt);
            forward(gate, xn.data(), rows, g.data());
            forward(up, xn.data(), rows, u.data());
            silu_mul(g.data(), u.data(), rows * I, nt);
            forward(down, g.data(), rows, x2.data());
            add_inplace(X, x2.data(), rows * H);
        });
        for (int64_t i = 0; i < rows_ * H; i += 4099)
            if (!std::isfinite(X_[size_t(i)]))
                fail(GPTQ_ERR_NUMERIC, "layer %d: non-finite activations in the quantized layer's output", l);

        const std::string p = strprintf("model.layers.%d.", l);
        out_.add_f16(p + "input_layernorm.weight", {H}, attn_norm.data());
        out_.add_f16(p + "post_attention_layernorm.weight", {H}, mlp_norm.data());
        for (Sublayer *s : {&q, &k, &v, &o, &gate, &up, &down}) write_sublayer(*s);
    }

public:

private:
    Model &m_;
    const ModelConfig &c_;
    const CalibrationSet &calib_;
    const Options &o_;
    CheckpointWriter &out_;
    int64_t rows_ = 0;
    int chunk_samples_ = 1;
    std::vector<float> inv_freq_;
    Buffer<float> X_;
    int64_t step_ = 0, total_steps_ = 0;
    int n_fp16_ = 0;
    double total_error_ = 0;
};

} // namespace

void quantize_model(const char *model_dir, const char *out_dir, const gptq_quantize_params &p) {
    const Options o = pipeline_options(p);
    if (p.calib_seq_len < 2 || p.calib_n_samples <= 0)
        fail(GPTQ_ERR_INVALID_ARG, "calibration needs calib_seq_len >= 2 and calib_n_samples >= 1");
    if (p.backend != GPTQ_BACKEND_AUTO && p.backend != GPTQ_BACKEND_CPU && p.backend != GPTQ_BACKEND_CUDA)
        fail(GPTQ_ERR_INVALID_ARG, "unknown backend %d", p.backend);
    if (p.backend == GPTQ_BACKEND_CUDA) {
        const std::string why = cuda_device_unsupported(0);
        if (!why.empty())
            fail(GPTQ_ERR_UNSUPPORTED, "GPU quantization needs a CUDA device this build runs on (%s); use GPTQ_BACKEND_CPU or AUTO",
                 why.c_str());
    }

    const auto t0 = Clock::now();
    std::unique_ptr<Model> m = load_model(model_dir);
    if (m->cfg.quant.present) fail(GPTQ_ERR_INVALID_ARG, "%s is already a GPTQ checkpoint", model_dir);

    CalibrationSet calib;
    if (p.calib_tokens_path && *p.calib_tokens_path)
        calib = load_calibration_tokens(p.calib_tokens_path, p.calib_seq_len, p.calib_n_samples, m->cfg.vocab_size);
    else if (p.calib_text_path && *p.calib_text_path)
        calib = sample_calibration_text(*m, p.calib_text_path, p.calib_seq_len, p.calib_n_samples, p.seed);
    else
        calib = self_generated_calibration(*m, p.calib_seq_len, p.calib_n_samples, p.seed, o.n_threads, p.progress,
                                           p.progress_user_data);
    if (calib.seq_len > m->cfg.max_position_embeddings)
        log_msg(GPTQ_LOG_WARN, "calibration windows of %d tokens exceed max_position_embeddings %d", calib.seq_len,
                m->cfg.max_position_embeddings);
    log_msg(GPTQ_LOG_INFO, "calibration: %d windows of %d tokens from %s", calib.n_samples, calib.seq_len,
            calib.source.c_str());

    const int format = o.format;
    if (o.format_request == GPTQ_FORMAT_AUTO && format == 2)
        log_msg(GPTQ_LOG_INFO, "asymmetric quantization: writing checkpoint_format gptq_v2 (v1 cannot store a zero point of 0)");

    // The GPU when asked, or by default when there is one and it takes these options.
    bool use_cuda = p.backend == GPTQ_BACKEND_CUDA;
    if (p.backend == GPTQ_BACKEND_AUTO && cuda_device_usable(0)) {
        const std::string why = cuda_quantize_unsupported_reason(o);
        use_cuda = why.empty();
        if (!use_cuda) log_msg(GPTQ_LOG_INFO, "quantizing on the CPU: the GPU quantizer does not take %s", why.c_str());
    }

    CheckpointWriter writer(model_dir, out_dir, p.max_shard_bytes);
    if (format == 1 && !o.gptq.sym)
        log_msg(GPTQ_LOG_WARN, "asymmetric quantization written as v1: a layer with a zero point of 0 will be refused");
    int n_fp16 = 0;
    if (use_cuda) {
        GpuQuantOptions g;
        const char *hess = std::getenv("GPTQ_CUDA_HESSIAN");  // "fp32": plain fp32 GEMMs for the Hessians
        g.hessian_fp32 = hess && std::strcmp(hess, "fp32") == 0;
        // The calibration forward in fp16 on tensor cores (the fast mode) unless GPTQ_CUDA_FORWARD=fp32
        // asks for the precise mode (quant_pipeline.h). Measured against the CPU quantizer (held-out
        // perplexity, docs-llama-8m in three configurations and docs-llama-30m): both modes land
        // within 0.04-0.16% of it, on either side, with the same mean distance (0.09%) — inside the
        // CPU quantizer's own spread (0.11-0.16% when only the order of its Hessian sums changes) —
        // so the fp32 forward buys nothing measurable; on the 7B shape it takes ~10x the forward
        // and Hessian time.
        g.forward_fp32 = false;
        if (const char *fwd = std::getenv("GPTQ_CUDA_FORWARD")) {
            if (std::strcmp(fwd, "fp32") == 0) g.forward_fp32 = true;
            else if (std::strcmp(fwd, "fp16") != 0) log_msg(GPTQ_LOG_WARN, "GPTQ_CUDA_FORWARD=%s ignored (fp32 or fp16)", fwd);
        }
        log_msg(GPTQ_LOG_INFO, "GPU quantizer: %s calibration forward", g.forward_fp32 ? "fp32" : "fp16");
        GpuQuantStats st;
        quantize_model_cuda(*m, calib, o, writer, g, &st);
        n_fp16 = st.n_fp16_layers;
        log_msg(GPTQ_LOG_INFO,
                "GPU quantizer: %.1f s (GPU time: upload %.1f, forward %.1f, Hessian %.1f, solve %.1f, pack %.1f; "
                "waiting on the writer %.1f); peak device memory %.2f GB (own buffers), %.2f GB in use at most",
                st.t_total, st.t_upload, st.t_forward, st.t_hessian, st.t_solve, st.t_pack, st.t_write,
                double(st.peak_bytes) / 1e9, double(st.peak_device_used) / 1e9);
    } else {
        Pipeline pipe(*m, calib, o, writer);
        pipe.run();
        n_fp16 = pipe.n_fp16_layers();
    }
    writer.finish(m->cfg, o.qc);
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    log_msg(GPTQ_LOG_INFO, "quantized %s -> %s on the %s in %.1f s (%d layers kept in fp16, %s)", model_dir, out_dir,
            use_cuda ? "GPU" : "CPU", secs, n_fp16, format == 2 ? "gptq_v2" : "gptq v1");
}

} // namespace gptq
