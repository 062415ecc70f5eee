// spm_variants.h — the SentencePiece-style tokenizer.json fixture (tests/data/bpe/llama2) and its
// variants from golden_spm.json, shared by test_spm_json_tokenizer.cpp and
// test_bpe_tokenizer_shared.cpp; make_fixtures.py builds the same variants the same way.
#pragma once

#include "testutil.h"

#include <nlohmann/json.hpp>

#include <string>

namespace spm_variants {

inline std::string data_dir() { return testutil::source_dir() + "/tests/data/bpe"; }

inline const std::string &base_text() {
    static const std::string text = testutil::read_text(data_dir() + "/llama2/tokenizer.json");
    return text;
}

inline const nlohmann::json &golden() {
    static const nlohmann::json g = nlohmann::json::parse(testutil::read_text(data_dir() + "/golden_spm.json"));
    return g;
}

// The base file with a variant's replacements: top-level parts replaced, model fields merged.
inline std::string variant_text(const nlohmann::json &edit) {
    nlohmann::json j = nlohmann::json::parse(base_text());
    for (auto it = edit.begin(); it != edit.end(); ++it) {
        if (it.key() == "model") j["model"].update(it.value());
        else j[it.key()] = it.value();
    }
    return j.dump();
}

} // namespace spm_variants
