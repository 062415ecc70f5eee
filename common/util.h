// util.h — small helpers for the example programs: files, sizes, timing, text.
#pragma once

#include <cstdint>
#include <string>

namespace common {

// Reads a whole file. Returns false and sets *err (naming the path) on failure.
bool read_file(const std::string &path, std::string *out, std::string *err);

// Sum of the sizes of the regular files under dir (recursively); -1 if dir cannot be read.
int64_t dir_size_bytes(const std::string &dir);

// "13.6 MB" style (powers of 1000, like ls -h --si), "0 B" for 0, "?" for negative.
std::string format_bytes(int64_t bytes);

// Seconds on a monotonic clock.
double now_seconds();

// The last path component without trailing slashes: "/a/b/" -> "b".
std::string base_name(const std::string &path);

// Whether path is a regular file (following symlinks).
bool file_exists(const std::string &path);
// Whether dir is a directory with no entries (false when it is not a readable directory).
bool dir_is_empty(const std::string &dir);

// Whether two paths name the same location (after resolving "." / ".." / symlinks that exist).
bool same_path(const std::string &a, const std::string &b);

} // namespace common
