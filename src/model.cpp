// model.cpp — opening a model directory and validating every weight against the config.
#include "model.h"
#include "backend.h"
#include "quant/pack.h"

namespace gptq {

Model::~Model() = default;

static bool is_float(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

static const TensorView &require_float(const TensorStore &store, const std::string &name,
                                       const std::vector<int64_t> &shape) {
    const TensorView &t = store.require(name, shape);
    if (!is_float(t.dtype))
        fail(GPTQ_ERR_FORMAT, "tensor %s: expected a float tensor (F32/F16/BF16), found %s", name.c_str(),
             dtype_name(t.dtype));
    return t;
}

static const TensorView &require_typed(const TensorStore &store, const std::string &name, DType dtype,
                                       const std::vector<int64_t> &shape) {
    const TensorView &t = store.require(name, shape);
    if (t.dtype != dtype)
        fail(GPTQ_ERR_FORMAT, "tensor %s: expected %s %s, found %s %s", name.c_str(), dtype_name(dtype),
             TensorView{name, dtype, shape}.shape_str().c_str(), dtype_name(t.dtype), t.shape_str().c_str());
    return t;
}

// Some published "gptq" (v1) files really hold v2 zeros. For a symmetric file every stored zero is
// then 2^(bits-1) instead of 2^(bits-1) - 1; detect it on the first row and say so.
static int detect_zero_format(const QuantTensors &q, int N, bool sym, const std::string &name) {
    if (q.format != 1 || !sym) return q.format;
    std::vector<int32_t> z(static_cast<size_t>(N));
    unpack_qzeros(reinterpret_cast<const int32_t *>(q.qzeros->data), 1, N, q.bits, 2, z.data());
    const int32_t v2_sym = 1 << (q.bits - 1);
    for (int n = 0; n < N; n++)
        if (z[size_t(n)] != v2_sym) return 1;
    log_msg(GPTQ_LOG_WARN, "%s: checkpoint says format \"gptq\" (v1) but its symmetric zeros are stored as v2 (%d); reading it as gptq_v2",
            name.c_str(), v2_sym);
    return 2;
}

LinearWeights load_linear(const TensorStore &store, const std::string &prefix, int in, int out, bool has_bias,
                          const QuantConfig &qc) {
    LinearWeights L;
    L.name = prefix;
    L.in = in;
    L.out = out;
    const TensorView *qweight = store.find(prefix + ".qweight");
    if (qweight) {
        if (!qc.present)
            fail(GPTQ_ERR_FORMAT, "tensor %s.qweight found but the model has no quantization_config / quantize_config.json",
                 prefix.c_str());
        QuantTensors &q = L.q;
        q.bits = qc.bits;
        q.format = qc.format;
        const int K = in, N = out, bits = qc.bits;
        if ((int64_t(K) * bits) % 32 != 0 || !packable(K, bits))
            fail(GPTQ_ERR_FORMAT, "%s: in_features %d cannot be packed at %d bits", prefix.c_str(), K, bits);
        if ((int64_t(N) * bits) % 32 != 0)
            fail(GPTQ_ERR_FORMAT, "%s: out_features %d cannot hold packed %d-bit zeros", prefix.c_str(), N, bits);
        q.group_size = qc.group_size <= 0 ? K : qc.group_size;
        q.G = (K + q.group_size - 1) / q.group_size;
        // G = ceil(K / group_size), as the peers allocate it: a last partial group is legal.
        q.qweight = &require_typed(store, prefix + ".qweight", DType::I32, {int64_t(K) * bits / 32, N});
        q.qzeros = &require_typed(store, prefix + ".qzeros", DType::I32, {q.G, int64_t(N) * bits / 32});
        q.scales = &store.require(prefix + ".scales", {q.G, N});
        if (q.scales->dtype != DType::F16)
            fail(GPTQ_ERR_FORMAT, "tensor %s.scales: expected F16, found %s", prefix.c_str(), dtype_name(q.scales->dtype));
        q.g_idx = store.find(prefix + ".g_idx");
        if (q.g_idx) {
            require_typed(store, prefix + ".g_idx", DType::I32, {K});
            const uint8_t *p = q.g_idx->data;
            for (int k = 0; k < K; k++) {
                int32_t g;
                __builtin_memcpy(&g, p + 4 * size_t(k), 4);
                if (g < 0 || g >= q.G)
                    fail(GPTQ_ERR_FORMAT, "tensor %s.g_idx: entry %d is %d, outside [0, %d)", prefix.c_str(), k, g, q.G);
            }
        } else if (qc.desc_act) {
            fail(GPTQ_ERR_FORMAT, "missing tensor %s.g_idx (required with desc_act)", prefix.c_str());
        }
        q.format = detect_zero_format(q, N, qc.sym, prefix);
        L.quantized = true;
        if (store.find(prefix + ".weight"))
            fail(GPTQ_ERR_FORMAT, "%s has both .qweight and .weight", prefix.c_str());
    } else {
        L.weight = &require_float(store, prefix + ".weight", {out, in});
    }
    if (has_bias) {
        L.bias = &require_float(store, prefix + ".bias", {out});
    } else if (const TensorView *b = store.find(prefix + ".bias")) {
        // GPTQ writers often store an all-zero bias for bias-free layers; accept and use it.
        if (b->shape.size() == 1 && b->shape[0] == out && is_float(b->dtype)) L.bias = b;
    }
    return L;
}

std::unique_ptr<Model> load_model(const std::string &dir) {
    auto m = std::make_unique<Model>();
    m->dir = dir;
    m->cfg = load_model_config(dir);
    const ModelConfig &c = m->cfg;
    m->store = TensorStore::open_dir(dir);
    m->tok = Tokenizer::load(dir, c);
    if (m->tok->vocab_size() > c.vocab_size)
        fail(GPTQ_ERR_FORMAT, "%s: tokenizer has %d pieces but config.json vocab_size is %d", dir.c_str(),
             m->tok->vocab_size(), c.vocab_size);

    const TensorStore &s = *m->store;
    const int H = c.hidden_size, I = c.intermediate_size;
    const int QD = c.n_heads * c.head_dim, KVD = c.n_kv_heads * c.head_dim;
    m->embed = &require_float(s, "model.embed_tokens.weight", {c.vocab_size, H});
    m->final_norm = &require_float(s, "model.norm.weight", {H});
    m->layers.resize(size_t(c.n_layers));
    for (int i = 0; i < c.n_layers; i++) {
        const std::string p = strprintf("model.layers.%d.", i);
        LayerWeights &L = m->layers[size_t(i)];
        L.attn_norm = &require_float(s, p + "input_layernorm.weight", {H});
        L.mlp_norm = &require_float(s, p + "post_attention_layernorm.weight", {H});
        L.q = load_linear(s, p + "self_attn.q_proj", H, QD, c.qkv_bias, c.quant);
        L.k = load_linear(s, p + "self_attn.k_proj", H, KVD, c.qkv_bias, c.quant);
        L.v = load_linear(s, p + "self_attn.v_proj", H, KVD, c.qkv_bias, c.quant);
        L.o = load_linear(s, p + "self_attn.o_proj", QD, H, c.o_bias, c.quant);
        L.gate = load_linear(s, p + "mlp.gate_proj", H, I, false, c.quant);
        L.up = load_linear(s, p + "mlp.up_proj", H, I, false, c.quant);
        L.down = load_linear(s, p + "mlp.down_proj", I, H, false, c.quant);
    }
    if (c.tie_word_embeddings || !s.find("lm_head.weight")) {
        if (!c.tie_word_embeddings && !s.find("lm_head.qweight"))
            fail(GPTQ_ERR_FORMAT, "missing tensor lm_head.weight in %s (and tie_word_embeddings is false)", dir.c_str());
    }
    if (c.tie_word_embeddings) {
        m->lm_head.name = "lm_head";
        m->lm_head.in = H;
        m->lm_head.out = c.vocab_size;
        m->lm_head.weight = m->embed;
    } else {
        m->lm_head = load_linear(s, "lm_head", H, c.vocab_size, false, c.quant);
    }
    return m;
}

int64_t Model::n_params() const {
    const ModelConfig &c = cfg;
    const int64_t H = c.hidden_size, I = c.intermediate_size;
    const int64_t QD = int64_t(c.n_heads) * c.head_dim, KVD = int64_t(c.n_kv_heads) * c.head_dim;
    int64_t per_layer = 2 * H + H * QD * 2 + H * KVD * 2 + 3 * H * I;
    int64_t n = int64_t(c.vocab_size) * H + H + per_layer * c.n_layers;
    if (!c.tie_word_embeddings) n += int64_t(c.vocab_size) * H;
    return n;
}

} // namespace gptq
