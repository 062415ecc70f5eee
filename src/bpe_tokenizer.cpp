// bpe_tokenizer.cpp — tokenizer.json BPE: the file's parts read and checked, then encoding as the
// Hugging Face tokenizers library does it (added tokens, normalizers, pre-tokenizers, byte map or
// byte fallback, merges by rank) and decoding back to text.
#include "bpe_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <queue>

namespace gptq {

using json = nlohmann::json;

namespace {

// GPT-2's pattern, which the ByteLevel pre-tokenizer applies when use_regex is set.
const char kGpt2Pattern[] = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD
constexpr int kMaxId = 1 << 24;                 // far above any real vocabulary; bounds hostile ids

// GPT-2's byte map: every byte as a printable code point, so that a vocabulary string spells its
// bytes (a space is "Ġ", U+0120). Printable Latin-1 bytes stand for themselves; the rest take
// U+0100 upwards in byte order.
struct ByteMap {
    std::string text[256];               // byte -> its code point in UTF-8
    std::unordered_map<uint32_t, uint8_t> byte_of;
    ByteMap() {
        int next = 256;
        for (int b = 0; b < 256; ++b) {
            const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            const uint32_t cp = printable ? uint32_t(b) : uint32_t(next++);
            byte_of[cp] = uint8_t(b);
            text[b] = cp < 0x80 ? std::string(1, char(cp))
                                : std::string{char(0xC0 | (cp >> 6)), char(0x80 | (cp & 0x3F))};
        }
    }
};
const ByteMap &byte_map() {
    static const ByteMap m;
    return m;
}

// Length of the UTF-8 character that starts at s[i] (s valid UTF-8).
size_t char_len(std::string_view s, size_t i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const size_t n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    return std::min(n, s.size() - i);
}

// Decodes the code point at s[i] (valid UTF-8) and advances i.
uint32_t next_code_point(std::string_view s, size_t &i) {
    const size_t n = char_len(s, i);
    uint32_t cp = static_cast<unsigned char>(s[i]);
    if (n > 1) cp &= 0xFFu >> (n + 1);
    for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    i += n;
    return cp;
}

uint64_t pair_key(int a, int b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

bool is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

} // namespace

std::string utf8_lossy(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    size_t i = 0;
    while (i < s.size()) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            out += char(c);
            ++i;
            continue;
        }
        int need = 0;
        unsigned char lo = 0x80, hi = 0xBF;  // the range of the second byte
        if (c >= 0xC2 && c <= 0xDF) need = 1;
        else if (c == 0xE0) need = 2, lo = 0xA0;
        else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) need = 2;
        else if (c == 0xED) need = 2, hi = 0x9F;  // no surrogates
        else if (c == 0xF0) need = 3, lo = 0x90;
        else if (c >= 0xF1 && c <= 0xF3) need = 3;
        else if (c == 0xF4) need = 3, hi = 0x8F;  // nothing above U+10FFFF
        size_t j = i + 1;
        int k = 0;
        while (k < need && j < s.size()) {
            const unsigned char d = static_cast<unsigned char>(s[j]);
            if (k == 0 ? (d < lo || d > hi) : (d & 0xC0) != 0x80) break;
            ++j, ++k;
        }
        if (need > 0 && k == need) out.append(s.data() + i, j - i);
        else out += kReplacement;  // the maximal invalid prefix as one U+FFFD, as Rust's from_utf8_lossy
        i = j;
    }
    return out;
}

// ------------------------------------------------------------------------------------------------
// Patterns

struct BpeTokenizer::Pattern {
    pcre2_code *code = nullptr;
    ~Pattern() {
        if (code) pcre2_code_free(code);
    }
};

namespace {

std::shared_ptr<BpeTokenizer::Pattern> compile(const std::string &re, const std::string &origin) {
    int err = 0;
    PCRE2_SIZE at = 0;
    auto p = std::make_shared<BpeTokenizer::Pattern>();
    p->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(re.data()), re.size(), PCRE2_UTF | PCRE2_UCP, &err, &at,
                            nullptr);
    if (!p->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        fail(GPTQ_ERR_UNSUPPORTED, "%s: the pre-tokenizer pattern cannot be compiled at offset %zu (%s)",
             origin.c_str(), size_t(at), reinterpret_cast<const char *>(msg));
    }
    pcre2_jit_compile(p->code, PCRE2_JIT_COMPLETE);  // faster when the platform has a JIT; fine without
    return p;
}

// Calls on_match(begin, end) for each match of the pattern in s (valid UTF-8), left to right;
// on_match returns where the next search starts. `what` names the pattern in an error.
template <class OnMatch>
void each_match(const BpeTokenizer::Pattern &p, const std::string &s, const char *what, OnMatch on_match) {
    std::unique_ptr<pcre2_match_data, void (*)(pcre2_match_data *)> md(
        pcre2_match_data_create_from_pattern(p.code, nullptr), pcre2_match_data_free);
    if (!md) fail(GPTQ_ERR_OOM, "tokenizer: no memory for a pattern match");
    size_t start = 0;
    while (start <= s.size()) {
        const int rc = pcre2_match(p.code, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), start,
                                   PCRE2_NO_UTF_CHECK, md.get(), nullptr);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            fail(GPTQ_ERR_INVALID_ARG, "tokenizer: the %s pattern failed on the text (%s)", what,
                 reinterpret_cast<const char *>(msg));
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md.get());
        start = on_match(size_t(ov[0]), size_t(ov[1]));
    }
}

// Appends the pieces of s that the pattern's matches make, each match and each gap between them
// its own piece ("Isolated"), in order; empty pieces are dropped. s is valid UTF-8.
void split_isolated(const BpeTokenizer::Pattern &p, const std::string &s, std::vector<std::string> &out) {
    size_t last = 0;
    each_match(p, s, "pre-tokenizer", [&](size_t b, size_t e) {
        if (e <= b)  // an empty match splits nothing: look again one character on (or stop at the end)
            return b < s.size() ? b + char_len(s, b) : s.size() + 1;
        if (b > last) out.push_back(s.substr(last, b - last));
        out.push_back(s.substr(b, e - b));
        return last = e;
    });
    if (last < s.size()) out.push_back(s.substr(last));
}

// s with every match of the pattern replaced by `to` (taken literally), left to right. An empty
// match is refused: where tokenizers would insert `to` there depends on its regex engine's
// stepping, which this reader does not reproduce.
std::string replace_matches(const BpeTokenizer::Pattern &p, const std::string &s, const std::string &to) {
    std::string out;
    size_t last = 0;
    each_match(p, s, "normalizer's", [&](size_t b, size_t e) {
        if (e <= b)
            fail(GPTQ_ERR_UNSUPPORTED, "tokenizer: a Replace normalizer's pattern matched an empty string, which "
                 "this reader does not follow");
        out.append(s, last, b - last);
        out += to;
        return last = e;
    });
    out.append(s, last, std::string::npos);
    return out;
}

// Every occurrence of `from` (non-empty) in s replaced by `to`, left to right.
std::string replace_all(const std::string &s, const std::string &from, const std::string &to) {
    std::string out;
    size_t at = 0;
    for (size_t hit; (hit = s.find(from, at)) != std::string::npos; at = hit + from.size()) {
        out.append(s, at, hit - at);
        out += to;
    }
    out.append(s, at, std::string::npos);
    return out;
}

// The byte a "<0xXX>" token names (two hex digits of either case, as tokenizers' ByteFallback
// decoder reads them), else -1.
int parse_byte_token(const std::string &t) {
    if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
    int v = 0;
    for (int k = 3; k < 5; ++k) {
        const char c = t[size_t(k)];
        const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

// ------------------------------------------------------------------------------------------------
// Unicode normalization (ICU): tokenizer.json's NFC / NFKC / NFD / NFKD normalizers

const UNormalizer2 *icu_normalizer(const std::string &type) {
    UErrorCode e = U_ZERO_ERROR;
    const UNormalizer2 *n = type == "NFC"    ? unorm2_getNFCInstance(&e)
                            : type == "NFKC" ? unorm2_getNFKCInstance(&e)
                            : type == "NFD"  ? unorm2_getNFDInstance(&e)
                            : type == "NFKD" ? unorm2_getNFKDInstance(&e)
                                             : nullptr;
    return U_SUCCESS(e) ? n : nullptr;
}

void icu_check(UErrorCode e, const char *what) {
    if (U_FAILURE(e))
        fail(GPTQ_ERR_INTERNAL, "tokenizer: Unicode normalization failed in %s (%s)", what, u_errorName(e));
}

// s (valid UTF-8) normalized; s itself when it already is (ICU's quick check), which is most text.
std::string unicode_normalize(const UNormalizer2 *n, const std::string &s) {
    if (s.size() > (size_t(1) << 28))
        fail(GPTQ_ERR_INVALID_ARG, "tokenizer: %zu bytes of text in one piece are more than the normalizer takes",
             s.size());
    UErrorCode e = U_ZERO_ERROR;
    int32_t n16 = 0;
    u_strFromUTF8(nullptr, 0, &n16, s.data(), int32_t(s.size()), &e);
    if (e != U_BUFFER_OVERFLOW_ERROR) icu_check(e, "u_strFromUTF8");
    std::vector<UChar> src(size_t(n16) + 1);
    e = U_ZERO_ERROR;
    u_strFromUTF8(src.data(), n16 + 1, nullptr, s.data(), int32_t(s.size()), &e);
    icu_check(e, "u_strFromUTF8");
    if (unorm2_quickCheck(n, src.data(), n16, &e) == UNORM_YES && U_SUCCESS(e)) return s;
    e = U_ZERO_ERROR;
    std::vector<UChar> dst(size_t(n16) * 3 + 16);
    int32_t out = unorm2_normalize(n, src.data(), n16, dst.data(), int32_t(dst.size()), &e);
    if (e == U_BUFFER_OVERFLOW_ERROR) {
        dst.resize(size_t(out));
        e = U_ZERO_ERROR;
        out = unorm2_normalize(n, src.data(), n16, dst.data(), out, &e);
    }
    icu_check(e, "unorm2_normalize");
    int32_t n8 = 0;
    u_strToUTF8(nullptr, 0, &n8, dst.data(), out, &e);
    if (e != U_BUFFER_OVERFLOW_ERROR) icu_check(e, "u_strToUTF8");
    std::string r(size_t(n8), '\0');
    e = U_ZERO_ERROR;
    u_strToUTF8(r.data(), n8, nullptr, dst.data(), out, &e);
    icu_check(e, "u_strToUTF8");
    return r;
}

// ------------------------------------------------------------------------------------------------
// Reading the file

const json &member(const json &j, const char *key, const std::string &origin, const char *where) {
    if (!j.is_object() || !j.contains(key)) fail(GPTQ_ERR_FORMAT, "%s: %s has no \"%s\"", origin.c_str(), where, key);
    return j[key];
}

bool flag(const json &j, const char *key, bool dflt) {
    if (!j.is_object() || !j.contains(key) || j[key].is_null()) return dflt;
    return j[key].is_boolean() ? j[key].get<bool>() : dflt;
}

std::string text_of(const json &j, const char *key, const std::string &origin, const char *where) {
    const json &v = member(j, key, origin, where);
    if (!v.is_string()) fail(GPTQ_ERR_FORMAT, "%s: %s's \"%s\" is not a string", origin.c_str(), where, key);
    return v.get<std::string>();
}

std::string type_of(const json &j) {
    return j.is_object() && j.contains("type") && j["type"].is_string() ? j["type"].get<std::string>() : "";
}

// A Replace's pattern ({"String": s} or {"Regex": r}): *literal gets s, or the regex is compiled.
std::shared_ptr<BpeTokenizer::Pattern> read_pattern(const json &j, const std::string &origin, const char *where,
                                                    std::string *literal) {
    const json &pat = member(j, "pattern", origin, where);
    if (pat.is_object() && pat.contains("String") && pat["String"].is_string()) {
        *literal = pat["String"].get<std::string>();
        if (literal->empty()) fail(GPTQ_ERR_FORMAT, "%s: %s replaces an empty string", origin.c_str(), where);
        return nullptr;
    }
    if (pat.is_object() && pat.contains("Regex") && pat["Regex"].is_string())
        return compile(pat["Regex"].get<std::string>(), origin);
    fail(GPTQ_ERR_FORMAT, "%s: %s's pattern is neither a Regex nor a String", origin.c_str(), where);
}

void read_normalizer(const json &j, const std::string &origin, std::vector<BpeTokenizer::NormStep> &out) {
    if (j.is_null()) return;
    using Step = BpeTokenizer::NormStep;
    const std::string t = type_of(j);
    if (t == "Sequence" && j.contains("normalizers") && j["normalizers"].is_array()) {
        for (const json &n : j["normalizers"]) read_normalizer(n, origin, out);
    } else if (t == "Prepend") {
        Step s{Step::kPrepend};
        s.to = text_of(j, "prepend", origin, "the Prepend normalizer");
        out.push_back(s);
    } else if (t == "Replace") {
        Step s{Step::kReplace};
        s.pattern = read_pattern(j, origin, "the Replace normalizer", &s.from);
        s.to = text_of(j, "content", origin, "the Replace normalizer");
        out.push_back(s);
    } else if (const UNormalizer2 *n = icu_normalizer(t)) {
        Step s{Step::kUnicode};
        s.unicode = n;
        out.push_back(s);
    } else {
        fail(GPTQ_ERR_UNSUPPORTED, "%s: the normalizer \"%s\" is not supported (NFC, NFKC, NFD, NFKD, Prepend, "
             "Replace and Sequences of them are)", origin.c_str(), t.c_str());
    }
}

// Metaspace's replacement character and prepend scheme (files from before prepend_scheme have
// add_prefix_space: true for always, false for never).
std::string read_metaspace(const json &j, const std::string &origin, const char *where, BpeTokenizer::Prepend *p) {
    const std::string r = text_of(j, "replacement", origin, where);
    if (r.empty() || char_len(r, 0) != r.size())
        fail(GPTQ_ERR_FORMAT, "%s: %s's replacement is not one character", origin.c_str(), where);
    using P = BpeTokenizer::Prepend;
    if (j.contains("prepend_scheme") && !j["prepend_scheme"].is_null()) {
        const std::string scheme = text_of(j, "prepend_scheme", origin, where);
        if (scheme == "always") *p = P::kAlways;
        else if (scheme == "first") *p = P::kFirst;
        else if (scheme == "never") *p = P::kNever;
        else fail(GPTQ_ERR_FORMAT, "%s: %s's prepend_scheme \"%s\" is none of always, first, never", origin.c_str(),
                  where, scheme.c_str());
    } else {
        *p = flag(j, "add_prefix_space", true) ? P::kAlways : P::kNever;
    }
    return r;
}

void read_pre_tokenizer(const json &j, const std::string &origin, std::vector<BpeTokenizer::PreStep> &steps) {
    if (j.is_null()) return;
    const std::string t = type_of(j);
    using Step = BpeTokenizer::PreStep;
    if (t == "Sequence") {
        const json &list = member(j, "pretokenizers", origin, "the Sequence pre-tokenizer");
        if (!list.is_array()) fail(GPTQ_ERR_FORMAT, "%s: pretokenizers is not a list", origin.c_str());
        for (const json &s : list) read_pre_tokenizer(s, origin, steps);
    } else if (t == "Split") {
        const json &pat = member(j, "pattern", origin, "the Split pre-tokenizer");
        std::string re;
        if (pat.is_object() && pat.contains("Regex") && pat["Regex"].is_string()) {
            re = pat["Regex"].get<std::string>();
        } else if (pat.is_object() && pat.contains("String") && pat["String"].is_string()) {
            re = pat["String"].get<std::string>();  // a literal: every character quoted
            std::string q;
            for (char c : re) {
                if (!std::isalnum(static_cast<unsigned char>(c)) && static_cast<unsigned char>(c) < 0x80) q += '\\';
                q += c;
            }
            re = q;
        } else {
            fail(GPTQ_ERR_FORMAT, "%s: the Split pre-tokenizer's pattern is neither a Regex nor a String",
                 origin.c_str());
        }
        const std::string behavior = j.contains("behavior") && j["behavior"].is_string()
                                         ? j["behavior"].get<std::string>() : "";
        const bool invert = flag(j, "invert", false);
        if (behavior != "Isolated" || invert)
            fail(GPTQ_ERR_UNSUPPORTED, "%s: a Split pre-tokenizer with behavior \"%s\"%s is not supported (only "
                 "Isolated, not inverted)", origin.c_str(), behavior.c_str(), invert ? ", inverted" : "");
        steps.push_back(Step{Step::kSplit, compile(re, origin), false});
    } else if (t == "Digits") {
        steps.push_back(Step{Step::kDigits, compile(flag(j, "individual_digits", false) ? "\\p{N}" : "\\p{N}+", origin),
                             false});
    } else if (t == "ByteLevel") {
        Step s{Step::kByteLevel, nullptr, flag(j, "add_prefix_space", true)};
        if (flag(j, "use_regex", true)) s.pattern = compile(kGpt2Pattern, origin);
        steps.push_back(s);
    } else if (t == "Metaspace") {
        Step s{Step::kMetaspace};
        s.replacement = read_metaspace(j, origin, "the Metaspace pre-tokenizer", &s.prepend);
        s.split = flag(j, "split", true);  // files from before the field always split
        steps.push_back(s);
    } else {
        fail(GPTQ_ERR_UNSUPPORTED, "%s: the pre-tokenizer \"%s\" is not supported (Split, Digits, ByteLevel, "
             "Metaspace and Sequences of them are)", origin.c_str(), t.c_str());
    }
}

// The decoder of a tokenizer that is not byte-level: a Sequence of Replace (a string), ByteFallback,
// Fuse, Strip (nothing taken off the end) and Metaspace, or one of them alone.
void read_decoder(const json &j, const std::string &origin, std::vector<BpeTokenizer::DecodeStep> &out) {
    using Step = BpeTokenizer::DecodeStep;
    const std::string t = type_of(j);
    if (t == "Sequence") {
        const json &list = member(j, "decoders", origin, "the Sequence decoder");
        if (!list.is_array()) fail(GPTQ_ERR_FORMAT, "%s: decoders is not a list", origin.c_str());
        for (const json &d : list) read_decoder(d, origin, out);
    } else if (t == "Replace") {
        Step s{Step::kReplace};
        if (read_pattern(j, origin, "the Replace decoder", &s.from))
            fail(GPTQ_ERR_UNSUPPORTED, "%s: a Replace decoder with a regex is not supported", origin.c_str());
        s.to = text_of(j, "content", origin, "the Replace decoder");
        out.push_back(s);
    } else if (t == "ByteFallback") {
        out.push_back(Step{Step::kByteFallback});
    } else if (t == "Fuse") {
        out.push_back(Step{Step::kFuse});
    } else if (t == "Strip") {
        Step s{Step::kStrip};
        s.from = text_of(j, "content", origin, "the Strip decoder");
        const json &start = member(j, "start", origin, "the Strip decoder"), &stop = member(j, "stop", origin,
                                                                                           "the Strip decoder");
        if (!start.is_number_unsigned() || !stop.is_number_unsigned() || s.from.empty() ||
            char_len(s.from, 0) != s.from.size())
            fail(GPTQ_ERR_FORMAT, "%s: the Strip decoder wants one character and two counts", origin.c_str());
        // Taking characters off the end would make a token's text depend on the tokens after it,
        // which streamed output cannot know.
        if (stop.get<uint64_t>() > 0)
            fail(GPTQ_ERR_UNSUPPORTED, "%s: a Strip decoder that strips the end (stop > 0) is not supported",
                 origin.c_str());
        s.start = int(std::min<uint64_t>(start.get<uint64_t>(), 1u << 20));
        out.push_back(s);
    } else if (t == "Metaspace") {
        Step s{Step::kMetaspace};
        BpeTokenizer::Prepend prepend;
        s.from = read_metaspace(j, origin, "the Metaspace decoder", &prepend);
        s.drop_first = prepend != BpeTokenizer::Prepend::kNever;
        out.push_back(s);
    } else {
        fail(GPTQ_ERR_UNSUPPORTED, "%s: the decoder \"%s\" is not supported here (a Sequence of Replace, "
             "ByteFallback, Fuse, Strip and Metaspace is, or ByteLevel with a ByteLevel pre-tokenizer)",
             origin.c_str(), t.c_str());
    }
}

bool has_byte_level(const std::vector<BpeTokenizer::PreStep> &steps) {
    for (const auto &s : steps)
        if (s.kind == BpeTokenizer::PreStep::kByteLevel) return true;
    return false;
}

} // namespace

std::unique_ptr<BpeTokenizer> BpeTokenizer::parse(std::string_view text, const std::string &origin) {
    json j;
    try {
        j = json::parse(text.begin(), text.end());
    } catch (const json::exception &e) {
        fail(GPTQ_ERR_FORMAT, "%s is not valid JSON (%s)", origin.c_str(), e.what());
    }
    if (!j.is_object()) fail(GPTQ_ERR_FORMAT, "%s is not a JSON object", origin.c_str());
    std::unique_ptr<BpeTokenizer> t(new BpeTokenizer);
    try {
        const json &model = member(j, "model", origin, "the file");
        const std::string mt = type_of(model);
        if (!(mt == "BPE" || (mt.empty() && model.is_object() && model.contains("merges"))))
            fail(GPTQ_ERR_UNSUPPORTED, "%s: the tokenizer model \"%s\" is not supported (byte-level BPE is)",
                 origin.c_str(), mt.c_str());
        for (const char *k : {"continuing_subword_prefix", "end_of_word_suffix"})
            if (model.contains(k) && !model[k].is_null() &&
                !(model[k].is_string() && model[k].get<std::string>().empty()))
                fail(GPTQ_ERR_UNSUPPORTED, "%s: BPE with a %s is not supported", origin.c_str(), k);
        if (model.contains("dropout") && model["dropout"].is_number() && model["dropout"].get<double>() > 0.0)
            fail(GPTQ_ERR_UNSUPPORTED, "%s: BPE dropout is not supported (it makes encoding random)", origin.c_str());
        t->ignore_merges_ = flag(model, "ignore_merges", false);
        t->byte_fallback_ = flag(model, "byte_fallback", false);
        t->fuse_unk_ = flag(model, "fuse_unk", false);
        const json &vocab = member(model, "vocab", origin, "the model");  // a malformed file before anything else
        const json &merges = member(model, "merges", origin, "the model");

        read_normalizer(j.contains("normalizer") ? j["normalizer"] : json(), origin, t->normalizers_);
        read_pre_tokenizer(j.contains("pre_tokenizer") ? j["pre_tokenizer"] : json(), origin, t->steps_);
        // Byte-level (a ByteLevel pre-tokenizer: every piece spelled in GPT-2's byte map) or not
        // (pieces are text, "▁" for a space, and byte_fallback spells a character missing from
        // the vocabulary as "<0xXX>" tokens); the decoder must be the family's.
        t->byte_level_ = has_byte_level(t->steps_);
        const json &dec = j.contains("decoder") ? j["decoder"] : json();
        if (t->byte_level_) {
            for (const PreStep &st : t->steps_)
                if (st.kind == PreStep::kMetaspace)
                    fail(GPTQ_ERR_UNSUPPORTED, "%s: Metaspace beside ByteLevel is not supported", origin.c_str());
            if (t->byte_fallback_)
                fail(GPTQ_ERR_UNSUPPORTED, "%s: byte_fallback beside a ByteLevel pre-tokenizer is not supported",
                     origin.c_str());
            if (!dec.is_null() && type_of(dec) != "ByteLevel")
                fail(GPTQ_ERR_UNSUPPORTED, "%s: the decoder \"%s\" is not supported with a ByteLevel pre-tokenizer "
                     "(ByteLevel is)", origin.c_str(), type_of(dec).c_str());
        } else {
            if (dec.is_null())
                fail(GPTQ_ERR_UNSUPPORTED, "%s: a tokenizer that is not byte-level and has no decoder is not "
                     "supported", origin.c_str());
            read_decoder(dec, origin, t->decoders_);
        }

        // The vocabulary and the added tokens give the ids; an id neither names is a hole that
        // decodes to nothing.
        if (!vocab.is_object()) fail(GPTQ_ERR_FORMAT, "%s: the vocabulary is not an object", origin.c_str());
        auto place = [&](const std::string &s, const json &idj, bool added) {
            if (!idj.is_number_integer())
                fail(GPTQ_ERR_FORMAT, "%s: the id of \"%s\" is not an integer", origin.c_str(), s.c_str());
            const int64_t id = idj.get<int64_t>();
            if (id < 0 || id >= kMaxId)
                fail(GPTQ_ERR_FORMAT, "%s: id %lld of \"%s\" is out of range", origin.c_str(), (long long)id,
                     s.c_str());
            if (size_t(id) >= t->pieces_.size()) {
                t->pieces_.resize(size_t(id) + 1);
                t->special_.resize(size_t(id) + 1, 0);
                t->added_.resize(size_t(id) + 1, 0);
            }
            auto it = t->ids_.find(s);
            if (!added && it != t->ids_.end())
                fail(GPTQ_ERR_FORMAT, "%s: \"%s\" appears twice in the vocabulary", origin.c_str(), s.c_str());
            if (!t->pieces_[size_t(id)].empty() && t->pieces_[size_t(id)] != s)
                fail(GPTQ_ERR_FORMAT, "%s: id %lld names both \"%s\" and \"%s\"", origin.c_str(), (long long)id,
                     t->pieces_[size_t(id)].c_str(), s.c_str());
            t->pieces_[size_t(id)] = s;
            t->ids_[s] = int(id);
            return int(id);
        };
        for (auto it = vocab.begin(); it != vocab.end(); ++it) {
            if (it.key().empty()) fail(GPTQ_ERR_FORMAT, "%s: the vocabulary has an empty string", origin.c_str());
            place(it.key(), it.value(), false);
        }
        if (j.contains("added_tokens") && !j["added_tokens"].is_null()) {
            const json &added = j["added_tokens"];
            if (!added.is_array()) fail(GPTQ_ERR_FORMAT, "%s: added_tokens is not a list", origin.c_str());
            for (const json &a : added) {
                const json &c = member(a, "content", origin, "an added token");
                if (!c.is_string() || c.get<std::string>().empty())
                    fail(GPTQ_ERR_FORMAT, "%s: an added token's content is not a non-empty string", origin.c_str());
                const std::string content = utf8_lossy(c.get<std::string>());
                if (flag(a, "single_word", false))
                    fail(GPTQ_ERR_UNSUPPORTED, "%s: the added token \"%s\" is single_word, which is not supported",
                         origin.c_str(), content.c_str());
                const int id = place(content, member(a, "id", origin, "an added token"), true);
                t->special_[size_t(id)] = flag(a, "special", false);
                t->added_[size_t(id)] = 1;
                // tokenizers matches such a token in the normalized text, against its content
                // normalized too ("<pad>" as "▁<pad>" after Prepend): not followed here.
                const bool rewrites = std::any_of(t->normalizers_.begin(), t->normalizers_.end(),
                                                  [](const NormStep &n) { return n.kind != NormStep::kUnicode; });
                if (rewrites && flag(a, "normalized", !t->special_[size_t(id)]))
                    fail(GPTQ_ERR_UNSUPPORTED, "%s: the added token \"%s\" is matched after normalization "
                         "(normalized: true), which with a Prepend or Replace normalizer is not supported",
                         origin.c_str(), content.c_str());
                t->added_tokens_.push_back({content, id, flag(a, "lstrip", false), flag(a, "rstrip", false)});
            }
        }
        if (t->pieces_.empty()) fail(GPTQ_ERR_FORMAT, "%s: the vocabulary is empty", origin.c_str());
        std::stable_sort(t->added_tokens_.begin(), t->added_tokens_.end(),
                         [](const Added &a, const Added &b) { return a.content.size() > b.content.size(); });
        for (size_t k = 0; k < t->added_tokens_.size(); ++k)
            t->added_by_byte_[static_cast<unsigned char>(t->added_tokens_[k].content[0])].push_back(int(k));

        if (!merges.is_array()) fail(GPTQ_ERR_FORMAT, "%s: merges is not a list", origin.c_str());
        int rank = 0;
        for (const json &m : merges) {
            std::string a, b;
            if (m.is_string()) {  // "a b"
                const std::string s = m.get<std::string>();
                const size_t sp = s.find(' ');
                if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
                    fail(GPTQ_ERR_FORMAT, "%s: merge %d (\"%s\") is not two strings", origin.c_str(), rank, s.c_str());
                a = s.substr(0, sp), b = s.substr(sp + 1);
            } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {  // ["a", "b"]
                a = m[0].get<std::string>(), b = m[1].get<std::string>();
            } else {
                fail(GPTQ_ERR_FORMAT, "%s: merge %d is neither \"a b\" nor [\"a\", \"b\"]", origin.c_str(), rank);
            }
            const int ia = t->find(a), ib = t->find(b), im = t->find(a + b);
            if (ia < 0 || ib < 0 || im < 0)
                fail(GPTQ_ERR_FORMAT, "%s: merge %d (\"%s\" \"%s\") names a string not in the vocabulary",
                     origin.c_str(), rank, a.c_str(), b.c_str());
            t->merges_.emplace(pair_key(ia, ib), std::make_pair(rank, im));  // the first (best) rank wins
            ++rank;
        }
        if (model.contains("unk_token") && model["unk_token"].is_string())
            t->unk_ = t->find(model["unk_token"].get<std::string>());
        // Decoding runs per generated token; mapping each id's characters back to bytes once here
        // keeps that a lookup (about 1 MB for a 128K vocabulary).
        if (t->byte_level_) {
            t->bytes_.resize(t->pieces_.size());
            for (size_t id = 0; id < t->pieces_.size(); ++id) t->bytes_[id] = t->map_to_bytes(int(id));
        }
        // Byte fallback: the "<0xXX>" token of each byte (encoding), the byte of each such token
        // (decoding, where the decoder has ByteFallback).
        for (int b = 0; b < 256; ++b) {
            char name[8];
            std::snprintf(name, sizeof name, "<0x%02X>", b);
            t->byte_ids_[b] = t->find(name);
        }
        t->byte_of_.assign(t->pieces_.size(), -1);
        bool resolves_bytes = false;
        for (const DecodeStep &d : t->decoders_) resolves_bytes = resolves_bytes || d.kind == DecodeStep::kByteFallback;
        if (resolves_bytes)
            for (size_t id = 0; id < t->pieces_.size(); ++id)
                t->byte_of_[id] = int16_t(parse_byte_token(t->pieces_[id]));
    } catch (const json::exception &e) {
        fail(GPTQ_ERR_FORMAT, "%s: unexpected contents (%s)", origin.c_str(), e.what());
    }
    return t;
}

BpeTokenizer::~BpeTokenizer() = default;

int BpeTokenizer::find(const std::string &piece) const {
    auto it = ids_.find(piece);
    return it == ids_.end() ? -1 : it->second;
}

void BpeTokenizer::check_id(int id) const {
    if (id < 0 || id >= vocab_size())
        fail(GPTQ_ERR_INVALID_ARG, "token id %d is outside the tokenizer's vocabulary [0, %d)", id, vocab_size());
}

const std::string &BpeTokenizer::piece(int id) const {
    check_id(id);
    return pieces_[size_t(id)];
}

const std::string &BpeTokenizer::token_bytes(int id) const {
    check_id(id);
    return byte_level_ ? bytes_[size_t(id)] : pieces_[size_t(id)];
}

// An id's bytes: its vocabulary string through the byte map (a character outside the map stands
// for itself), or an added token's content verbatim.
std::string BpeTokenizer::map_to_bytes(int id) const {
    const std::string &p = pieces_[size_t(id)];
    if (added_[size_t(id)]) return p;
    const ByteMap &m = byte_map();
    std::string out;
    size_t i = 0;
    while (i < p.size()) {
        const size_t at = i;
        const uint32_t cp = next_code_point(p, i);
        auto it = m.byte_of.find(cp);
        if (it != m.byte_of.end()) out += char(it->second);
        else out.append(p, at, i - at);
    }
    return out;
}

// ------------------------------------------------------------------------------------------------
// Encoding

std::string BpeTokenizer::normalize(std::string segment) const {
    for (const NormStep &n : normalizers_) {
        switch (n.kind) {
        case NormStep::kUnicode:
            segment = unicode_normalize(static_cast<const UNormalizer2 *>(n.unicode), segment);
            break;
        case NormStep::kPrepend:
            if (!segment.empty()) segment.insert(0, n.to);
            break;
        case NormStep::kReplace:
            segment = n.pattern ? replace_matches(*n.pattern, segment, n.to) : replace_all(segment, n.from, n.to);
            break;
        }
    }
    return segment;
}

std::vector<std::string> BpeTokenizer::pre_tokenize(std::string_view segment, bool at_start) const {
    std::vector<std::string> pieces{std::string(segment)}, next;
    for (const PreStep &s : steps_) {
        next.clear();
        for (size_t k = 0; k < pieces.size(); ++k) {
            std::string &p = pieces[k];
            if (s.kind == PreStep::kMetaspace) {
                p = replace_all(p, " ", s.replacement);
                // "first": only the piece that begins the text (after an added token, none does).
                const bool first = at_start && k == 0;
                if ((s.prepend == Prepend::kAlways || (s.prepend == Prepend::kFirst && first)) &&
                    p.compare(0, s.replacement.size(), s.replacement) != 0)
                    p.insert(0, s.replacement);
                if (!s.split) {
                    next.push_back(std::move(p));
                    continue;
                }
                size_t from = 0;  // each replacement starts a piece (merged with what follows it)
                for (size_t hit = p.find(s.replacement, 1); hit != std::string::npos;
                     hit = p.find(s.replacement, hit + 1)) {
                    next.push_back(p.substr(from, hit - from));
                    from = hit;
                }
                next.push_back(p.substr(from));
                continue;
            }
            if (s.kind == PreStep::kByteLevel && s.add_prefix_space && p[0] != ' ') p.insert(p.begin(), ' ');
            if (s.pattern) split_isolated(*s.pattern, p, next);
            else next.push_back(std::move(p));
        }
        pieces.swap(next);
    }
    return pieces;
}

// The merges applied to one byte-mapped word, lowest rank first and, among equal ranks, leftmost
// first (tokenizers' order), through a heap of candidate pairs: O(L log L) for a word of L
// characters, so a long run of letters in hostile text stays cheap.
void BpeTokenizer::bpe(const std::string &word, std::vector<int> &out) const {
    if (ignore_merges_) {
        const int whole = find(word);
        if (whole >= 0) {
            out.push_back(whole);
            return;
        }
    }
    struct Sym {
        int id, prev, next;
    };
    std::vector<Sym> sym;
    auto add = [&](int id) { sym.push_back({id, int(sym.size()) - 1, int(sym.size()) + 1}); };
    bool unk_pending = false;  // an unknown character's token not yet added (fuse_unk joins a run)
    for (size_t i = 0; i < word.size();) {
        const size_t n = char_len(word, i);
        const std::string c = word.substr(i, n);
        i += n;
        const int id = find(c);
        if (id >= 0) {
            if (unk_pending) add(unk_), unk_pending = false;
            add(id);
            continue;
        }
        if (byte_fallback_ &&
            std::all_of(c.begin(), c.end(), [&](char b) { return byte_ids_[static_cast<unsigned char>(b)] >= 0; })) {
            // As tokenizers does: a pending unknown token is not added before these (it follows them).
            for (char b : c) add(byte_ids_[static_cast<unsigned char>(b)]);
            continue;
        }
        if (unk_ < 0)
            fail(GPTQ_ERR_INVALID_ARG, "tokenizer: the character \"%s\" is not in the vocabulary, which has no "
                 "unknown token", c.c_str());
        if (unk_pending && !fuse_unk_) add(unk_);
        unk_pending = true;
    }
    if (unk_pending) add(unk_);
    if (sym.empty()) return;
    sym.back().next = -1;
    struct Cand {
        int rank, pos, left, right, merged;
        bool operator>(const Cand &o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
    auto offer = [&](int pos) {
        if (pos < 0 || sym[size_t(pos)].next < 0) return;
        const Sym &a = sym[size_t(pos)], &b = sym[size_t(a.next)];
        auto it = merges_.find(pair_key(a.id, b.id));
        if (it != merges_.end()) heap.push({it->second.first, pos, a.id, b.id, it->second.second});
    };
    for (int i = 0; i + 1 < int(sym.size()); ++i) offer(i);
    while (!heap.empty()) {
        const Cand c = heap.top();
        heap.pop();
        Sym &a = sym[size_t(c.pos)];
        // Stale when either side changed since the pair was offered.
        if (a.id != c.left || a.next < 0 || sym[size_t(a.next)].id != c.right) continue;
        Sym &b = sym[size_t(a.next)];
        a.id = c.merged;
        b.id = -1;
        a.next = b.next;
        if (a.next >= 0) sym[size_t(a.next)].prev = c.pos;
        offer(a.prev);
        offer(c.pos);
    }
    for (int i = 0; i >= 0; i = sym[size_t(i)].next) out.push_back(sym[size_t(i)].id);
}

std::vector<int> BpeTokenizer::encode(std::string_view raw) const {
    const std::string text = utf8_lossy(raw);
    const ByteMap &m = byte_map();
    std::vector<int> ids;
    auto encode_segment = [&](size_t from, size_t to) {
        if (from >= to) return;
        const std::string segment = normalize(text.substr(from, to - from));
        for (const std::string &p : pre_tokenize(segment, from == 0)) {
            if (!byte_level_) {
                bpe(p, ids);
                continue;
            }
            std::string mapped;
            mapped.reserve(p.size() * 2);
            for (unsigned char c : p) mapped += m.text[c];
            bpe(mapped, ids);
        }
    };
    // Added tokens split the text first, leftmost and then longest (added_tokens_ is longest first).
    size_t seg = 0;
    for (size_t i = 0; i < text.size();) {
        const Added *hit = nullptr;
        for (int k : added_by_byte_[static_cast<unsigned char>(text[i])]) {
            const Added &a = added_tokens_[size_t(k)];
            if (text.compare(i, a.content.size(), a.content) == 0) {
                hit = &a;
                break;
            }
        }
        if (!hit) {
            i += char_len(text, i);
            continue;
        }
        size_t from = i, to = i + hit->content.size();
        if (hit->lstrip)
            while (from > seg && is_space(static_cast<unsigned char>(text[from - 1]))) --from;
        if (hit->rstrip)
            while (to < text.size() && is_space(static_cast<unsigned char>(text[to]))) ++to;
        encode_segment(seg, from);
        ids.push_back(hit->id);
        seg = i = to;
    }
    encode_segment(seg, text.size());
    return ids;
}

// ------------------------------------------------------------------------------------------------
// Decoding

std::string BpeTokenizer::decode(const int *ids, size_t n) const {
    for (size_t i = 0; i < n; ++i) check_id(ids[i]);
    if (byte_level_) {
        std::string bytes;
        for (size_t i = 0; i < n; ++i)
            if (!is_special(ids[i])) bytes += bytes_[size_t(ids[i])];
        return utf8_lossy(bytes);
    }
    // The decoder's steps over the tokens' strings, as tokenizers applies them.
    std::vector<std::string> toks;
    for (size_t i = 0; i < n; ++i)
        if (!is_special(ids[i])) toks.push_back(pieces_[size_t(ids[i])]);
    for (const DecodeStep &d : decoders_) {
        switch (d.kind) {
        case DecodeStep::kReplace:
            for (std::string &t : toks) t = replace_all(t, d.from, d.to);
            break;
        case DecodeStep::kByteFallback: {
            // A run of byte tokens becomes its bytes when they are valid UTF-8, else one U+FFFD per byte.
            std::vector<std::string> out;
            std::string run;
            size_t run_len = 0;
            auto end_run = [&] {
                if (run_len == 0) return;
                if (utf8_lossy(run) == run) out.push_back(run);
                else for (size_t k = 0; k < run_len; ++k) out.push_back(kReplacement);
                run.clear();
                run_len = 0;
            };
            for (std::string &t : toks) {
                const int b = parse_byte_token(t);
                if (b >= 0) {
                    run += char(b);
                    ++run_len;
                    continue;
                }
                end_run();
                out.push_back(std::move(t));
            }
            end_run();
            toks.swap(out);
            break;
        }
        case DecodeStep::kFuse: {
            std::string all;
            for (const std::string &t : toks) all += t;
            toks.assign(1, all);
            break;
        }
        case DecodeStep::kStrip:
            for (std::string &t : toks) {
                size_t cut = 0;
                for (int k = 0; k < d.start && t.compare(cut, d.from.size(), d.from) == 0; ++k) cut += d.from.size();
                t.erase(0, cut);
            }
            break;
        case DecodeStep::kMetaspace:
            for (size_t k = 0; k < toks.size(); ++k)
                toks[k] = replace_all(toks[k], d.from, k == 0 && d.drop_first ? "" : " ");
            break;
        }
    }
    std::string text;
    for (const std::string &t : toks) text += t;
    return text;
}

} // namespace gptq
