#include "testutil.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <unistd.h>

namespace testutil {

std::string shared_dir() {
    const char *e = std::getenv("GPTQ_SHARED_DIR");
    return e && *e ? e : "../shared";
}
std::string shared_path(const std::string &rel) { return shared_dir() + "/" + rel; }
std::string source_dir() {
    const char *e = std::getenv("GPTQ_SOURCE_DIR");
    return e && *e ? e : ".";
}

std::string bundled_model_dir() { return source_dir() + "/models/docs-llama-8m"; }
std::string read_text(const std::string &path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error("cannot open " + path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}
std::vector<float> read_f32(const std::string &path) {
    std::string s = read_text(path);
    std::vector<float> v(s.size() / 4);
    if (!v.empty()) __builtin_memcpy(v.data(), s.data(), v.size() * 4);
    return v;
}
std::string temp_dir(const std::string &tag) {
    std::string tmpl = "/tmp/gptq-test-" + tag + "-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
    return buf.data();
}

} // namespace testutil
