// bpe_tokenizer.h — Hugging Face tokenizer.json byte-level BPE (Llama 3, Qwen2, SmolLM, GPT-2).
//
// What it reads: a "BPE" model (vocab, merges as "a b" strings or [a, b] pairs, ignore_merges),
// added tokens (matched in the text before anything else, leftmost and longest first), the
// normalizers NFC / NFKC / NFD / NFKD (Qwen2 has NFC; ICU applies them), a pre-tokenizer made of
// Split (a regex, Isolated), Digits and ByteLevel (GPT-2's pattern when use_regex,
// add_prefix_space), and the ByteLevel decoder. Anything else (other normalizers, byte_fallback,
// subword prefixes, dropout, other pre-tokenizers) is refused with UNSUPPORTED naming it, never
// tokenized differently from the original. Regexes run on PCRE2 with Unicode properties, which
// reads the patterns these files carry (\p{L}, (?i:...), (?!\S)).
#pragma once

#include "common.h"

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace gptq {

// Valid UTF-8: each maximal invalid part of s becomes one U+FFFD (as Rust's from_utf8_lossy, which
// the Hugging Face decoders use).
std::string utf8_lossy(std::string_view s);

class BpeTokenizer {
public:
    // Parses tokenizer.json text; origin names it in messages. FORMAT for malformed files,
    // UNSUPPORTED for parts this reader does not implement.
    static std::unique_ptr<BpeTokenizer> parse(std::string_view json, const std::string &origin);
    ~BpeTokenizer();

    // Text to ids: added tokens first, then pre-tokenizers, byte mapping and merges per piece.
    // Bytes that are not UTF-8 are read as U+FFFD (the pattern engine needs valid UTF-8).
    std::vector<int> encode(std::string_view text) const;
    // The bytes an id stands for: its vocabulary string through the byte map, or an added
    // token's content. INVALID_ARG outside [0, vocab_size()).
    const std::string &token_bytes(int id) const;
    const std::string &piece(int id) const;  // the vocabulary string as stored, e.g. "Ġthe"
    int vocab_size() const { return int(pieces_.size()); }
    bool is_special(int id) const { return id >= 0 && id < vocab_size() && special_[size_t(id)]; }
    int find(const std::string &piece) const;  // id of a vocabulary string or added token, else -1

    struct Pattern;  // a compiled PCRE2 pattern (bpe_tokenizer.cpp)
    struct PreStep {
        enum Kind { kSplit, kDigits, kByteLevel } kind;
        std::shared_ptr<Pattern> pattern;  // kSplit, kDigits, kByteLevel with use_regex
        bool add_prefix_space = false;     // kByteLevel
    };
    struct Added {
        std::string content;
        int id;
        bool lstrip, rstrip;
    };

private:
    BpeTokenizer() = default;
    void check_id(int id) const;
    std::vector<std::string> pre_tokenize(std::string_view segment) const;
    void bpe(const std::string &word, std::vector<int> &out) const;  // word: byte-mapped UTF-8
    std::string map_to_bytes(int id) const;

    std::vector<std::string> pieces_;   // id -> vocabulary string (or added content)
    std::vector<std::string> bytes_;    // id -> token_bytes(), computed at load
    std::vector<char> special_;          // id -> special added token
    std::vector<char> added_;            // id -> added token (decodes to its content verbatim)
    std::unordered_map<std::string, int> ids_;
    std::unordered_map<uint64_t, std::pair<int, int>> merges_;  // (left, right) -> (rank, merged id)
    std::vector<Added> added_tokens_;    // longest first
    std::vector<int> added_by_byte_[256];  // indices into added_tokens_ by first byte, longest first
    std::vector<const void *> normalizers_;  // ICU's UNormalizer2 instances, applied in order
    std::vector<PreStep> steps_;
    bool ignore_merges_ = false;
    int unk_ = -1;
};

} // namespace gptq
