// tokenizer_checks.h — checks shared by test_tokenizer.cpp and test_tokenizer_shared.cpp.
#pragma once

#include <doctest/doctest.h>

#include "common.h"
#include "tokenizer.h"

#include <cstdint>
#include <string>
#include <vector>

namespace tokchecks {

// Strict UTF-8 validation (no overlongs, no surrogates, nothing above U+10FFFF).
inline bool valid_utf8(const std::string &s) {
    size_t i = 0;
    while (i < s.size()) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        size_t n;
        uint32_t cp;
        if (c < 0x80) { ++i; continue; }
        else if (c >= 0xC2 && c <= 0xDF) { n = 1; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { n = 2; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { n = 3; cp = c & 0x07; }
        else return false;
        if (i + n >= s.size()) return false;  // truncated
        for (size_t k = 1; k <= n; ++k) {
            const unsigned char d = static_cast<unsigned char>(s[i + k]);
            if ((d & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (d & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += n + 1;
    }
    return true;
}

// What a StreamDecoder over (prompt, gen) must produce in total: decode(prompt + gen) minus
// decode(prompt), or decode(gen) when the former does not start with the latter.
inline std::string expected_stream_text(const gptq::Tokenizer &tok, const std::vector<int> &prompt,
                                        const std::vector<int> &gen) {
    std::vector<int> all = prompt;
    all.insert(all.end(), gen.begin(), gen.end());
    const std::string full = tok.decode(all), head = tok.decode(prompt);
    if (full.compare(0, head.size(), head) == 0) return full.substr(head.size());
    return tok.decode(gen);
}

// Streams gen after prompt; checks every chunk is whole UTF-8 and that the chunks (plus flush)
// add up to the expected text. Returns the chunks.
inline std::vector<std::string> stream_and_check(const gptq::Tokenizer &tok, const std::vector<int> &prompt,
                                                 const std::vector<int> &gen) {
    gptq::StreamDecoder dec(tok, prompt);
    std::vector<std::string> chunks;
    std::string all;
    for (int id : gen) {
        std::string c = dec.push(id);
        CHECK_MESSAGE(valid_utf8(c), "chunk after id ", id, " is not whole UTF-8");
        all += c;
        chunks.push_back(std::move(c));
    }
    const std::string rest = dec.flush();
    all += rest;
    if (!rest.empty()) chunks.push_back(rest);
    CHECK(dec.text() == all);
    CHECK(all == expected_stream_text(tok, prompt, gen));
    return chunks;
}

// splitmix64, for reproducible random id sequences.
struct Rng {
    uint64_t s;
    uint64_t next() {
        uint64_t z = (s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    int below(int n) { return int(next() % uint64_t(n)); }
};

// Random (prompt, gen) pairs rich in what makes streaming hard: byte pieces forming whole,
// partial and broken UTF-8 characters, lone word-start markers, control and unknown pieces.
inline void random_stream_property(const gptq::Tokenizer &tok, int n_cases, uint64_t seed) {
    const int V = tok.vocab_size();
    auto byte_id = [&](int b) {
        for (int id = 0; id < V; ++id)
            if (tok.byte_value(id) == b) return id;
        return -1;
    };
    // Pieces in groups: whole characters as byte sequences, lead / continuation bytes, ASCII.
    const std::vector<std::vector<int>> chars = {
        {0xC3, 0xAF}, {0xE6, 0x97, 0xA5}, {0xF0, 0x9F, 0x99, 0x82}, {0xCE, 0xA9}, {0x41}, {0x0A}};
    const std::vector<int> loose = {0xC3, 0xE6, 0xF0, 0x9F, 0x80, 0xBF, 0xFF, 0xC0, 0xED, 0xA0, 0xF4, 0x90};
    const int space = [&] {
        for (int id = 0; id < V; ++id)
            if (tok.piece(id) == "\xe2\x96\x81") return id;
        return -1;
    }();
    Rng rng{seed};
    auto random_ids = [&](int n, std::vector<int> &out) {
        while (int(out.size()) < n) {
            const int r = rng.below(10);
            if (r < 3) {
                for (int b : chars[size_t(rng.below(int(chars.size())))]) out.push_back(byte_id(b));
            } else if (r < 5) {
                out.push_back(byte_id(loose[size_t(rng.below(int(loose.size())))]));
            } else if (r == 5 && space >= 0) {
                out.push_back(space);
            } else if (r == 6) {
                out.push_back(rng.below(3));  // <unk>, <s>, </s> in both test tokenizers
            } else {
                out.push_back(rng.below(V));
            }
        }
    };
    for (int c = 0; c < n_cases; ++c) {
        std::vector<int> prompt, gen;
        const int pr = rng.below(4);
        if (pr == 1) prompt.push_back(tok.bos());
        if (pr >= 2) random_ids(1 + rng.below(6), prompt);
        random_ids(1 + rng.below(24), gen);
        CAPTURE(c);
        stream_and_check(tok, prompt, gen);
    }
}

template <class Fn> gptq_status status_of(Fn &&fn, std::string *message = nullptr) {
    try {
        fn();
    } catch (const gptq::Error &e) {
        if (message) *message = e.what();
        return e.status();
    }
    return GPTQ_OK;
}

} // namespace tokchecks
