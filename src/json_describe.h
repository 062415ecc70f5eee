// json_describe.h — a short description of a JSON value for error messages.
//
// Never dumps arrays or objects: the values come from untrusted files (config.json, safetensors
// headers) and may be huge, or nested deeply enough to overflow nlohmann-json's recursive
// serializer. Strings are cut at 40 characters and escaped (invalid UTF-8 replaced).
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace gptq {

inline std::string json_describe(const nlohmann::json &v) {
    using json = nlohmann::json;
    switch (v.type()) {
    case json::value_t::object: return "an object";
    case json::value_t::array: return "a list";
    case json::value_t::string: {
        std::string s = v.get_ref<const std::string &>();
        if (s.size() > 40) s = s.substr(0, 40) + "...";
        return json(s).dump(-1, ' ', true, json::error_handler_t::replace);
    }
    default: return v.dump();
    }
}

} // namespace gptq
