// tokenizer.cpp — SentencePiece tokenizer over libsentencepiece, tokenizer.json through
// BpeTokenizer, and streaming detokenization.
#include "tokenizer.h"
#include "bpe_tokenizer.h"
#include "config.h"

#include <sentencepiece_processor.h>

#include <cctype>
#include <cstdio>

namespace gptq {

static const char kWordStart[] = "\xe2\x96\x81";  // U+2581, SentencePiece's word-start marker

static bool starts_with(const std::string &s, const std::string &prefix) {
    return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

// Byte-fallback pieces are spelled "<0xHH>".
static int parse_byte_piece(const std::string &p) {
    unsigned v = 0;
    if (p.size() == 6 && p.compare(0, 3, "<0x") == 0 && p[5] == '>' &&
        std::sscanf(p.c_str() + 3, "%2x", &v) == 1)
        return int(v);
    return -1;
}

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;

std::unique_ptr<Tokenizer> Tokenizer::load(const std::string &dir, const ModelConfig &cfg) {
    const std::string model_path = path_join(dir, "tokenizer.model");
    const int eos = cfg.eos_tokens.empty() ? -1 : cfg.eos_tokens[0];
    if (!file_exists(model_path)) {  // SentencePiece first: a model with both reads tokenizer.model
        const std::string json_path = path_join(dir, "tokenizer.json");
        if (file_exists(json_path)) return from_json(read_file(json_path), cfg.bos_token, eos, json_path);
        fail(GPTQ_ERR_IO, "%s has neither tokenizer.model nor tokenizer.json: a tokenizer is needed", dir.c_str());
    }
    const std::string proto = read_file(model_path);  // Error(IO) naming the path
    return create(proto, cfg.bos_token, eos, model_path);
}

std::unique_ptr<Tokenizer> Tokenizer::from_json(const std::string &json, int bos, int eos, const std::string &origin) {
    std::unique_ptr<Tokenizer> t(new Tokenizer);
    t->bpe_ = BpeTokenizer::parse(json, origin);
    const int n = t->bpe_->vocab_size();
    t->bos_ = bos >= 0 ? bos : -1;
    t->eos_ = eos >= 0 ? eos : -1;
    if (t->bos_ >= n) fail(GPTQ_ERR_FORMAT, "bos_token_id %d is outside the %d ids of %s", t->bos_, n, origin.c_str());
    if (t->eos_ >= n) fail(GPTQ_ERR_FORMAT, "eos_token_id %d is outside the %d ids of %s", t->eos_, n, origin.c_str());
    t->byte_of_.resize(size_t(n));  // byte-fallback tokens ("<0xE6>"); a byte-level tokenizer has none
    for (int id = 0; id < n; ++id) t->byte_of_[size_t(id)] = int16_t(t->bpe_->byte_value(id));
    // StreamDecoder's stand-in for "text precedes": a token that decodes to one ASCII letter (and,
    // after text, to that letter too: no leading-space marker to strip).
    for (int id = 0; id < n && t->plain_id_ < 0; ++id) {
        if (t->bpe_->is_special(id)) continue;
        const std::string b = t->bpe_->decode(&id, 1);
        if (b.size() == 1 && std::isalpha(static_cast<unsigned char>(b[0])) &&
            (t->bpe_->byte_level() || t->bpe_->piece(id) == b)) {
            t->plain_id_ = id;
            t->plain_text_ = b;
        }
    }
    return t;
}

std::unique_ptr<Tokenizer> Tokenizer::from_serialized(const std::string &proto, int bos, int eos) {
    return create(proto, bos, eos, "serialized SentencePiece model");
}

std::unique_ptr<Tokenizer> Tokenizer::create(const std::string &proto, int bos, int eos,
                                             const std::string &origin) {
    std::unique_ptr<Tokenizer> t(new Tokenizer);
    t->sp_.reset(new sentencepiece::SentencePieceProcessor);
    auto st = t->sp_->LoadFromSerializedProto(proto);
    if (!st.ok())
        fail(GPTQ_ERR_FORMAT, "%s is not a valid SentencePiece model (%s)", origin.c_str(), st.ToString().c_str());
    const int n = t->sp_->GetPieceSize();
    if (n <= 0) fail(GPTQ_ERR_FORMAT, "%s has no pieces", origin.c_str());

    // The configuration's special ids win; the model's own are the fallback.
    t->bos_ = bos >= 0 ? bos : t->sp_->bos_id();
    t->eos_ = eos >= 0 ? eos : t->sp_->eos_id();
    if (t->bos_ >= n)
        fail(GPTQ_ERR_FORMAT, "bos_token_id %d is outside the %d pieces of %s", t->bos_, n, origin.c_str());
    if (t->eos_ >= n)
        fail(GPTQ_ERR_FORMAT, "eos_token_id %d is outside the %d pieces of %s", t->eos_, n, origin.c_str());

    t->byte_of_.assign(size_t(n), -1);
    for (int id = 0; id < n; ++id) {
        if (t->sp_->IsByte(id)) t->byte_of_[size_t(id)] = int16_t(parse_byte_piece(t->sp_->IdToPiece(id)));
    }
    // A piece that is ordinary text, not a word start: its decoding is its own spelling.
    for (int id = 0; id < n && t->plain_id_ < 0; ++id) {
        if (t->sp_->IsControl(id) || t->sp_->IsUnknown(id) || t->sp_->IsUnused(id) || t->sp_->IsByte(id))
            continue;
        const std::string &p = t->sp_->IdToPiece(id);
        if (p.empty() || p.find(kWordStart) != std::string::npos) continue;
        std::string text;
        if (t->sp_->Decode(std::vector<int>{id}, &text).ok() && text == p) {
            t->plain_id_ = id;
            t->plain_text_ = text;
        }
    }
    return t;
}

void Tokenizer::check_id(int id) const {
    if (id < 0 || id >= vocab_size())
        fail(GPTQ_ERR_INVALID_ARG, "token id %d is outside the tokenizer's vocabulary [0, %d)", id, vocab_size());
}

int Tokenizer::vocab_size() const { return int(byte_of_.size()); }

int Tokenizer::byte_value(int id) const {
    return id >= 0 && id < vocab_size() ? byte_of_[size_t(id)] : -1;
}

bool Tokenizer::is_control(int id) const {
    if (bpe_) return bpe_->is_special(id);
    return id >= 0 && id < vocab_size() && sp_->IsControl(id);
}

std::string Tokenizer::piece(int id) const {
    check_id(id);  // SentencePiece itself aborts on an out-of-range id
    return bpe_ ? bpe_->piece(id) : sp_->IdToPiece(id);
}

std::vector<int> Tokenizer::encode(std::string_view text, bool add_bos) const {
    std::vector<int> ids;
    if (bpe_) {
        ids = bpe_->encode(text);
    } else {
        auto st = sp_->Encode(absl::string_view(text.data(), text.size()), &ids);
        if (!st.ok()) fail(GPTQ_ERR_INVALID_ARG, "cannot tokenize the text: %s", st.ToString().c_str());
    }
    if (add_bos && bos_ >= 0) ids.insert(ids.begin(), bos_);
    return ids;
}

std::string Tokenizer::decode(const int *ids, size_t n) const {
    if (n == 0) return {};
    if (!ids) fail(GPTQ_ERR_INVALID_ARG, "decode: no ids given for %zu tokens", n);
    for (size_t i = 0; i < n; ++i) check_id(ids[i]);
    if (bpe_) return bpe_->decode(ids, n);
    std::string text;
    auto st = sp_->Decode(std::vector<int>(ids, ids + n), &text);
    if (!st.ok()) fail(GPTQ_ERR_INTERNAL, "SentencePiece decoding failed: %s", st.ToString().c_str());
    return text;
}

// ------------------------------------------------------------------------------------------------
// StreamDecoder
//
// The text to emit is decode(ids_) minus decode(prompt). Decoding everything again after each id
// would cost O(n) per id, O(n²) per generation; instead each push decodes only a window: the ids
// not yet emitted, ids_[committed_..], behind the tokenizer's plain piece S (e.g. "e"):
//
//     new text = decode([S] + ids_[committed_..]) minus decode([S])
//
// This equals the true increment because SentencePiece decoding is local except in two places,
// both of which S reproduces:
//   - the first word-start marker of the whole text is dropped (while nothing visible precedes);
//     S makes text precede, which is the true situation once the prompt or the emitted text is
//     non-empty. While both are empty the whole sequence is decoded instead (exact_tail).
//   - consecutive byte pieces are joined before UTF-8 decoding; S ends any run, so the window must
//     never start inside a character: push() only commits when the trailing byte pieces cannot be
//     the beginning of a longer character (ends_inside_character), so committed_ is always a
//     character boundary of the joined bytes.
// Tests compare the stream against decode() of the whole sequence on random id sequences.

StreamDecoder::StreamDecoder(const Tokenizer &tok, std::vector<int> prompt_ids)
    : tok_(tok), ids_(std::move(prompt_ids)) {
    prompt_text_ = tok_.decode(ids_);  // checks every id
    prompt_len_ = committed_ = ids_.size();
    prompt_settled_ = !ends_inside_character();
}

// True when the byte pieces at the end of ids_ may be the first bytes of a multi-byte UTF-8
// character still missing its continuation bytes. Deliberately loose (any lead byte followed by
// fewer continuation bytes than it announces): holding back a little too often is harmless.
bool StreamDecoder::ends_inside_character() const {
    int last[3];  // last[0] is the final byte
    int n = 0;
    for (size_t i = ids_.size(); i > 0 && n < 3; --i) {
        if (tok_.bpe_ && !tok_.bpe_->byte_level()) {
            // ByteFallback joins a whole run of byte tokens, and a run that is not valid UTF-8
            // decodes to one U+FFFD per byte: hold while the run may go on.
            if (tok_.bpe_->is_special(ids_[i - 1])) continue;
            return tok_.byte_value(ids_[i - 1]) >= 0;
        }
        if (tok_.bpe_) {  // every token's bytes count (special tokens decode to nothing)
            if (tok_.bpe_->is_special(ids_[i - 1])) continue;
            const std::string &b = tok_.bpe_->token_bytes(ids_[i - 1]);
            for (size_t k = b.size(); k > 0 && n < 3; --k) last[n++] = static_cast<unsigned char>(b[k - 1]);
            continue;
        }
        const int b = tok_.byte_value(ids_[i - 1]);
        if (b < 0) break;
        last[n++] = b;
    }
    for (int k = 1; k <= n; ++k) {  // the last k bytes: a lead byte, then k-1 continuation bytes
        const int lead = last[k - 1];
        const int need = lead >= 0xF0 && lead <= 0xF7 ? 4 : lead >= 0xE0 && lead <= 0xEF ? 3
                       : lead >= 0xC0 && lead <= 0xDF ? 2 : 0;
        if (k >= need) continue;
        bool continuation = true;
        for (int j = 0; j < k - 1; ++j) continuation = continuation && (last[j] & 0xC0) == 0x80;
        if (continuation) return true;
    }
    return false;
}

std::string StreamDecoder::push(int id) {
    tok_.check_id(id);
    ids_.push_back(id);
    if (ends_inside_character()) return {};
    return commit();
}

std::string StreamDecoder::flush() { return commit(); }

// decode(ids_) minus what is already accounted for, by decoding everything.
std::string StreamDecoder::exact_tail() const {
    const std::string full = tok_.decode(ids_);
    const std::string known = prompt_text_ + emitted_;
    if (starts_with(full, known)) return full.substr(known.size());
    // Unreachable when committed_ is a stable boundary (see above); never emit garbage.
    log_msg(GPTQ_LOG_WARN, "stream decoder: decoded text changed before the last emission; skipping");
    return {};
}

std::string StreamDecoder::commit() {
    if (committed_ == ids_.size()) return {};
    std::string add;
    if (!prompt_settled_) {
        // The prompt ended inside a character; now that it is complete, see whether its text held.
        const std::string full = tok_.decode(ids_);
        if (starts_with(full, prompt_text_)) {
            add = full.substr(prompt_text_.size());
        } else {  // the generation changed the prompt's last character: decode the generation alone
            ids_.erase(ids_.begin(), ids_.begin() + std::ptrdiff_t(prompt_len_));
            prompt_len_ = 0;
            prompt_text_.clear();
            add = tok_.decode(ids_);
        }
        prompt_settled_ = true;
    } else if (tok_.plain_id_ >= 0 && !(prompt_text_.empty() && emitted_.empty())) {
        std::vector<int> window;
        window.reserve(1 + ids_.size() - committed_);
        window.push_back(tok_.plain_id_);
        window.insert(window.end(), ids_.begin() + std::ptrdiff_t(committed_), ids_.end());
        const std::string text = tok_.decode(window);
        add = starts_with(text, tok_.plain_text_) ? text.substr(tok_.plain_text_.size()) : exact_tail();
    } else {
        add = exact_tail();
    }
    committed_ = ids_.size();
    emitted_ += add;
    return add;
}

} // namespace gptq
