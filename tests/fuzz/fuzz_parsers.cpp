// fuzz_parsers.cpp — libFuzzer target for the file parsers that read untrusted input.
//
// The first byte picks the parser (the rest of the input is the file):
//   0  SafetensorsFile::parse
//   1  parse_model_config (config.json)
//   2  parse_model_config with quantize_config.json: config text, a NUL byte, quantize_config text
//   3  BpeTokenizer::parse (tokenizer.json), then encoding and decoding a fixed text with it
//   4  text through the Llama 3- and Qwen2-shaped fixture tokenizers: decoding gives the text back
// A parser may refuse any input with gptq::Error; anything else — a crash, a sanitizer report, another
// exception type, or a result that breaks the invariants checked below — is a bug.
#include "bpe_tokenizer.h"
#include "config.h"
#include "safetensors.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <cstring>
#include <string>
#include <vector>

using namespace gptq;

namespace {

// Aborts (libFuzzer reports it, with the input) when an invariant is broken.
#define FUZZ_ASSERT(cond) do { if (!(cond)) __builtin_trap(); } while (0)

void check_safetensors(const uint8_t *data, size_t size) {
    auto f = SafetensorsFile::parse(data, size, "fuzz.safetensors");
    const uint8_t *end = data + size;
    const uint8_t *prev_end = nullptr;
    std::vector<float> scratch;
    for (const TensorView &t : f->tensors()) {
        FUZZ_ASSERT(!t.name.empty());
        FUZZ_ASSERT(f->find(t.name) == &t);
        FUZZ_ASSERT(dtype_size(t.dtype) > 0);
        int64_t n = t.numel();
        FUZZ_ASSERT(n >= 0);
        FUZZ_ASSERT(t.nbytes == size_t(n) * dtype_size(t.dtype));
        // every view lies inside the data section, and (in file order) none overlaps the one before
        FUZZ_ASSERT(t.data >= data + 8 && t.data <= end && size_t(end - t.data) >= t.nbytes);
        if (t.nbytes) {
            if (prev_end) FUZZ_ASSERT(t.data >= prev_end);
            prev_end = t.data + t.nbytes;
        }
        (void)t.shape_str();
        // Read every byte (ASan sees any overrun of the fuzzer's buffer); bounded to stay fast.
        bool floating = t.dtype == DType::F32 || t.dtype == DType::F16 || t.dtype == DType::BF16 || t.dtype == DType::F64;
        if (floating && n <= (1 << 16)) {
            scratch.resize(size_t(n) + 1);
            tensor_to_f32(t, scratch.data());
        } else if (!floating) {
            try {
                tensor_to_f32(t, nullptr);
                FUZZ_ASSERT(false);  // non-float dtypes must be refused before touching dst
            } catch (const Error &e) {
                FUZZ_ASSERT(e.status() == GPTQ_ERR_UNSUPPORTED);
            }
        }
    }
}

void check_config(const std::string &config, const std::string &quant) {
    ModelConfig c = parse_model_config(config, "fuzz/config.json", quant);
    FUZZ_ASSERT(c.architecture == "llama" || c.architecture == "mistral" || c.architecture == "qwen2");
    FUZZ_ASSERT(c.hidden_size > 0 && c.n_layers > 0 && c.vocab_size > 0 && c.intermediate_size > 0);
    FUZZ_ASSERT(c.n_heads > 0 && c.n_kv_heads > 0 && c.n_heads % c.n_kv_heads == 0);
    FUZZ_ASSERT(c.head_dim > 0 && c.head_dim % 2 == 0);
    FUZZ_ASSERT(c.max_position_embeddings > 0 && c.rope_theta > 0 && c.rms_norm_eps > 0);
    FUZZ_ASSERT(c.bos_token < c.vocab_size);
    for (int e : c.eos_tokens) FUZZ_ASSERT(e >= 0 && e < c.vocab_size);
    if (c.quant.present) {
        const QuantConfig &q = c.quant;
        FUZZ_ASSERT(q.bits == 2 || q.bits == 3 || q.bits == 4 || q.bits == 8);
        FUZZ_ASSERT(q.group_size == -1 || q.group_size > 0);
        FUZZ_ASSERT(q.format == 1 || q.format == 2);
        // what the writer emits must read back as the same settings
        QuantConfig r = parse_model_config(config, "fuzz/config.json", quant_config_json(q)).quant;
        FUZZ_ASSERT(r.present && r.bits == q.bits && r.group_size == q.group_size && r.sym == q.sym &&
                    r.desc_act == q.desc_act && r.static_groups == q.static_groups &&
                    r.true_sequential == q.true_sequential && r.format == q.format && r.lm_head == q.lm_head);
    }
}

void check_ids(const BpeTokenizer &t, const std::vector<int> &ids) {
    for (int id : ids) FUZZ_ASSERT(id >= 0 && id < t.vocab_size());
}

void check_tokenizer_json(const std::string &text) {
    auto t = BpeTokenizer::parse(text, "fuzz/tokenizer.json");
    FUZZ_ASSERT(t->vocab_size() > 0);
    const std::vector<int> ids = t->encode("Hello <|eot_id|> world 12345 \xc3\xa9\xe4\xb8\xad  \n\n x");
    check_ids(*t, ids);
    for (int id : ids) (void)t->token_bytes(id);
    for (int id = 0; id < std::min(t->vocab_size(), 64); ++id) (void)t->token_bytes(id);
    (void)t->decode(ids.data(), ids.size());  // through the file's decoder steps
}

// Byte-level BPE without a prefix space or normalizer is lossless: any text comes back as its valid
// UTF-8. With Qwen2's NFC normalizer, the ids stay in range and decode.
void check_encoding(const std::string &text) {
    static std::unique_ptr<BpeTokenizer> t =
        BpeTokenizer::parse(read_file(GPTQ_FUZZ_BPE_DIR "/llama3/tokenizer.json"), "llama3 fixture");
    static std::unique_ptr<BpeTokenizer> nfc =
        BpeTokenizer::parse(read_file(GPTQ_FUZZ_BPE_DIR "/qwen2/tokenizer.json"), "qwen2 fixture");
    const std::vector<int> ids = t->encode(text);
    check_ids(*t, ids);
    std::string bytes;
    for (int id : ids) bytes += t->token_bytes(id);  // an added token's bytes are its content
    FUZZ_ASSERT(bytes == utf8_lossy(text));
    const std::vector<int> nids = nfc->encode(text);
    check_ids(*nfc, nids);
    for (int id : nids) (void)nfc->token_bytes(id);
    // The SentencePiece-style file (Llama 2's form, byte fallback) is lossless too, for text with
    // no "\u2581" (which decodes as a space) and no special-token string (which decodes to nothing).
    static std::unique_ptr<BpeTokenizer> spm =
        BpeTokenizer::parse(read_file(GPTQ_FUZZ_BPE_DIR "/llama2/tokenizer.json"), "llama2 fixture");
    const std::vector<int> sids = spm->encode(text);
    check_ids(*spm, sids);
    const std::string back = spm->decode(sids.data(), sids.size());
    bool plain = true;
    for (const char *s : {"\xe2\x96\x81", "<unk>", "<s>", "</s>"}) plain = plain && text.find(s) == std::string::npos;
    if (plain) FUZZ_ASSERT(back == utf8_lossy(text));
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const uint8_t mode = data[0] % 5;
    data++;
    size--;
    try {
        if (mode == 0) {
            check_safetensors(data, size);
        } else if (mode == 1) {
            check_config(std::string(reinterpret_cast<const char *>(data), size), "");
        } else if (mode == 3) {
            check_tokenizer_json(std::string(reinterpret_cast<const char *>(data), size));
        } else if (mode == 4) {
            check_encoding(std::string(reinterpret_cast<const char *>(data), size));
        } else {
            const char *p = reinterpret_cast<const char *>(data);
            const void *nul = std::memchr(p, 0, size);
            size_t cut = nul ? size_t(static_cast<const char *>(nul) - p) : size;
            std::string config(p, cut), quant = cut < size ? std::string(p + cut + 1, size - cut - 1) : "";
            check_config(config, quant);
        }
    } catch (const Error &) {
        // a refusal: fine
    }
    return 0;
}
