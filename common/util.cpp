// util.cpp — see util.h.
#include "util.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace common {

bool read_file(const std::string &path, std::string *out, std::string *err) {
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        *err = "cannot open '" + path + "'";
        return false;
    }
    std::stringstream ss;
    ss << f.rdbuf();
    if (f.bad()) {
        *err = "cannot read '" + path + "'";
        return false;
    }
    *out = ss.str();
    return true;
}

int64_t dir_size_bytes(const std::string &dir) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) return -1;
    int64_t total = 0;
    for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        if (it->is_regular_file(ec)) {
            auto sz = it->file_size(ec);
            if (!ec) total += (int64_t)sz;
        }
    }
    return ec ? -1 : total;
}

std::string format_bytes(int64_t bytes) {
    if (bytes < 0) return "?";
    const char *units[] = {"B", "kB", "MB", "GB", "TB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1000 && u < 4) {
        v /= 1000;
        u++;
    }
    char buf[32];
    if (u == 0) std::snprintf(buf, sizeof buf, "%lld B", (long long)bytes);
    else std::snprintf(buf, sizeof buf, "%.*f %s", v < 10 ? 2 : 1, v, units[u]);
    return buf;
}

double now_seconds() {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}

std::string base_name(const std::string &path) {
    size_t end = path.find_last_not_of('/');
    if (end == std::string::npos) return path.empty() ? "" : "/";
    size_t start = path.find_last_of('/', end);
    start = start == std::string::npos ? 0 : start + 1;
    return path.substr(start, end - start + 1);
}

bool file_exists(const std::string &path) {
    std::error_code ec;
    return std::filesystem::is_regular_file(path, ec);
}

bool dir_is_empty(const std::string &dir) {
    std::error_code ec;
    bool empty = std::filesystem::is_empty(dir, ec);
    return !ec && empty;
}

bool same_path(const std::string &a, const std::string &b) {
    namespace fs = std::filesystem;
    auto trim = [](std::string s) {
        while (s.size() > 1 && s.back() == '/') s.pop_back();
        return s;
    };
    std::error_code ea, eb;
    fs::path pa = fs::weakly_canonical(fs::absolute(trim(a), ea), ea);
    fs::path pb = fs::weakly_canonical(fs::absolute(trim(b), eb), eb);
    if (ea || eb) return a == b;
    return pa == pb;
}

} // namespace common
