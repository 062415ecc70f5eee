// bpe_tokenizer.h — Hugging Face tokenizer.json BPE, in its two families: byte-level (Llama 3,
// Qwen2, SmolLM, GPT-2) and SentencePiece-style with byte fallback (Llama 2, Mistral, TinyLlama as
// transformers converts their tokenizer.model).
//
// What it reads: a "BPE" model (vocab, merges as "a b" strings or [a, b] pairs, ignore_merges,
// byte_fallback, fuse_unk), added tokens (matched in the text before anything else, leftmost and
// longest first), the normalizers NFC / NFKC / NFD / NFKD (ICU applies them), Prepend and Replace
// (a string or a regex), a pre-tokenizer made of Split (a regex, Isolated), Digits, ByteLevel
// (GPT-2's pattern when use_regex, add_prefix_space) and Metaspace (prepend_scheme, split), and
// the decoders ByteLevel, or a sequence of Replace, ByteFallback, Fuse, Strip and Metaspace.
// Anything else (other normalizers, pre-tokenizers or decoders, subword prefixes, dropout) is
// refused with UNSUPPORTED naming it, never tokenized differently from the original. Regexes run
// on PCRE2 with Unicode properties, which reads the patterns these files carry (\p{L}, (?i:...),
// (?!\S)).
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

    // Text to ids: added tokens first, then normalizers, pre-tokenizers, byte mapping (byte-level)
    // and merges per piece. Bytes that are not UTF-8 are read as U+FFFD (the pattern engine needs
    // valid UTF-8).
    std::vector<int> encode(std::string_view text) const;
    // Ids to text as tokenizers' decode(ids, skip_special_tokens=True) gives it: special tokens
    // dropped, the rest through the decoder. INVALID_ARG for an id outside [0, vocab_size()).
    std::string decode(const int *ids, size_t n) const;
    // Byte-level: the bytes an id stands for (its vocabulary string through the byte map, or an
    // added token's content); decode() is these bytes joined, invalid UTF-8 as U+FFFD. Otherwise
    // the piece itself. INVALID_ARG outside [0, vocab_size()).
    const std::string &token_bytes(int id) const;
    bool byte_level() const { return byte_level_; }
    // The byte a byte-fallback token ("<0xE6>") stands for where the decoder resolves them
    // (ByteFallback), else -1.
    int byte_value(int id) const { return id >= 0 && id < vocab_size() ? byte_of_[size_t(id)] : -1; }
    const std::string &piece(int id) const;  // the vocabulary string as stored, e.g. "Ġthe"
    int vocab_size() const { return int(pieces_.size()); }
    bool is_special(int id) const { return id >= 0 && id < vocab_size() && special_[size_t(id)]; }
    int find(const std::string &piece) const;  // id of a vocabulary string or added token, else -1

    struct Pattern;  // a compiled PCRE2 pattern (bpe_tokenizer.cpp)
    enum class Prepend { kAlways, kFirst, kNever };  // Metaspace's prepend_scheme
    struct NormStep {
        enum Kind { kUnicode, kPrepend, kReplace } kind;
        const void *unicode = nullptr;     // kUnicode: ICU's UNormalizer2
        std::shared_ptr<Pattern> pattern;  // kReplace by a regex
        std::string from, to;              // kPrepend: to; kReplace by a string: from -> to
    };
    struct PreStep {
        enum Kind { kSplit, kDigits, kByteLevel, kMetaspace } kind;
        std::shared_ptr<Pattern> pattern;  // kSplit, kDigits, kByteLevel with use_regex
        bool add_prefix_space = false;     // kByteLevel
        // kMetaspace: spaces become the replacement, which is put first (always, or only in the
        // text's first segment) unless already there; split cuts the piece before each one.
        std::string replacement;
        Prepend prepend = Prepend::kNever;
        bool split = false;
    };
    struct DecodeStep {
        enum Kind { kReplace, kByteFallback, kFuse, kStrip, kMetaspace } kind;
        std::string from, to;  // kReplace; kMetaspace: from is the replacement
        int start = 0;         // kStrip: at most this many leading `from` characters removed
        bool drop_first = false;  // kMetaspace: the first token's replacements dropped, not spaces
    };
    struct Added {
        std::string content;
        int id;
        bool lstrip, rstrip;
    };

private:
    BpeTokenizer() = default;
    void check_id(int id) const;
    // at_start: the segment begins the text (Metaspace's "first" prepend scheme).
    std::vector<std::string> pre_tokenize(std::string_view segment, bool at_start) const;
    std::string normalize(std::string segment) const;
    void bpe(const std::string &word, std::vector<int> &out) const;  // word: byte-mapped UTF-8
    std::string map_to_bytes(int id) const;

    std::vector<std::string> pieces_;   // id -> vocabulary string (or added content)
    std::vector<std::string> bytes_;    // id -> token_bytes(), computed at load (byte-level)
    std::vector<int16_t> byte_of_;       // id -> byte_value()
    int byte_ids_[256];                  // byte -> its "<0xXX>" token, or -1 (byte fallback)
    std::vector<char> special_;          // id -> special added token
    std::vector<char> added_;            // id -> added token (decodes to its content verbatim)
    std::unordered_map<std::string, int> ids_;
    std::unordered_map<uint64_t, std::pair<int, int>> merges_;  // (left, right) -> (rank, merged id)
    std::vector<Added> added_tokens_;    // longest first
    std::vector<int> added_by_byte_[256];  // indices into added_tokens_ by first byte, longest first
    std::vector<NormStep> normalizers_;  // applied in order
    std::vector<PreStep> steps_;
    std::vector<DecodeStep> decoders_;   // empty for byte-level
    bool byte_level_ = true;
    bool ignore_merges_ = false, byte_fallback_ = false, fuse_unk_ = false;
    int unk_ = -1;
};

} // namespace gptq
