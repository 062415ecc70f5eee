// tokenizer.h — the model's tokenizer, SentencePiece (tokenizer.model) or Hugging Face BPE
// (tokenizer.json, byte-level or SentencePiece-style; bpe_tokenizer.h), and streaming
// detokenization.
#pragma once

#include "common.h"

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sentencepiece { class SentencePieceProcessor; }

namespace gptq {

struct ModelConfig;
class BpeTokenizer;

class Tokenizer {
public:
    // Loads dir/tokenizer.model, or dir/tokenizer.json where there is no tokenizer.model. Throws
    // IO/FORMAT/UNSUPPORTED with a clear message (no tokenizer file, a corrupt one, a tokenizer.json
    // this version cannot follow exactly). BOS/EOS come from cfg.bos_token / cfg.eos_tokens[0] when
    // set, else from the SentencePiece model (-1 when it has none, and for tokenizer.json).
    static std::unique_ptr<Tokenizer> load(const std::string &dir, const ModelConfig &cfg);
    // From a serialized model proto in memory (tests). bos/eos < 0: the model's own ids.
    static std::unique_ptr<Tokenizer> from_serialized(const std::string &proto, int bos, int eos);
    // From tokenizer.json text; origin names it in messages. bos/eos < 0: none.
    static std::unique_ptr<Tokenizer> from_json(const std::string &json, int bos, int eos,
                                                const std::string &origin = "tokenizer.json");
    ~Tokenizer();

    // SentencePiece encoding with the model's own normalizer options, or tokenizer.json's (added
    // tokens such as "<|eot_id|>" in the text become their ids); BOS first when add_bos and the
    // tokenizer has one.
    std::vector<int> encode(std::string_view text, bool add_bos) const;
    // SentencePiece decoding: drops the leading-space marker of the first piece, skips control
    // tokens (BOS/EOS decode to nothing, UNK to " ⁇ "), resolves byte pieces (invalid UTF-8
    // becomes U+FFFD). tokenizer.json: special tokens skipped, the rest through the file's decoder
    // (BpeTokenizer::decode). An id outside [0, vocab_size()) is Error(INVALID_ARG) naming it.
    std::string decode(const int *ids, size_t n) const;
    std::string decode(const std::vector<int> &ids) const { return decode(ids.data(), ids.size()); }
    std::string piece(int id) const;  // raw piece text, e.g. "▁the" or "Ġthe"; INVALID_ARG when out of range
    int vocab_size() const;
    int bos() const { return bos_; }
    int eos() const { return eos_; }
    // The byte a byte-fallback piece ("<0xE6>") stands for, or -1 for any other piece (and for
    // every piece of a byte-level tokenizer.json).
    int byte_value(int id) const;
    bool is_control(int id) const;  // BOS, EOS and other control pieces (decode to nothing)
    bool is_bpe() const { return bpe_ != nullptr; }

private:
    friend class StreamDecoder;
    Tokenizer();
    // The builder behind load() and from_serialized(); origin names the model in messages.
    static std::unique_ptr<Tokenizer> create(const std::string &proto, int bos, int eos,
                                             const std::string &origin);
    void check_id(int id) const;   // Error(INVALID_ARG) naming an out-of-range id
    std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;  // one of these two
    std::unique_ptr<BpeTokenizer> bpe_;
    int bos_ = -1, eos_ = -1;
    std::vector<int16_t> byte_of_;  // byte_value() per id
    // A piece that decodes to itself, starts no word and is no byte (e.g. "e"), and its text:
    // StreamDecoder puts it before a decoding window to stand for "text already precedes".
    int plain_id_ = -1;
    std::string plain_text_;
};

// Turns a stream of generated ids into text a piece at a time, emitting only whole UTF-8
// characters and giving the first generated piece the right leading space: the text after a
// prompt is decode(prompt + generated) minus decode(prompt). (When decode(prompt) is not a
// prefix of decode(prompt + generated) — a prompt ending inside a byte-encoded character that
// the generation completes — the text is decode(generated) alone.)
//
// Cost per push is constant: only the ids since the last emission are decoded (see
// tokenizer.cpp), not the whole sequence.
class StreamDecoder {
public:
    StreamDecoder(const Tokenizer &tok, std::vector<int> prompt_ids);
    // Adds one id; returns the newly completed text (possibly empty). INVALID_ARG when the id is
    // outside the vocabulary.
    std::string push(int id);
    // Whatever is still held back (an incomplete UTF-8 sequence at the very end), decoded as
    // SentencePiece does (each stray byte becomes U+FFFD). Meant for the end of the stream.
    std::string flush();
    const std::string &text() const { return emitted_; }  // everything emitted so far

private:
    bool ends_inside_character() const;
    std::string commit();        // emits the text of ids_[committed_..], moves committed_ to the end
    std::string exact_tail() const;

    const Tokenizer &tok_;
    std::vector<int> ids_;       // the sequence being decoded: prompt + generated
    size_t prompt_len_ = 0;      // ids of ids_ that belong to the prompt
    std::string prompt_text_;    // decode(prompt)
    bool prompt_settled_ = true; // false while the prompt's last character may still change
    size_t committed_ = 0;       // ids_[0..committed_) are accounted for in prompt_text_ + emitted_
    std::string emitted_;
};

} // namespace gptq
