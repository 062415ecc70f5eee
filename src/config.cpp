// config.cpp — config.json (+ quantize_config.json, generation_config.json, tokenizer_config.json).
//
// Defaults follow transformers' LlamaConfig / MistralConfig / Qwen2Config, so a config that leaves
// a field out means what it means there. Every field is type- and range-checked before use; a
// setting that would change the model's math in a way this library does not implement is refused
// (UNSUPPORTED, naming the field) rather than silently ignored.
#include "config.h"

#include "json_describe.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>

namespace gptq {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

namespace {

// Upper bounds far above any real model, low enough that products of two of them stay well
// inside int64 and that a lying config cannot make a loader allocate absurd buffers.
constexpr int kMaxHidden = 1 << 18;
constexpr int kMaxIntermediate = 1 << 21;
constexpr int kMaxVocab = 1 << 24;
constexpr int kMaxLayers = 1 << 12;
constexpr int kMaxHeads = 1 << 12;
constexpr int kMaxHeadDim = 1 << 12;
constexpr int kMaxPositions = 1 << 30;

const char *const kSupported = "llama, mistral, qwen2";

json parse_json(const std::string &text, const std::string &origin) {
    json j;
    try {
        j = json::parse(text);
    } catch (const json::exception &e) {
        fail(GPTQ_ERR_FORMAT, "%s: not valid JSON: %s", origin.c_str(), e.what());
    }
    if (!j.is_object()) fail(GPTQ_ERR_FORMAT, "%s: is %s, not a JSON object", origin.c_str(), json_describe(j).c_str());
    return j;
}

// Typed, range-checked access to one JSON object's fields. A field set to null counts as absent
// (transformers treats None as "use the default"). Messages read "<origin>: <prefix><key> ...".
class Fields {
public:
    Fields(const json &obj, std::string origin, std::string prefix = "")
        : obj_(obj), origin_(std::move(origin)), prefix_(std::move(prefix)) {}

    const json *get(const char *key) const {
        auto it = obj_.find(key);
        return it == obj_.end() || it->is_null() ? nullptr : &*it;
    }
    bool has(const char *key) const { return get(key) != nullptr; }

    [[noreturn]] void bad(gptq_status st, const char *key, const std::string &what) const {
        fail(st, "%s: %s%s %s", origin_.c_str(), prefix_.c_str(), key, what.c_str());
    }

    int64_t to_int(const char *key, const json &v) const {
        if (v.is_number_unsigned()) {
            uint64_t u = v.get<uint64_t>();
            if (u > uint64_t(INT64_MAX)) bad(GPTQ_ERR_FORMAT, key, strprintf("%llu is out of range", (unsigned long long)u));
            return int64_t(u);
        }
        if (v.is_number_integer()) return v.get<int64_t>();
        if (v.is_number_float()) {  // 4096.0 is an integer written oddly; 0.5 is not
            double d = v.get<double>();
            if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15) return int64_t(d);
        }
        bad(GPTQ_ERR_FORMAT, key, "must be an integer, found " + json_describe(v));
    }
    int int_in(const char *key, const json &v, int64_t lo, int64_t hi) const {
        int64_t x = to_int(key, v);
        if (x < lo || x > hi)
            bad(GPTQ_ERR_FORMAT, key, strprintf("%lld is out of range [%lld, %lld]", (long long)x, (long long)lo, (long long)hi));
        return int(x);
    }
    int req_int(const char *key, int64_t lo, int64_t hi) const {
        const json *v = get(key);
        if (!v) fail(GPTQ_ERR_FORMAT, "%s: missing field %s%s", origin_.c_str(), prefix_.c_str(), key);
        return int_in(key, *v, lo, hi);
    }
    int opt_int(const char *key, int def, int64_t lo, int64_t hi) const {
        const json *v = get(key);
        return v ? int_in(key, *v, lo, hi) : def;
    }
    double opt_num(const char *key, double def) const {
        const json *v = get(key);
        if (!v) return def;
        if (!v->is_number() || !std::isfinite(v->get<double>()))
            bad(GPTQ_ERR_FORMAT, key, "must be a number, found " + json_describe(*v));
        return v->get<double>();
    }
    bool opt_bool(const char *key, bool def) const {
        const json *v = get(key);
        if (!v) return def;
        if (!v->is_boolean()) bad(GPTQ_ERR_FORMAT, key, "must be true or false, found " + json_describe(*v));
        return v->get<bool>();
    }
    std::string opt_str(const char *key, const std::string &def) const {
        const json *v = get(key);
        if (!v) return def;
        if (!v->is_string()) bad(GPTQ_ERR_FORMAT, key, "must be a string, found " + json_describe(*v));
        return v->get<std::string>();
    }
    const json *opt_obj(const char *key) const {
        const json *v = get(key);
        if (v && !v->is_object()) bad(GPTQ_ERR_FORMAT, key, "must be an object, found " + json_describe(*v));
        return v;
    }
    const std::string &origin() const { return origin_; }
    const std::string &prefix() const { return prefix_; }

private:
    const json &obj_;
    std::string origin_, prefix_;
};

// Token ids: an int, a list of ints, or null. Returns false when absent.
bool token_ids(const Fields &f, const char *key, std::vector<int> *out) {
    const json *v = f.get(key);
    if (!v) return false;
    out->clear();
    if (v->is_array()) {
        for (const json &e : *v) {
            int id = f.int_in(key, e, 0, INT32_MAX);
            if (std::find(out->begin(), out->end(), id) == out->end()) out->push_back(id);
        }
    } else {
        out->push_back(f.int_in(key, *v, 0, INT32_MAX));
    }
    return true;
}

// A RoPE parameter object (rope_parameters or rope_scaling): only the plain rotation is
// implemented; linear/dynamic/yarn/longrope/llama3 rescale frequencies and are refused.
void check_rope_object(const Fields &top, const std::string &key, const json &r, double *theta, bool outer = true) {
    // transformers >= 5 may give one parameter set per layer type: {"full_attention": {...}, ...}
    // (one level only: the recursion must not follow an arbitrarily deep hostile file)
    for (auto it = r.begin(); it != r.end(); ++it) {
        if (!it.value().is_object()) continue;
        if (!outer) fail(GPTQ_ERR_FORMAT, "%s: %s.%s is an unexpected object", top.origin().c_str(), key.c_str(), it.key().c_str());
        check_rope_object(top, key + "." + it.key(), it.value(), theta, false);
    }
    Fields f(r, top.origin(), key + ".");
    std::string type = "default";
    if (f.has("rope_type")) type = f.opt_str("rope_type", "default");
    else if (f.has("type")) type = f.opt_str("type", "default");
    if (type != "default")
        fail(GPTQ_ERR_UNSUPPORTED, "%s: %s.rope_type \"%s\" changes the rotary embedding and is not supported "
             "(only \"default\")", top.origin().c_str(), key.c_str(), type.c_str());
    if (f.opt_num("partial_rotary_factor", 1.0) != 1.0)
        fail(GPTQ_ERR_UNSUPPORTED, "%s: %s.partial_rotary_factor is not supported (only 1.0)", top.origin().c_str(), key.c_str());
    if (f.has("rope_theta")) *theta = f.opt_num("rope_theta", *theta);
}

QuantConfig parse_quant(const json &q, const std::string &origin, const std::string &prefix) {
    Fields f(q, origin, prefix);
    QuantConfig c;
    c.present = true;
    std::string method = f.opt_str("quant_method", "gptq");
    std::transform(method.begin(), method.end(), method.begin(), [](unsigned char ch) { return char(std::tolower(ch)); });
    if (method != "gptq")
        f.bad(GPTQ_ERR_UNSUPPORTED, "quant_method",
              "\"" + method + "\" is not supported: only GPTQ checkpoints (quant_method \"gptq\") can be read");
    c.bits = f.req_int("bits", INT32_MIN, INT32_MAX);
    if (c.bits != 2 && c.bits != 3 && c.bits != 4 && c.bits != 8)
        f.bad(GPTQ_ERR_UNSUPPORTED, "bits", strprintf("%d is not supported (2, 3, 4 or 8)", c.bits));
    c.group_size = f.opt_int("group_size", 128, INT32_MIN, INT32_MAX);
    if (c.group_size != -1 && c.group_size <= 0)
        f.bad(GPTQ_ERR_FORMAT, "group_size", strprintf("%d must be -1 (one group per column) or positive", c.group_size));
    c.sym = f.opt_bool("sym", true);
    c.desc_act = f.opt_bool("desc_act", false);
    c.static_groups = f.opt_bool("static_groups", false);
    c.true_sequential = f.opt_bool("true_sequential", true);
    double damp = f.opt_num("damp_percent", 0.01);
    if (damp < 0 || damp > 1) f.bad(GPTQ_ERR_FORMAT, "damp_percent", strprintf("%g is outside [0, 1]", damp));
    c.damp_percent = float(damp);
    // GPTQModel writes checkpoint_format; some of its versions write format instead.
    const char *fmt_key = f.has("checkpoint_format") ? "checkpoint_format" : "format";
    std::string fmt = f.opt_str(fmt_key, "gptq");
    if (fmt == "gptq") c.format = 1;
    else if (fmt == "gptq_v2") c.format = 2;
    else f.bad(GPTQ_ERR_UNSUPPORTED, fmt_key, "\"" + fmt + "\" is not supported (\"gptq\" or \"gptq_v2\")");
    c.lm_head = f.opt_bool("lm_head", false);
    // Per-module overrides (GPTQModel's "dynamic") would change bits or groups layer by layer.
    if (const json *d = f.get("dynamic"))
        if (!(d->is_object() || d->is_array()) || !d->empty())
            f.bad(GPTQ_ERR_UNSUPPORTED, "dynamic", "(per-module quantization overrides) is not supported");
    return c;
}

std::string dir_of(const std::string &path) {
    size_t slash = path.rfind('/');
    return slash == std::string::npos ? "" : path.substr(0, slash);
}

void check_token(const std::string &origin, const char *what, int id, int vocab) {
    if (id >= vocab)
        fail(GPTQ_ERR_FORMAT, "%s: %s %d is outside the vocabulary (vocab_size %d)", origin.c_str(), what, id, vocab);
}

} // namespace

ModelConfig parse_model_config(const std::string &config_json, const std::string &origin,
                               const std::string &quantize_config_json) {
    const json j = parse_json(config_json, origin);
    const Fields f(j, origin);
    const char *o = origin.c_str();
    ModelConfig c;
    c.raw_config_json = config_json;

    // --- architecture: model_type, or failing that the class name in architectures
    std::string arch;
    std::string arch_class;
    if (const json *a = f.get("architectures")) {
        if (!a->is_array() || a->empty() || !(*a)[0].is_string())
            f.bad(GPTQ_ERR_FORMAT, "architectures", "must be a list of class names, found " + json_describe(*a));
        arch_class = (*a)[0].get<std::string>();
    }
    if (f.has("model_type")) {
        arch = f.opt_str("model_type", "");
    } else if (!arch_class.empty()) {
        if (arch_class == "LlamaForCausalLM") arch = "llama";
        else if (arch_class == "MistralForCausalLM") arch = "mistral";
        else if (arch_class == "Qwen2ForCausalLM") arch = "qwen2";
        else fail(GPTQ_ERR_UNSUPPORTED, "%s: architecture %s is not supported (supported model types: %s)", o,
                  arch_class.c_str(), kSupported);
    } else {
        fail(GPTQ_ERR_FORMAT, "%s: missing field model_type", o);
    }
    if (arch != "llama" && arch != "mistral" && arch != "qwen2")
        fail(GPTQ_ERR_UNSUPPORTED, "%s: model_type \"%s\" is not supported (supported: %s)", o, arch.c_str(), kSupported);
    const size_t suffix = std::string("ForCausalLM").size();
    if (!arch_class.empty() &&
        (arch_class.size() < suffix || arch_class.compare(arch_class.size() - suffix, suffix, "ForCausalLM") != 0))
        fail(GPTQ_ERR_UNSUPPORTED, "%s: architectures %s is not supported (only *ForCausalLM language models)", o,
             arch_class.c_str());
    c.architecture = arch;
    const bool qwen2 = arch == "qwen2", mistral = arch == "mistral";

    // --- sizes
    c.hidden_size = f.req_int("hidden_size", 1, kMaxHidden);
    c.n_layers = f.req_int("num_hidden_layers", 1, kMaxLayers);
    c.n_heads = f.req_int("num_attention_heads", 1, kMaxHeads);
    c.vocab_size = f.req_int("vocab_size", 1, kMaxVocab);
    c.intermediate_size = f.req_int("intermediate_size", 1, kMaxIntermediate);
    c.n_kv_heads = f.opt_int("num_key_value_heads", c.n_heads, 1, kMaxHeads);
    if (c.n_heads % c.n_kv_heads != 0)
        fail(GPTQ_ERR_FORMAT, "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d", o, c.n_heads,
             c.n_kv_heads);
    if (f.has("head_dim")) {
        c.head_dim = f.int_in("head_dim", *f.get("head_dim"), 1, kMaxHeadDim);
    } else {
        if (c.hidden_size % c.n_heads != 0)
            fail(GPTQ_ERR_FORMAT, "%s: hidden_size %d is not divisible by num_attention_heads %d (and no head_dim is given)",
                 o, c.hidden_size, c.n_heads);
        c.head_dim = c.hidden_size / c.n_heads;
    }
    if (c.head_dim % 2 != 0)
        fail(GPTQ_ERR_FORMAT, "%s: head_dim %d is odd; rotary embeddings rotate pairs of dimensions", o, c.head_dim);
    c.max_position_embeddings =
        f.opt_int("max_position_embeddings", qwen2 ? 32768 : mistral ? 4096 * 32 : 2048, 1, kMaxPositions);
    c.rms_norm_eps = float(f.opt_num("rms_norm_eps", 1e-6));
    if (!(c.rms_norm_eps > 0)) f.bad(GPTQ_ERR_FORMAT, "rms_norm_eps", "must be positive");

    // --- activation, biases
    std::string act = f.opt_str("hidden_act", "silu");
    if (act != "silu" && act != "swish")  // transformers maps both names to SiLU
        f.bad(GPTQ_ERR_UNSUPPORTED, "hidden_act", "\"" + act + "\" is not supported (only silu)");
    if (f.opt_bool("mlp_bias", false)) f.bad(GPTQ_ERR_UNSUPPORTED, "mlp_bias", "true is not supported");
    if (qwen2) {
        c.qkv_bias = true;  // Qwen2Attention always has q/k/v biases and no o_proj bias
    } else if (arch == "llama" && f.opt_bool("attention_bias", false)) {
        c.qkv_bias = c.o_bias = true;
    }
    c.tie_word_embeddings = f.opt_bool("tie_word_embeddings", false);

    // --- rotary embedding: rope_parameters (transformers >= 5) or rope_theta + rope_scaling
    c.rope_theta = f.opt_num("rope_theta", 10000.0);
    if (const json *r = f.opt_obj("rope_parameters")) check_rope_object(f, "rope_parameters", *r, &c.rope_theta);
    if (const json *r = f.opt_obj("rope_scaling")) check_rope_object(f, "rope_scaling", *r, &c.rope_theta);
    if (!(c.rope_theta > 0)) f.bad(GPTQ_ERR_FORMAT, "rope_theta", strprintf("%g must be positive", c.rope_theta));
    if (f.opt_num("partial_rotary_factor", 1.0) != 1.0)
        f.bad(GPTQ_ERR_UNSUPPORTED, "partial_rotary_factor", "is not supported (only 1.0)");

    // --- sliding-window attention: harmless only if the window covers every position
    int window = 0;  // 0 = full attention
    if (mistral) {
        // MistralConfig's default is 4096; an explicit null means full attention.
        if (!j.contains("sliding_window")) window = 4096;
        else window = f.opt_int("sliding_window", 0, 1, INT32_MAX);
    } else if (qwen2 && f.opt_bool("use_sliding_window", false)) {
        window = f.opt_int("sliding_window", 4096, 1, INT32_MAX);
    }
    if (const json *lt = f.get("layer_types")) {  // transformers >= 4.53 spells the layers out
        if (!lt->is_array()) f.bad(GPTQ_ERR_FORMAT, "layer_types", "must be a list, found " + json_describe(*lt));
        for (const json &t : *lt) {
            if (!t.is_string()) f.bad(GPTQ_ERR_FORMAT, "layer_types", "must list strings, found " + json_describe(t));
            if (t != "full_attention" && (window == 0 || t != "sliding_attention"))
                f.bad(GPTQ_ERR_UNSUPPORTED, "layer_types", "entry " + json_describe(t) + " is not supported");
        }
    }
    if (window > 0 && window < c.max_position_embeddings)
        fail(GPTQ_ERR_UNSUPPORTED, "%s: sliding_window %d is shorter than max_position_embeddings %d; sliding-window "
             "attention is not supported", o, window, c.max_position_embeddings);

    // --- tokens
    std::vector<int> ids;
    if (token_ids(f, "bos_token_id", &ids)) {
        if (ids.size() != 1) f.bad(GPTQ_ERR_FORMAT, "bos_token_id", "must be a single token id");
        c.bos_token = ids[0];
    }
    token_ids(f, "eos_token_id", &c.eos_tokens);
    c.add_bos = !qwen2;  // Qwen2's tokenizer adds no BOS (tokenizer_config.json may say otherwise)
    if (f.has("torch_dtype")) c.torch_dtype = f.opt_str("torch_dtype", "");
    else if (f.has("dtype")) c.torch_dtype = f.opt_str("dtype", "");  // transformers >= 5 renamed it

    // --- quantization: quantize_config.json wins over config.json's quantization_config
    if (!quantize_config_json.empty()) {
        std::string dir = dir_of(origin);
        std::string qorigin = dir.empty() ? "quantize_config.json" : dir + "/quantize_config.json";
        c.quant = parse_quant(parse_json(quantize_config_json, qorigin), qorigin, "");
    } else if (const json *q = f.opt_obj("quantization_config")) {
        c.quant = parse_quant(*q, origin, "quantization_config.");
    }

    if (c.bos_token >= 0) check_token(origin, "bos_token_id", c.bos_token, c.vocab_size);
    for (int e : c.eos_tokens) check_token(origin, "eos_token_id", e, c.vocab_size);
    return c;
}

ModelConfig load_model_config(const std::string &dir) {
    const std::string config_path = path_join(dir, "config.json");
    const std::string config_text = read_file(config_path);  // IO error naming the path if missing
    std::string quant_text;
    const std::string quant_path = path_join(dir, "quantize_config.json");
    if (file_exists(quant_path)) quant_text = read_file(quant_path);
    ModelConfig c = parse_model_config(config_text, config_path, quant_text);

    // generation_config.json: the ids generation really uses (eos may be a list).
    const std::string gen_path = path_join(dir, "generation_config.json");
    if (file_exists(gen_path)) {
        const json g = parse_json(read_file(gen_path), gen_path);
        const Fields f(g, gen_path);
        std::vector<int> ids;
        if (token_ids(f, "bos_token_id", &ids)) {
            if (ids.size() != 1) f.bad(GPTQ_ERR_FORMAT, "bos_token_id", "must be a single token id");
            check_token(gen_path, "bos_token_id", ids[0], c.vocab_size);
            c.bos_token = ids[0];
        }
        if (token_ids(f, "eos_token_id", &ids)) {
            for (int e : ids) check_token(gen_path, "eos_token_id", e, c.vocab_size);
            c.eos_tokens = ids;
        }
    }

    // tokenizer_config.json: whether to prepend BOS, and the chat template.
    const std::string tok_path = path_join(dir, "tokenizer_config.json");
    if (file_exists(tok_path)) {
        const json t = parse_json(read_file(tok_path), tok_path);
        const Fields f(t, tok_path);
        c.add_bos = f.opt_bool("add_bos_token", c.add_bos);
        if (const json *ct = f.get("chat_template")) {
            if (ct->is_string()) {
                c.chat_template = ct->get<std::string>();
            } else if (ct->is_array()) {  // older files list named templates: take "default"
                for (const json &e : *ct)
                    if (e.is_object() && e.value("name", json()) == "default" && e.contains("template") &&
                        e["template"].is_string())
                        c.chat_template = e["template"].get<std::string>();
            } else {
                f.bad(GPTQ_ERR_FORMAT, "chat_template", "must be a string or a list, found " + json_describe(*ct));
            }
        }
    }
    // transformers >= 4.43 saves the template in its own file.
    const std::string jinja_path = path_join(dir, "chat_template.jinja");
    if (c.chat_template.empty() && file_exists(jinja_path)) c.chat_template = read_file(jinja_path);
    return c;
}

std::string quant_config_json(const QuantConfig &q) {
    ojson j;
    j["bits"] = q.bits;
    j["group_size"] = q.group_size;
    j["desc_act"] = q.desc_act;
    j["static_groups"] = q.static_groups;
    j["sym"] = q.sym;
    j["true_sequential"] = q.true_sequential;
    j["damp_percent"] = std::strtod(strprintf("%.6g", double(q.damp_percent)).c_str(), nullptr);  // 0.01, not 0.0099999998
    j["quant_method"] = "gptq";
    j["checkpoint_format"] = q.format == 2 ? "gptq_v2" : "gptq";
    if (q.lm_head) j["lm_head"] = true;
    return j.dump(2);
}

} // namespace gptq
