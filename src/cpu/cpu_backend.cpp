// cpu_backend.cpp — the always-available backend: the whole Llama block in fp32 on the CPU.
//
// A batch of tokens (from any sequences, at any positions) goes through each layer together:
// the linear layers are one sgemm over all tokens; RoPE, the KV-cache write and attention are per
// token. The KV cache is [layer][seq][position][kv_dim] so a sequence's keys are contiguous.
#include "../backend.h"
#include "cpu_linear.h"
#include "ops.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace gptq {

namespace {

struct CpuLayer {
    Buffer<float> attn_norm, mlp_norm;
    CpuLinear q, k, v, o, gate, up, down;
};

Buffer<float> to_f32(const TensorView &t) {
    Buffer<float> b(static_cast<size_t>(t.numel()));
    tensor_to_f32(t, b.data());
    return b;
}

class CpuBackend final : public Backend {
public:
    CpuBackend(const Model &m, int n_threads) : model_(m), n_threads_(n_threads) {
        const ModelConfig &c = m.cfg;
        embed_ = to_f32(*m.embed);
        final_norm_ = to_f32(*m.final_norm);
        layers_.resize(size_t(c.n_layers));
        for (int i = 0; i < c.n_layers; i++) {
            const LayerWeights &w = m.layers[size_t(i)];
            CpuLayer &L = layers_[size_t(i)];
            L.attn_norm = to_f32(*w.attn_norm);
            L.mlp_norm = to_f32(*w.mlp_norm);
            L.q = CpuLinear(w.q);
            L.k = CpuLinear(w.k);
            L.v = CpuLinear(w.v);
            L.o = CpuLinear(w.o);
            L.gate = CpuLinear(w.gate);
            L.up = CpuLinear(w.up);
            L.down = CpuLinear(w.down);
        }
        tied_ = m.lm_head.weight == m.embed;
        if (!tied_) lm_head_ = CpuLinear(m.lm_head);
        inv_freq_.resize(size_t(c.head_dim / 2));
        rope_inv_freq(inv_freq_.data(), c.head_dim, c.rope_theta);
    }

    std::unique_ptr<BackendContext> create_context(int n_ctx, int n_seq, int n_batch) override;
    int64_t weight_bytes() const override {
        int64_t b = int64_t(embed_.size() + final_norm_.size()) * 4;
        for (const CpuLayer &L : layers_) {
            b += int64_t(L.attn_norm.size() + L.mlp_norm.size()) * 4;
            for (const CpuLinear *l : {&L.q, &L.k, &L.v, &L.o, &L.gate, &L.up, &L.down}) b += l->bytes();
        }
        if (!tied_) b += lm_head_.bytes();
        return b;
    }
    const char *name() const override { return "cpu"; }

    const Model &model_;
    int n_threads_;
    Buffer<float> embed_, final_norm_;
    std::vector<CpuLayer> layers_;
    bool tied_ = true;
    CpuLinear lm_head_;
    std::vector<float> inv_freq_;
};

class CpuContext final : public BackendContext {
public:
    CpuContext(const CpuBackend &b, int n_ctx, int n_seq, int n_batch)
        : b_(b), c_(b.model_.cfg), n_ctx_(n_ctx), n_seq_(n_seq), n_batch_(n_batch) {
        kvd_ = c_.n_kv_heads * c_.head_dim;
        qd_ = c_.n_heads * c_.head_dim;
        const size_t per_layer = size_t(n_seq) * size_t(n_ctx) * size_t(kvd_);
        kcache_.resize(per_layer * size_t(c_.n_layers));
        vcache_.resize(per_layer * size_t(c_.n_layers));
        const size_t B = size_t(n_batch);
        x_.resize(B * size_t(c_.hidden_size));
        xn_.resize(B * size_t(c_.hidden_size));
        q_.resize(B * size_t(qd_));
        k_.resize(B * size_t(kvd_));
        v_.resize(B * size_t(kvd_));
        att_.resize(B * size_t(std::max(qd_, c_.hidden_size)));
        gate_.resize(B * size_t(c_.intermediate_size));
        up_.resize(B * size_t(c_.intermediate_size));
        size_t scratch = 0;
        for (const CpuLayer &L : b.layers_)
            for (const CpuLinear *l : {&L.q, &L.k, &L.v, &L.o, &L.gate, &L.up, &L.down})
                scratch = std::max(scratch, l->scratch_floats());
        if (!b.tied_) scratch = std::max(scratch, b.lm_head_.scratch_floats());
        scratch_.resize(scratch);
    }

    void reset(int seq) override { (void)seq; }  // positions are overwritten as they are evaluated

    void eval(const EvalToken *toks, int n, const int8_t *want, float *logits_out) override {
        const int H = c_.hidden_size, I = c_.intermediate_size, nt = b_.n_threads_;
        float *x = x_.data(), *xn = xn_.data();
        for (int t = 0; t < n; t++)
            std::copy_n(b_.embed_.data() + int64_t(toks[t].token) * H, H, x + int64_t(t) * H);

        for (int l = 0; l < c_.n_layers; l++) {
            const CpuLayer &L = b_.layers_[size_t(l)];
            rmsnorm(x, L.attn_norm.data(), xn, n, H, c_.rms_norm_eps, nt);
            L.q.forward(xn, n, q_.data(), scratch_.data(), nt);
            L.k.forward(xn, n, k_.data(), scratch_.data(), nt);
            L.v.forward(xn, n, v_.data(), scratch_.data(), nt);
            for (int t = 0; t < n; t++) {
                rope_apply(q_.data() + int64_t(t) * qd_, c_.n_heads, c_.head_dim, toks[t].pos, b_.inv_freq_.data());
                rope_apply(k_.data() + int64_t(t) * kvd_, c_.n_kv_heads, c_.head_dim, toks[t].pos, b_.inv_freq_.data());
                std::copy_n(k_.data() + int64_t(t) * kvd_, kvd_, kv(kcache_, l, toks[t].seq, toks[t].pos));
                std::copy_n(v_.data() + int64_t(t) * kvd_, kvd_, kv(vcache_, l, toks[t].seq, toks[t].pos));
            }
            attention(l, toks, n);
            L.o.forward(att_.data(), n, xn, scratch_.data(), nt);
            add_inplace(x, xn, int64_t(n) * H);

            rmsnorm(x, L.mlp_norm.data(), xn, n, H, c_.rms_norm_eps, nt);
            L.gate.forward(xn, n, gate_.data(), scratch_.data(), nt);
            L.up.forward(xn, n, up_.data(), scratch_.data(), nt);
            silu_mul(gate_.data(), up_.data(), int64_t(n) * I, nt);
            L.down.forward(gate_.data(), n, xn, scratch_.data(), nt);
            add_inplace(x, xn, int64_t(n) * H);
        }

        // Final norm and head only for the rows whose logits are wanted.
        int m = 0;
        for (int t = 0; t < n; t++) {
            if (!want[t]) continue;
            rmsnorm(x + int64_t(t) * H, b_.final_norm_.data(), xn + int64_t(m) * H, 1, H, c_.rms_norm_eps, 1);
            m++;
        }
        if (m == 0) return;
        if (b_.tied_)
            matmul_wt(xn, m, H, b_.embed_.data(), c_.vocab_size, nullptr, logits_out);
        else
            b_.lm_head_.forward(xn, m, logits_out, scratch_.data(), nt);
    }

private:
    float *kv(Buffer<float> &cache, int layer, int seq, int pos) {
        return cache.data() + ((size_t(layer) * n_seq_ + size_t(seq)) * n_ctx_ + size_t(pos)) * kvd_;
    }

    // Tokens are grouped by sequence; each (sequence, head) is two sgemm calls over the cache
    // (attend_head), so a long prompt runs at matrix speed and a single decode token as a gemv.
    void attention(int l, const EvalToken *toks, int n) {
        const int hd = c_.head_dim, group = c_.n_heads / c_.n_kv_heads;
        for (int seq = 0; seq < n_seq_; seq++) {
            rows_.clear();
            pos_.clear();
            int L = 0;
            for (int t = 0; t < n; t++)
                if (toks[t].seq == seq) {
                    rows_.push_back(t);
                    pos_.push_back(toks[t].pos);
                    L = std::max(L, toks[t].pos + 1);
                }
            const int m = int(rows_.size());
            if (m == 0) continue;
            qs_.resize(size_t(m) * qd_);
            os_.resize(size_t(m) * qd_);
            s_.resize(size_t(m) * size_t(L));
            for (int i = 0; i < m; i++)
                std::copy_n(q_.data() + int64_t(rows_[size_t(i)]) * qd_, qd_, qs_.data() + int64_t(i) * qd_);
            const float *K = kv(kcache_, l, seq, 0), *V = kv(vcache_, l, seq, 0);
            for (int h = 0; h < c_.n_heads; h++) {
                const int kh = h / group;
                attend_head(qs_.data() + h * hd, qd_, m, pos_.data(), K + kh * hd, V + kh * hd, kvd_, L, hd,
                            os_.data() + h * hd, qd_, s_.data());
            }
            for (int i = 0; i < m; i++)
                std::copy_n(os_.data() + int64_t(i) * qd_, qd_, att_.data() + int64_t(rows_[size_t(i)]) * qd_);
        }
    }

    const CpuBackend &b_;
    const ModelConfig &c_;
    int n_ctx_, n_seq_, n_batch_;
    int kvd_ = 0, qd_ = 0;
    Buffer<float> kcache_, vcache_;
    Buffer<float> x_, xn_, q_, k_, v_, att_, gate_, up_, scratch_;
    std::vector<int> rows_, pos_;            // attention: the batch rows of one sequence, their positions
    std::vector<float> qs_, os_, s_;         // attention: gathered queries, outputs, scores
};

std::unique_ptr<BackendContext> CpuBackend::create_context(int n_ctx, int n_seq, int n_batch) {
    return std::make_unique<CpuContext>(*this, n_ctx, n_seq, n_batch);
}

} // namespace

std::unique_ptr<Backend> make_cpu_backend(const Model &model, int n_threads) {
    return std::make_unique<CpuBackend>(model, resolve_threads(n_threads));
}

} // namespace gptq
