// safetensors.h — reading and writing the safetensors format, defensively.
//
// A safetensors file is: 8-byte little-endian header length H, H bytes of JSON
// {"name": {"dtype": "F16", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the data section. Offsets are relative to the data section.
//
// The reader memory-maps the file and trusts nothing: header length past the end, JSON that is
// not an object, unknown dtypes, offsets out of range or not matching dtype×shape, overlapping
// tensors, shapes whose element count overflows — each is Error(GPTQ_ERR_FORMAT) with a message
// naming the file and the tensor.
#pragma once

#include "common.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace gptq {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

const char *dtype_name(DType t);  // "F32", ...
size_t dtype_size(DType t);

struct TensorView {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    const uint8_t *data = nullptr;  // inside the mapping; may be unaligned
    size_t nbytes = 0;
    std::string file;               // the file it came from, for messages

    int64_t numel() const;
    std::string shape_str() const;  // "[64, 1536]"
};

// One parsed safetensors file (memory-mapped, or a caller's buffer for parse()).
class SafetensorsFile {
public:
    // Maps and parses path. Throws Error(GPTQ_ERR_IO) if it cannot be opened, FORMAT if malformed.
    static std::unique_ptr<SafetensorsFile> open(const std::string &path);
    // Parses a buffer the caller keeps alive (used by the fuzz target and tests).
    static std::unique_ptr<SafetensorsFile> parse(const uint8_t *data, size_t size, const std::string &origin);
    ~SafetensorsFile();

    const std::vector<TensorView> &tensors() const { return tensors_; }
    const TensorView *find(const std::string &name) const;  // nullptr if absent
    const std::map<std::string, std::string> &metadata() const { return metadata_; }

private:
    SafetensorsFile() = default;
    void parse_header(const uint8_t *data, size_t size, const std::string &origin);
    void *map_ = nullptr;
    size_t map_size_ = 0;
    std::vector<TensorView> tensors_;
    std::map<std::string, size_t> index_;
    std::map<std::string, std::string> metadata_;
};

// All tensors of a model directory: model.safetensors, or the shards named by
// model.safetensors.index.json, or any single *.safetensors (e.g. gptq_model-4bit-128g.safetensors).
class TensorStore {
public:
    static std::unique_ptr<TensorStore> open_dir(const std::string &dir);

    const TensorView *find(const std::string &name) const;  // nullptr if absent
    // Throws Error(GPTQ_ERR_FORMAT) "missing tensor <name> in <dir>" if absent.
    const TensorView &require(const std::string &name) const;
    // require() plus a shape check: "tensor <name>: expected [a, b], found [c, d]".
    const TensorView &require(const std::string &name, const std::vector<int64_t> &shape) const;
    std::vector<std::string> names() const;
    bool has_prefix(const std::string &prefix) const;

private:
    std::string dir_;
    std::vector<std::unique_ptr<SafetensorsFile>> files_;
    std::map<std::string, const TensorView *> index_;
};

// Converts a floating tensor (F32/F16/BF16/F64) to fp32; throws UNSUPPORTED for other dtypes.
void tensor_to_f32(const TensorView &t, float *dst);

// Writes safetensors files. Tensors are added with their bytes (copied), then written in one go.
class SafetensorsWriter {
public:
    void add(const std::string &name, DType dtype, const std::vector<int64_t> &shape, const void *data,
             size_t nbytes);
    size_t total_bytes() const { return total_; }
    size_t count() const { return entries_.size(); }
    // Writes all added tensors to path with {"format": "pt"} plus extra metadata; throws IO.
    void write(const std::string &path, const std::map<std::string, std::string> &metadata = {}) const;
    void clear();

private:
    struct Entry { std::string name; DType dtype; std::vector<int64_t> shape; std::vector<uint8_t> bytes; };
    std::vector<Entry> entries_;
    size_t total_ = 0;
};

} // namespace gptq
