// safetensors.cpp — a defensive safetensors reader (mmap) and writer.
//
// Nothing in a file is trusted: every length, offset, dtype and shape is checked before a
// TensorView points into the mapping, so later code can index a view's bytes freely. Errors are
// Error(GPTQ_ERR_FORMAT) (or UNSUPPORTED for a real safetensors dtype this library has no use for)
// with a message that starts with the file and names the tensor.
#include "safetensors.h"

#include "json_describe.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <set>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace gptq {

using json = nlohmann::json;

namespace {

// The reference implementation refuses headers above 100 MB; a real one is at most a few MB.
constexpr uint64_t kMaxHeaderBytes = 100u * 1000u * 1000u;

struct DTypeInfo { DType type; const char *name; size_t size; };
constexpr DTypeInfo kDTypes[] = {
    {DType::F64, "F64", 8}, {DType::F32, "F32", 4}, {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2},
    {DType::I64, "I64", 8}, {DType::I32, "I32", 4}, {DType::I16, "I16", 2}, {DType::I8, "I8", 1},
    {DType::U8, "U8", 1},   {DType::BOOL, "BOOL", 1},
};

// Dtypes the safetensors format defines that this library has no use for: refused as
// UNSUPPORTED (a well-formed file we cannot use), unlike a name no format defines (FORMAT).
const char *const kForeignDTypes[] = {"U16", "U32", "U64", "F8_E4M3", "F8_E5M2", "F8_E8M0",
                                      "F4", "F6_E2M3", "F6_E3M2", "C64"};

bool dtype_from_name(const std::string &s, DType *out) {
    for (const auto &d : kDTypes)
        if (s == d.name) { *out = d.type; return true; }
    return false;
}

// A non-negative JSON integer, or false.
bool as_u64(const json &v, uint64_t *out) {
    if (v.is_number_unsigned()) { *out = v.get<uint64_t>(); return true; }
    if (v.is_number_integer() && v.get<int64_t>() >= 0) { *out = uint64_t(v.get<int64_t>()); return true; }
    return false;
}

std::string shape_string(const std::vector<int64_t> &shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); i++) {
        if (i) s += ", ";
        s += std::to_string(shape[i]);
    }
    return s + "]";
}

} // namespace

// ------------------------------------------------------------------------------------ dtypes, views

const char *dtype_name(DType t) {
    for (const auto &d : kDTypes)
        if (d.type == t) return d.name;
    return "?";
}

size_t dtype_size(DType t) {
    for (const auto &d : kDTypes)
        if (d.type == t) return d.size;
    return 0;
}

int64_t TensorView::numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;  // the reader checked that this cannot overflow
    return n;
}

std::string TensorView::shape_str() const { return shape_string(shape); }

// ------------------------------------------------------------------------------------ reading

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const std::string &path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(GPTQ_ERR_IO, "cannot open %s: %s", path.c_str(), std::strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        ::close(fd);
        fail(GPTQ_ERR_IO, "cannot stat %s: %s", path.c_str(), std::strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        fail(GPTQ_ERR_IO, "%s is not a regular file", path.c_str());
    }
    size_t size = size_t(st.st_size);
    if (size < 8) {
        ::close(fd);
        fail(GPTQ_ERR_FORMAT, "%s: file is %zu bytes, shorter than the 8-byte header length", path.c_str(), size);
    }
    void *map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_errno = errno;
    ::close(fd);  // the mapping keeps the file alive
    if (map == MAP_FAILED)
        fail(GPTQ_ERR_IO, "cannot map %s (%zu bytes): %s", path.c_str(), size, std::strerror(map_errno));

    std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
    f->map_ = map;  // owned from here on: the destructor unmaps even if parsing throws
    f->map_size_ = size;
    f->parse_header(static_cast<const uint8_t *>(map), size, path);
    return f;
}

std::unique_ptr<SafetensorsFile> SafetensorsFile::parse(const uint8_t *data, size_t size, const std::string &origin) {
    std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
    f->parse_header(data, size, origin);
    return f;
}

SafetensorsFile::~SafetensorsFile() {
    if (map_) munmap(map_, map_size_);
}

const TensorView *SafetensorsFile::find(const std::string &name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &tensors_[it->second];
}

void SafetensorsFile::parse_header(const uint8_t *data, size_t size, const std::string &origin) {
    const char *file = origin.c_str();
    if (size < 8 || data == nullptr)
        fail(GPTQ_ERR_FORMAT, "%s: file is %zu bytes, shorter than the 8-byte header length", file, size);
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; i--) header_len = (header_len << 8) | data[i];  // little-endian
    if (header_len > size - 8)
        fail(GPTQ_ERR_FORMAT, "%s: header length %llu runs past the end of the file (%zu bytes)", file,
             (unsigned long long)header_len, size);
    if (header_len > kMaxHeaderBytes)
        fail(GPTQ_ERR_FORMAT, "%s: header length %llu is absurdly large (limit %llu)", file,
             (unsigned long long)header_len, (unsigned long long)kMaxHeaderBytes);

    const char *hbegin = reinterpret_cast<const char *>(data + 8);
    const uint8_t *section = data + 8 + header_len;
    const uint64_t section_size = size - 8 - header_len;

    // Parse, rejecting a tensor name given twice (nlohmann would silently keep the last).
    json header;
    try {
        std::set<std::string> seen;
        std::string duplicate;
        auto on_event = [&](int depth, json::parse_event_t ev, json &parsed) {
            if (depth == 1 && ev == json::parse_event_t::key && duplicate.empty()) {
                const std::string &k = parsed.get_ref<const std::string &>();
                if (!seen.insert(k).second) duplicate = k;
            }
            return true;
        };
        header = json::parse(hbegin, hbegin + header_len, on_event);
        if (!duplicate.empty())
            fail(GPTQ_ERR_FORMAT, "%s: header names tensor %s twice", file, duplicate.c_str());
    } catch (const json::exception &e) {
        fail(GPTQ_ERR_FORMAT, "%s: header is not valid JSON: %s", file, e.what());
    }
    if (!header.is_object())
        fail(GPTQ_ERR_FORMAT, "%s: header is %s, not a JSON object", file, json_describe(header).c_str());

    tensors_.clear();
    index_.clear();
    metadata_.clear();
    tensors_.reserve(header.size());
    std::vector<std::pair<uint64_t, uint64_t>> ranges;  // [begin, end) of tensors_[i]
    ranges.reserve(header.size());

    for (auto it = header.begin(); it != header.end(); ++it) {
        const std::string &name = it.key();
        const json &entry = it.value();
        const char *tname = name.c_str();

        if (name == "__metadata__") {
            if (entry.is_null()) continue;
            if (!entry.is_object())
                fail(GPTQ_ERR_FORMAT, "%s: __metadata__ is %s, not an object of strings", file, json_describe(entry).c_str());
            for (auto m = entry.begin(); m != entry.end(); ++m) {
                if (!m.value().is_string())
                    fail(GPTQ_ERR_FORMAT, "%s: __metadata__ value of %s is %s, not a string", file, m.key().c_str(),
                         json_describe(m.value()).c_str());
                metadata_[m.key()] = m.value().get<std::string>();
            }
            continue;
        }
        if (name.empty()) fail(GPTQ_ERR_FORMAT, "%s: a tensor has an empty name", file);
        if (!entry.is_object())
            fail(GPTQ_ERR_FORMAT, "%s: tensor %s: entry is %s, not an object", file, tname, json_describe(entry).c_str());

        // dtype
        auto jd = entry.find("dtype");
        if (jd == entry.end()) fail(GPTQ_ERR_FORMAT, "%s: tensor %s: missing dtype", file, tname);
        if (!jd->is_string())
            fail(GPTQ_ERR_FORMAT, "%s: tensor %s: dtype is %s, not a string", file, tname, json_describe(*jd).c_str());
        const std::string &dname = jd->get_ref<const std::string &>();
        TensorView t;
        if (!dtype_from_name(dname, &t.dtype)) {
            for (const char *foreign : kForeignDTypes)
                if (dname == foreign)
                    fail(GPTQ_ERR_UNSUPPORTED, "%s: tensor %s: dtype %s is not supported", file, tname, foreign);
            fail(GPTQ_ERR_FORMAT, "%s: tensor %s: unknown dtype %s", file, tname, json_describe(*jd).c_str());
        }

        // shape, and its element count without overflow
        auto js = entry.find("shape");
        if (js == entry.end()) fail(GPTQ_ERR_FORMAT, "%s: tensor %s: missing shape", file, tname);
        if (!js->is_array())
            fail(GPTQ_ERR_FORMAT, "%s: tensor %s: shape is %s, not a list of integers", file, tname, json_describe(*js).c_str());
        uint64_t numel = 1;
        bool overflow = false;
        for (const json &d : *js) {
            uint64_t v;
            if (!as_u64(d, &v))
                fail(GPTQ_ERR_FORMAT, "%s: tensor %s: shape has %s, not a non-negative integer", file, tname,
                     json_describe(d).c_str());
            if (v > uint64_t(INT64_MAX))
                fail(GPTQ_ERR_FORMAT, "%s: tensor %s: shape dimension %llu is too large", file, tname, (unsigned long long)v);
            t.shape.push_back(int64_t(v));
            overflow |= __builtin_mul_overflow(numel, v, &numel);
        }
        const size_t esize = dtype_size(t.dtype);
        uint64_t need = 0;
        overflow |= __builtin_mul_overflow(numel, uint64_t(esize), &need) || numel > uint64_t(INT64_MAX);
        if (overflow)
            fail(GPTQ_ERR_FORMAT, "%s: tensor %s: the element count of %s %s overflows", file, tname, dname.c_str(),
                 shape_string(t.shape).c_str());

        // data_offsets: inside the data section and exactly dtype x shape long
        auto jo = entry.find("data_offsets");
        if (jo == entry.end()) fail(GPTQ_ERR_FORMAT, "%s: tensor %s: missing data_offsets", file, tname);
        uint64_t begin = 0, end = 0;
        if (!jo->is_array() || jo->size() != 2 || !as_u64((*jo)[0], &begin) || !as_u64((*jo)[1], &end))
            fail(GPTQ_ERR_FORMAT, "%s: tensor %s: data_offsets is not a list of two non-negative integers", file, tname);
        if (begin > end)
            fail(GPTQ_ERR_FORMAT, "%s: tensor %s: data_offsets [%llu, %llu] end before they begin", file, tname,
                 (unsigned long long)begin, (unsigned long long)end);
        if (end > section_size)
            fail(GPTQ_ERR_FORMAT, "%s: tensor %s: data_offsets [%llu, %llu] run past the end of the data section (%llu bytes)",
                 file, tname, (unsigned long long)begin, (unsigned long long)end, (unsigned long long)section_size);
        if (end - begin != need)
            fail(GPTQ_ERR_FORMAT, "%s: tensor %s: data_offsets [%llu, %llu] hold %llu bytes but %s %s needs %llu", file,
                 tname, (unsigned long long)begin, (unsigned long long)end, (unsigned long long)(end - begin),
                 dname.c_str(), shape_string(t.shape).c_str(), (unsigned long long)need);

        t.name = name;
        t.data = section + begin;
        t.nbytes = size_t(need);
        t.file = origin;
        tensors_.push_back(std::move(t));
        ranges.emplace_back(begin, end);
    }

    // Order the tensors as they lie in the file, then no two may share bytes. Empty tensors
    // occupy nothing and overlap nothing.
    std::vector<size_t> order(tensors_.size());
    for (size_t i = 0; i < order.size(); i++) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        if (ranges[a].first != ranges[b].first) return ranges[a].first < ranges[b].first;
        return tensors_[a].name < tensors_[b].name;
    });
    size_t prev = SIZE_MAX;  // the non-empty tensor ending furthest so far
    for (size_t i : order) {
        if (ranges[i].first == ranges[i].second) continue;
        if (prev != SIZE_MAX && ranges[prev].second > ranges[i].first)
            fail(GPTQ_ERR_FORMAT, "%s: tensors %s [%llu, %llu] and %s [%llu, %llu] overlap", file,
                 tensors_[prev].name.c_str(), (unsigned long long)ranges[prev].first,
                 (unsigned long long)ranges[prev].second, tensors_[i].name.c_str(),
                 (unsigned long long)ranges[i].first, (unsigned long long)ranges[i].second);
        if (prev == SIZE_MAX || ranges[i].second > ranges[prev].second) prev = i;
    }

    std::vector<TensorView> sorted;
    sorted.reserve(tensors_.size());
    for (size_t i : order) sorted.push_back(std::move(tensors_[i]));
    tensors_ = std::move(sorted);
    for (size_t i = 0; i < tensors_.size(); i++) index_[tensors_[i].name] = i;
}

// ------------------------------------------------------------------------------------ a model directory

namespace {

bool is_directory(const std::string &path) {
    struct stat st;
    return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::vector<std::string> safetensors_files_in(const std::string &dir) {
    std::vector<std::string> out;
    DIR *d = opendir(dir.c_str());
    if (!d) fail(GPTQ_ERR_IO, "cannot list %s: %s", dir.c_str(), std::strerror(errno));
    const std::string ext = ".safetensors";
    while (struct dirent *e = readdir(d)) {
        std::string n = e->d_name;
        if (n.size() > ext.size() && n.compare(n.size() - ext.size(), ext.size(), ext) == 0) out.push_back(n);
    }
    closedir(d);
    std::sort(out.begin(), out.end());
    return out;
}

} // namespace

std::unique_ptr<TensorStore> TensorStore::open_dir(const std::string &dir) {
    if (!is_directory(dir)) fail(GPTQ_ERR_IO, "cannot open model directory %s: not a directory", dir.c_str());
    std::unique_ptr<TensorStore> store(new TensorStore());
    store->dir_ = dir;

    auto add_file = [&](const std::string &name) -> const SafetensorsFile & {
        store->files_.push_back(SafetensorsFile::open(path_join(dir, name)));
        const SafetensorsFile &f = *store->files_.back();
        for (const TensorView &t : f.tensors()) {
            auto ins = store->index_.emplace(t.name, &t);
            if (!ins.second)
                fail(GPTQ_ERR_FORMAT, "%s: tensor %s is in both %s and %s", dir.c_str(), t.name.c_str(),
                     ins.first->second->file.c_str(), t.file.c_str());
        }
        return f;
    };

    const std::string index_name = "model.safetensors.index.json";
    if (file_exists(path_join(dir, "model.safetensors"))) {
        add_file("model.safetensors");
    } else if (file_exists(path_join(dir, index_name))) {
        const std::string index_path = path_join(dir, index_name);
        const std::string text = read_file(index_path);
        json index;
        try {
            index = json::parse(text);
        } catch (const json::exception &e) {
            fail(GPTQ_ERR_FORMAT, "%s: not valid JSON: %s", index_path.c_str(), e.what());
        }
        if (!index.is_object()) fail(GPTQ_ERR_FORMAT, "%s: not a JSON object", index_path.c_str());
        auto wm = index.find("weight_map");
        if (wm == index.end() || !wm->is_object())
            fail(GPTQ_ERR_FORMAT, "%s: weight_map is missing or not an object", index_path.c_str());
        if (wm->empty()) fail(GPTQ_ERR_FORMAT, "%s: weight_map is empty", index_path.c_str());
        std::map<std::string, std::vector<std::string>> by_shard;  // shard file -> tensors it should hold
        for (auto it = wm->begin(); it != wm->end(); ++it) {
            if (!it.value().is_string())
                fail(GPTQ_ERR_FORMAT, "%s: weight_map entry of %s is %s, not a file name", index_path.c_str(),
                     it.key().c_str(), json_describe(it.value()).c_str());
            const std::string &shard = it.value().get_ref<const std::string &>();
            // Shards live beside the index; a path elsewhere is a malformed (or hostile) index.
            if (shard.empty() || shard.find('/') != std::string::npos || shard == "." || shard == "..")
                fail(GPTQ_ERR_FORMAT, "%s: weight_map entry of %s, %s, is not a file name in the same directory",
                     index_path.c_str(), it.key().c_str(), json_describe(it.value()).c_str());
            by_shard[shard].push_back(it.key());
        }
        for (const auto &s : by_shard) {
            const SafetensorsFile &f = add_file(s.first);
            for (const std::string &name : s.second)
                if (!f.find(name))
                    fail(GPTQ_ERR_FORMAT, "%s: tensor %s is mapped to %s, which does not contain it", index_path.c_str(),
                         name.c_str(), s.first.c_str());
        }
    } else {
        std::vector<std::string> found = safetensors_files_in(dir);
        if (found.empty()) fail(GPTQ_ERR_IO, "no .safetensors file in %s", dir.c_str());
        if (found.size() > 1)
            fail(GPTQ_ERR_FORMAT, "%s holds %zu .safetensors files (%s, %s, ...) but no model.safetensors.index.json "
                 "saying how they fit together", dir.c_str(), found.size(), found[0].c_str(), found[1].c_str());
        add_file(found[0]);
    }
    return store;
}

const TensorView *TensorStore::find(const std::string &name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : it->second;
}

const TensorView &TensorStore::require(const std::string &name) const {
    const TensorView *t = find(name);
    if (!t) fail(GPTQ_ERR_FORMAT, "missing tensor %s in %s", name.c_str(), dir_.c_str());
    return *t;
}

const TensorView &TensorStore::require(const std::string &name, const std::vector<int64_t> &shape) const {
    const TensorView &t = require(name);
    if (t.shape != shape)
        fail(GPTQ_ERR_FORMAT, "tensor %s: expected %s, found %s (in %s)", name.c_str(), shape_string(shape).c_str(),
             t.shape_str().c_str(), t.file.c_str());
    return t;
}

std::vector<std::string> TensorStore::names() const {
    std::vector<std::string> out;
    out.reserve(index_.size());
    for (const auto &kv : index_) out.push_back(kv.first);
    return out;
}

bool TensorStore::has_prefix(const std::string &prefix) const {
    auto it = index_.lower_bound(prefix);
    return it != index_.end() && it->first.compare(0, prefix.size(), prefix) == 0;
}

// ------------------------------------------------------------------------------------ conversion

void tensor_to_f32(const TensorView &t, float *dst) {
    const size_t n = size_t(t.numel());
    const uint8_t *src = t.data;  // may be unaligned: every load goes through memcpy
    switch (t.dtype) {
    case DType::F32:
        if (n) std::memcpy(dst, src, n * 4);
        return;
    case DType::F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            std::memcpy(&h, src + 2 * i, 2);
            dst[i] = f16_to_f32(h);
        }
        return;
    case DType::BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            std::memcpy(&h, src + 2 * i, 2);
            dst[i] = bf16_to_f32(h);
        }
        return;
    case DType::F64:
        for (size_t i = 0; i < n; i++) {
            double d;
            std::memcpy(&d, src + 8 * i, 8);
            dst[i] = float(d);
        }
        return;
    default:
        fail(GPTQ_ERR_UNSUPPORTED, "tensor %s (%s): dtype %s cannot be converted to f32", t.name.c_str(), t.file.c_str(),
             dtype_name(t.dtype));
    }
}

// ------------------------------------------------------------------------------------ writing

void SafetensorsWriter::add(const std::string &name, DType dtype, const std::vector<int64_t> &shape, const void *data,
                            size_t nbytes) {
    if (name.empty() || name == "__metadata__")
        fail(GPTQ_ERR_INVALID_ARG, "safetensors writer: invalid tensor name \"%s\"", name.c_str());
    for (const Entry &e : entries_)
        if (e.name == name) fail(GPTQ_ERR_INVALID_ARG, "safetensors writer: tensor %s added twice", name.c_str());
    uint64_t numel = 1;
    bool overflow = false;
    for (int64_t d : shape) {
        if (d < 0)
            fail(GPTQ_ERR_INVALID_ARG, "safetensors writer: tensor %s: negative dimension in %s", name.c_str(),
                 shape_string(shape).c_str());
        overflow |= __builtin_mul_overflow(numel, uint64_t(d), &numel);
    }
    uint64_t need = 0;
    overflow |= __builtin_mul_overflow(numel, uint64_t(dtype_size(dtype)), &need);
    if (overflow || need != nbytes)
        fail(GPTQ_ERR_INVALID_ARG, "safetensors writer: tensor %s: %zu bytes given but %s %s needs %llu", name.c_str(),
             nbytes, dtype_name(dtype), shape_string(shape).c_str(), (unsigned long long)need);
    if (nbytes && !data) fail(GPTQ_ERR_INVALID_ARG, "safetensors writer: tensor %s: no data", name.c_str());
    Entry e{name, dtype, shape, {}};
    if (nbytes) e.bytes.assign(static_cast<const uint8_t *>(data), static_cast<const uint8_t *>(data) + nbytes);
    entries_.push_back(std::move(e));
    total_ += nbytes;
}

void SafetensorsWriter::clear() {
    entries_.clear();
    total_ = 0;
}

void SafetensorsWriter::write(const std::string &path, const std::map<std::string, std::string> &metadata) const {
    // Tensors are laid out back to back (readers such as the reference implementation refuse
    // gaps), widest dtype first so that every tensor starts at a multiple of its element size.
    std::vector<const Entry *> order;
    for (const Entry &e : entries_) order.push_back(&e);
    std::stable_sort(order.begin(), order.end(),
                     [](const Entry *a, const Entry *b) { return dtype_size(a->dtype) > dtype_size(b->dtype); });

    json header = json::object();
    json meta = json::object();
    meta["format"] = "pt";
    for (const auto &kv : metadata) meta[kv.first] = kv.second;
    header["__metadata__"] = meta;
    uint64_t offset = 0;
    for (const Entry *e : order) {
        header[e->name] = {{"dtype", dtype_name(e->dtype)},
                           {"shape", e->shape},
                           {"data_offsets", {offset, offset + e->bytes.size()}}};
        offset += e->bytes.size();
    }
    std::string text;
    try {
        text = header.dump(-1, ' ', false, json::error_handler_t::strict);
    } catch (const json::exception &e) {  // a tensor or metadata name that is not UTF-8
        fail(GPTQ_ERR_INVALID_ARG, "safetensors writer: cannot write the header of %s: %s", path.c_str(), e.what());
    }
    text.append((8 - text.size() % 8) % 8, ' ');  // the data section starts 8-byte aligned
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = uint8_t(uint64_t(text.size()) >> (8 * i));

    // Written to a temporary file beside path, renamed over it once complete: a failed write never
    // leaves a truncated file that looks like a checkpoint, never deletes anything it did not
    // create, and a reader still mapping the old file keeps seeing the old bytes.
    std::string tmp = path + ".tmp-XXXXXX";
    int fd = mkstemp(&tmp[0]);
    if (fd < 0) fail(GPTQ_ERR_IO, "cannot create %s: %s", path.c_str(), std::strerror(errno));
    fchmod(fd, 0644);  // mkstemp makes it 0600
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        int e = errno;
        ::close(fd);
        ::unlink(tmp.c_str());
        fail(GPTQ_ERR_IO, "cannot write %s: %s", path.c_str(), std::strerror(e));
    }
    bool ok = std::fwrite(len, 1, 8, f) == 8 && std::fwrite(text.data(), 1, text.size(), f) == text.size();
    for (const Entry *e : order) {
        if (!ok) break;
        if (!e->bytes.empty()) ok = std::fwrite(e->bytes.data(), 1, e->bytes.size(), f) == e->bytes.size();
    }
    int err = ok ? 0 : errno;
    if (std::fclose(f) != 0 && ok) { ok = false; err = errno; }
    if (ok && std::rename(tmp.c_str(), path.c_str()) != 0) { ok = false; err = errno; }
    if (!ok) {
        ::unlink(tmp.c_str());
        fail(GPTQ_ERR_IO, "cannot write %s: %s", path.c_str(), std::strerror(err));
    }
}

} // namespace gptq
