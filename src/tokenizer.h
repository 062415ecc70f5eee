// tokenizer.h — SentencePiece tokenizer (tokenizer.model) and streaming detokenization.
//
// Hugging Face tokenizer.json-only models (byte-level BPE) are refused with UNSUPPORTED for now.
#pragma once

#include "common.h"

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sentencepiece { class SentencePieceProcessor; }

namespace gptq {

struct ModelConfig;

class Tokenizer {
public:
    // Loads dir/tokenizer.model. Throws IO/FORMAT/UNSUPPORTED with a clear message (e.g. a missing
    // tokenizer.model, or a directory with only tokenizer.json).
    static std::unique_ptr<Tokenizer> load(const std::string &dir, const ModelConfig &cfg);
    // From a serialized model proto in memory (tests).
    static std::unique_ptr<Tokenizer> from_serialized(const std::string &proto, int bos, int eos);
    ~Tokenizer();

    std::vector<int> encode(std::string_view text, bool add_bos) const;
    // SentencePiece decoding: drops the leading-space marker of the first piece, skips control
    // tokens (BOS/EOS/UNK decode to nothing), resolves byte pieces.
    std::string decode(const int *ids, size_t n) const;
    std::string decode(const std::vector<int> &ids) const { return decode(ids.data(), ids.size()); }
    std::string piece(int id) const;  // raw piece text, e.g. "▁the"
    int vocab_size() const;
    int bos() const { return bos_; }
    int eos() const { return eos_; }

private:
    Tokenizer();
    std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
    int bos_ = -1, eos_ = -1;
};

// Turns a stream of generated ids into text a piece at a time, emitting only whole UTF-8
// characters and giving the first generated piece the right leading space: the text after a
// prompt is decode(prompt + generated) minus decode(prompt).
class StreamDecoder {
public:
    StreamDecoder(const Tokenizer &tok, std::vector<int> prompt_ids);
    // Adds one id; returns the newly completed text (possibly empty).
    std::string push(int id);
    // Whatever is still held back (an incomplete UTF-8 sequence at the very end).
    std::string flush();
    const std::string &text() const { return emitted_; }  // everything emitted so far

private:
    const Tokenizer &tok_;
    std::vector<int> ids_;
    size_t prefix_len_ = 0;   // bytes of decode(prompt)
    std::string emitted_;
};

} // namespace gptq
