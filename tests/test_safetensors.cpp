// The safetensors reader and writer: every malformation the reader must refuse (status and a
// message naming the problem), writer -> reader round trips for every dtype, conversions to f32,
// and TensorStore's directory layouts (single file, sharded index, one odd-named file).
#include <doctest/doctest.h>

#include "safetensors.h"
#include "check_fails.h"
#include "testutil.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace gptq;


namespace {

// A safetensors file from a header text and a data section (zeros unless given).
std::string make_file(const std::string &header, size_t data_bytes = 0, const std::string &data = "") {
    std::string out(8, '\0');
    uint64_t n = header.size();
    for (int i = 0; i < 8; i++) out[i] = char((n >> (8 * i)) & 0xff);
    out += header;
    out += data;
    if (data.size() < data_bytes) out.append(data_bytes - data.size(), '\0');
    return out;
}

// parse() reads from the caller's buffer, which must outlive the views: keep it beside the result.
struct Parsed {
    std::unique_ptr<std::string> bytes;
    std::unique_ptr<SafetensorsFile> file;
    SafetensorsFile *operator->() const { return file.get(); }
};
Parsed parse(const std::string &bytes, const std::string &origin = "x.safetensors") {
    Parsed p;
    p.bytes.reset(new std::string(bytes));
    p.file = SafetensorsFile::parse(reinterpret_cast<const uint8_t *>(p.bytes->data()), p.bytes->size(), origin);
    return p;
}

void write_bytes(const std::string &path, const std::string &bytes) {
    std::ofstream f(path, std::ios::binary);
    f.write(bytes.data(), std::streamsize(bytes.size()));
    REQUIRE(f.good());
}

// One-tensor header: {"name": {"dtype": .., "shape": .., "data_offsets": ..}}
std::string one(const std::string &name, const std::string &dtype, const std::string &shape, const std::string &offsets) {
    return "{\"" + name + "\": {\"dtype\": \"" + dtype + "\", \"shape\": " + shape + ", \"data_offsets\": " + offsets + "}}";
}

} // namespace

TEST_CASE("a well-formed hand-made file parses, tensors in file order, metadata kept") {
    std::string h = R"({"__metadata__": {"format": "pt", "who": "me"},
        "b": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "a": {"dtype": "U8", "shape": [2, 2], "data_offsets": [8, 12]},
        "empty": {"dtype": "F16", "shape": [0, 5], "data_offsets": [12, 12]},
        "scalar": {"dtype": "I64", "shape": [], "data_offsets": [16, 24]}}   )";  // a hole at 12..16 is harmless
    std::string data(24, '\0');
    float two[2] = {1.5f, -3.0f};
    std::memcpy(&data[0], two, 8);
    data[8] = 7;
    auto f = parse(make_file(h, 24, data));
    REQUIRE(f->tensors().size() == 4);
    CHECK(f->tensors()[0].name == "b");  // by offset, not by name
    CHECK(f->tensors()[1].name == "a");
    CHECK(f->metadata().at("format") == "pt");
    CHECK(f->metadata().at("who") == "me");
    const TensorView *a = f->find("a");
    REQUIRE(a);
    CHECK(a->dtype == DType::U8);
    CHECK(a->shape_str() == "[2, 2]");
    CHECK(a->numel() == 4);
    CHECK(a->nbytes == 4);
    CHECK(a->data[0] == 7);
    CHECK(a->file == "x.safetensors");
    const TensorView *s = f->find("scalar");
    REQUIRE(s);
    CHECK(s->shape_str() == "[]");
    CHECK(s->numel() == 1);
    CHECK(f->find("empty")->numel() == 0);
    CHECK(f->find("nope") == nullptr);
    float out[2];
    tensor_to_f32(*f->find("b"), out);
    CHECK(out[0] == 1.5f);
    CHECK(out[1] == -3.0f);

    auto e = parse(make_file("{}"));
    CHECK(e->tensors().empty());
}

TEST_CASE("truncated files and lying header lengths are refused") {
    CHECK_FAILS(parse(std::string(5, '\0')), GPTQ_ERR_FORMAT, "x.safetensors: file is 5 bytes, shorter than the 8-byte");
    CHECK_FAILS(parse(""), GPTQ_ERR_FORMAT, "shorter than");
    std::string f = make_file("{}");
    f[0] = char(200);  // claims 200 header bytes, has 2
    CHECK_FAILS(parse(f), GPTQ_ERR_FORMAT, "header length 200 runs past the end of the file (10 bytes)");
    std::string huge(8, '\xff');
    CHECK_FAILS(parse(huge + "{}"), GPTQ_ERR_FORMAT, "runs past the end");

    // A header length within the file but above the 100 MB sanity limit (an untouched anonymous
    // mapping: no memory is really used).
    const size_t big = 101u * 1000u * 1000u;
    void *m = mmap(nullptr, big, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(m != MAP_FAILED);
    uint64_t len = 100u * 1000u * 1000u + 1;
    std::memcpy(m, &len, 8);
    CHECK_FAILS(SafetensorsFile::parse(static_cast<uint8_t *>(m), big, "big.safetensors"), GPTQ_ERR_FORMAT,
                "big.safetensors: header length 100000001 is absurdly large");
    munmap(m, big);
}

TEST_CASE("header JSON that is invalid or not an object is refused") {
    CHECK_FAILS(parse(make_file("{\"a\": ")), GPTQ_ERR_FORMAT, "x.safetensors: header is not valid JSON");
    CHECK_FAILS(parse(make_file("[1, 2]")), GPTQ_ERR_FORMAT, "header is a list, not a JSON object");
    CHECK_FAILS(parse(make_file("\"str\"")), GPTQ_ERR_FORMAT, "not a JSON object");
    CHECK_FAILS(parse(make_file("{\"a\": 1e999}")), GPTQ_ERR_FORMAT, "not valid JSON");
    CHECK_FAILS(parse(make_file(std::string("{\"\xff\": 1}"))), GPTQ_ERR_FORMAT, "not valid JSON");  // not UTF-8
    CHECK_FAILS(parse(make_file("{\"t\": 5}")), GPTQ_ERR_FORMAT, "tensor t: entry is 5, not an object");
    CHECK_FAILS(parse(make_file("{\"t\": [1]}")), GPTQ_ERR_FORMAT, "tensor t: entry is a list, not an object");
    std::string dup = R"({"t": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},
                          "t": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}})";
    CHECK_FAILS(parse(make_file(dup, 2)), GPTQ_ERR_FORMAT, "header names tensor t twice");
    CHECK_FAILS(parse(make_file(one("", "U8", "[1]", "[0, 1]"), 1)), GPTQ_ERR_FORMAT, "empty name");
    // Deep nesting must be an error or a parse, never a stack overflow.
    std::string deep = "{\"t\": " + std::string(100000, '[') + std::string(100000, ']') + "}";
    CHECK_FAILS(parse(make_file(deep)), GPTQ_ERR_FORMAT, "tensor t: entry is a list");
}

TEST_CASE("dtype: missing, not a string, unknown, or foreign") {
    CHECK_FAILS(parse(make_file(R"({"t": {"shape": [1], "data_offsets": [0, 1]}})", 1)), GPTQ_ERR_FORMAT,
                "tensor t: missing dtype");
    CHECK_FAILS(parse(make_file(R"({"t": {"dtype": 3, "shape": [1], "data_offsets": [0, 1]}})", 1)), GPTQ_ERR_FORMAT,
                "tensor t: dtype is 3, not a string");
    CHECK_FAILS(parse(make_file(one("t", "F17", "[1]", "[0, 1]"), 1)), GPTQ_ERR_FORMAT, "tensor t: unknown dtype \"F17\"");
    CHECK_FAILS(parse(make_file(one("t", "f32", "[1]", "[0, 4]"), 4)), GPTQ_ERR_FORMAT, "unknown dtype");
    CHECK_FAILS(parse(make_file(one("t", "F8_E4M3", "[1]", "[0, 1]"), 1)), GPTQ_ERR_UNSUPPORTED,
                "tensor t: dtype F8_E4M3 is not supported");
}

TEST_CASE("shape: not a list of non-negative integers, or overflowing") {
    CHECK_FAILS(parse(make_file(R"({"t": {"dtype": "U8", "data_offsets": [0, 1]}})", 1)), GPTQ_ERR_FORMAT,
                "tensor t: missing shape");
    CHECK_FAILS(parse(make_file(one("t", "U8", "3", "[0, 3]"), 3)), GPTQ_ERR_FORMAT,
                "tensor t: shape is 3, not a list of integers");
    CHECK_FAILS(parse(make_file(one("t", "U8", "[-1]", "[0, 1]"), 1)), GPTQ_ERR_FORMAT,
                "tensor t: shape has -1, not a non-negative integer");
    CHECK_FAILS(parse(make_file(one("t", "U8", "[1.5]", "[0, 1]"), 1)), GPTQ_ERR_FORMAT, "shape has 1.5");
    CHECK_FAILS(parse(make_file(one("t", "U8", "[\"2\"]", "[0, 2]"), 2)), GPTQ_ERR_FORMAT, "shape has \"2\"");
    CHECK_FAILS(parse(make_file(one("t", "U8", "[[2]]", "[0, 2]"), 2)), GPTQ_ERR_FORMAT, "shape has a list");
    CHECK_FAILS(parse(make_file(one("t", "F32", "[4294967296, 4294967296, 16]", "[0, 4]"), 4)), GPTQ_ERR_FORMAT,
                "tensor t: the element count of F32 [4294967296, 4294967296, 16] overflows");
    // numel fits in 64 bits but numel x 8 bytes does not
    CHECK_FAILS(parse(make_file(one("t", "F64", "[4611686018427387904]", "[0, 8]"), 8)), GPTQ_ERR_FORMAT, "overflows");
    CHECK_FAILS(parse(make_file(one("t", "U8", "[18446744073709551615]", "[0, 8]"), 8)), GPTQ_ERR_FORMAT, "too large");
}

TEST_CASE("data_offsets: malformed, reversed, out of range, or not matching dtype x shape") {
    CHECK_FAILS(parse(make_file(R"({"t": {"dtype": "U8", "shape": [1]}})", 1)), GPTQ_ERR_FORMAT,
                "tensor t: missing data_offsets");
    for (const char *bad : {"[0]", "[0, 1, 2]", "5", "[\"0\", 1]", "[-1, 0]", "[0.0, 1]", "{}"})
        CHECK_FAILS(parse(make_file(one("t", "U8", "[1]", bad), 4)), GPTQ_ERR_FORMAT,
                    "tensor t: data_offsets is not a list of two non-negative integers");
    CHECK_FAILS(parse(make_file(one("t", "U8", "[0]", "[3, 2]"), 4)), GPTQ_ERR_FORMAT,
                "tensor t: data_offsets [3, 2] end before they begin");
    CHECK_FAILS(parse(make_file(one("t", "U8", "[8]", "[0, 8]"), 7)), GPTQ_ERR_FORMAT,
                "tensor t: data_offsets [0, 8] run past the end of the data section (7 bytes)");
    CHECK_FAILS(parse(make_file(one("t", "U8", "[1]", "[18446744073709551615, 18446744073709551615]"), 7)),
                GPTQ_ERR_FORMAT, "run past the end");
    CHECK_FAILS(parse(make_file(one("model.layers.0.mlp.up_proj.weight", "BF16", "[256, 768]", "[0, 100]"), 100),
                      "model.safetensors"),
                GPTQ_ERR_FORMAT,
                "model.safetensors: tensor model.layers.0.mlp.up_proj.weight: data_offsets [0, 100] hold 100 bytes "
                "but BF16 [256, 768] needs 393216");
}

TEST_CASE("overlapping tensors are refused, touching and empty ones are not") {
    std::string overlap = R"({"a": {"dtype": "U8", "shape": [8], "data_offsets": [0, 8]},
                              "b": {"dtype": "U8", "shape": [8], "data_offsets": [4, 12]}})";
    CHECK_FAILS(parse(make_file(overlap, 12)), GPTQ_ERR_FORMAT, "tensors a [0, 8] and b [4, 12] overlap");
    // b lies inside a long a, after a short c that starts at the same place
    std::string nested = R"({"a": {"dtype": "U8", "shape": [16], "data_offsets": [0, 16]},
                             "c": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},
                             "b": {"dtype": "U8", "shape": [2], "data_offsets": [10, 12]}})";
    CHECK_FAILS(parse(make_file(nested, 16)), GPTQ_ERR_FORMAT, "overlap");
    std::string same = R"({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
                           "b": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}})";
    CHECK_FAILS(parse(make_file(same, 4)), GPTQ_ERR_FORMAT, "tensors a [0, 4] and b [0, 4] overlap");
    std::string fine = R"({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
                           "z": {"dtype": "U8", "shape": [0], "data_offsets": [2, 2]},
                           "b": {"dtype": "U8", "shape": [4], "data_offsets": [4, 8]}})";
    CHECK(parse(make_file(fine, 8))->tensors().size() == 3);
}

TEST_CASE("__metadata__ must be an object of strings") {
    CHECK_FAILS(parse(make_file(R"({"__metadata__": [1]})")), GPTQ_ERR_FORMAT, "__metadata__ is a list, not an object");
    CHECK_FAILS(parse(make_file(R"({"__metadata__": {"format": 1}})")), GPTQ_ERR_FORMAT,
                "__metadata__ value of format is 1, not a string");
    CHECK(parse(make_file(R"({"__metadata__": null})"))->metadata().empty());
}

TEST_CASE("writer -> reader round trip for every dtype, aligned and contiguous") {
    std::string dir = testutil::temp_dir("st-roundtrip");
    std::string path = dir + "/rt.safetensors";
    const DType all[] = {DType::F64, DType::F32, DType::F16, DType::BF16, DType::I64,
                         DType::I32, DType::I16, DType::I8,  DType::U8,   DType::BOOL};
    SafetensorsWriter w;
    std::map<std::string, std::vector<uint8_t>> expect;
    int k = 0;
    for (DType t : all) {
        // odd element counts so that a naive layout would misalign the wider dtypes after it
        std::vector<int64_t> shape = {3, k % 2 ? 5 : 1};
        size_t n = size_t(shape[0] * shape[1]) * dtype_size(t);
        std::vector<uint8_t> bytes(n);
        for (size_t i = 0; i < n; i++) bytes[i] = uint8_t(i * 31 + k * 7 + 1);
        if (t == DType::BOOL)
            for (auto &b : bytes) b &= 1;
        std::string name = std::string("t.") + dtype_name(t);
        w.add(name, t, shape, bytes.data(), n);
        expect[name] = bytes;
        k++;
    }
    w.add("zero", DType::F32, {0, 4}, nullptr, 0);
    CHECK(w.count() == 11);
    w.write(path, {{"note", "hello"}});

    auto f = SafetensorsFile::open(path);
    REQUIRE(f->tensors().size() == 11);
    CHECK(f->metadata().at("format") == "pt");
    CHECK(f->metadata().at("note") == "hello");
    uint64_t header_len = 0;
    std::string raw = testutil::read_text(path);
    std::memcpy(&header_len, raw.data(), 8);
    CHECK(header_len % 8 == 0);
    CHECK(raw.substr(8, 1) == "{");
    size_t data_total = 0;
    for (const auto &kv : expect) {
        const TensorView *t = f->find(kv.first);
        REQUIRE(t);
        CHECK(std::string(dtype_name(t->dtype)) == kv.first.substr(2));
        CHECK(t->nbytes == kv.second.size());
        CHECK(std::memcmp(t->data, kv.second.data(), t->nbytes) == 0);
        CHECK(reinterpret_cast<uintptr_t>(t->data) % dtype_size(t->dtype) == 0);  // the mapping is page-aligned
        data_total += t->nbytes;
    }
    CHECK(w.total_bytes() == data_total);
    // no gaps and nothing after the last tensor: stricter readers require it
    CHECK(raw.size() == 8 + header_len + data_total);
    CHECK(f->find("zero")->shape_str() == "[0, 4]");

    // A second write after clear() replaces the file.
    w.clear();
    CHECK(w.count() == 0);
    CHECK(w.total_bytes() == 0);
    float one = 1.0f;
    w.add("only", DType::F32, {1}, &one, 4);
    w.write(path);
    CHECK(SafetensorsFile::open(path)->tensors().size() == 1);
}

TEST_CASE("writer refuses inconsistent tensors and unwritable paths") {
    SafetensorsWriter w;
    float v[4] = {};
    CHECK_FAILS(w.add("a", DType::F32, {2, 2}, v, 12), GPTQ_ERR_INVALID_ARG, "tensor a: 12 bytes given but F32 [2, 2] needs 16");
    CHECK_FAILS(w.add("a", DType::F32, {-2, 2}, v, 16), GPTQ_ERR_INVALID_ARG, "negative dimension");
    CHECK_FAILS(w.add("", DType::F32, {1}, v, 4), GPTQ_ERR_INVALID_ARG, "invalid tensor name");
    CHECK_FAILS(w.add("__metadata__", DType::F32, {1}, v, 4), GPTQ_ERR_INVALID_ARG, "invalid tensor name");
    w.add("a", DType::F32, {4}, v, 16);
    CHECK_FAILS(w.add("a", DType::F32, {4}, v, 16), GPTQ_ERR_INVALID_ARG, "tensor a added twice");
    CHECK_FAILS(w.write("/nonexistent-dir/x.safetensors"), GPTQ_ERR_IO, "cannot create /nonexistent-dir/x.safetensors");
    // a directory in the way: refused, and the directory (and its content) left as it was
    std::string dir = testutil::temp_dir("st-writefail");
    REQUIRE(mkdir((dir + "/x.safetensors").c_str(), 0755) == 0);
    CHECK_FAILS(w.write(dir + "/x.safetensors"), GPTQ_ERR_IO, "cannot write " + dir + "/x.safetensors");
    struct stat st;
    CHECK((stat((dir + "/x.safetensors").c_str(), &st) == 0 && S_ISDIR(st.st_mode)));
    CHECK(rmdir((dir + "/x.safetensors").c_str()) == 0);
    CHECK(rmdir(dir.c_str()) == 0);  // empty: no temporary file was left behind
}

TEST_CASE("tensor_to_f32: bf16, f16 (normal, subnormal, max), f64, unaligned sources, other dtypes refused") {
    // An odd header length puts the data section at an odd address: every read must be unaligned-safe.
    const uint16_t bf[4] = {0x3F80, 0xC000, 0x3F00, 0x4049};  // 1, -2, 0.5, 3.140625
    const uint16_t hf[5] = {0x3C00, 0xC000, 0x3555, 0x7BFF, 0x0001};  // 1, -2, 0.33325195, 65504, 2^-24
    const double df[2] = {3.25, -1e-3};
    const float ff[2] = {0.1f, -7.5f};
    const int32_t ii[1] = {5};
    std::string data;
    data.append(reinterpret_cast<const char *>(bf), 8);
    data.append(reinterpret_cast<const char *>(hf), 10);
    data.append(reinterpret_cast<const char *>(df), 16);
    data.append(reinterpret_cast<const char *>(ff), 8);
    data.append(reinterpret_cast<const char *>(ii), 4);
    std::string h = R"({"bf": {"dtype": "BF16", "shape": [4], "data_offsets": [0, 8]},
        "hf": {"dtype": "F16", "shape": [5], "data_offsets": [8, 18]},
        "df": {"dtype": "F64", "shape": [2], "data_offsets": [18, 34]},
        "ff": {"dtype": "F32", "shape": [2], "data_offsets": [34, 42]},
        "ii": {"dtype": "I32", "shape": [1], "data_offsets": [42, 46]}})";
    if (h.size() % 2 == 0) h += " ";
    std::string file = make_file(h, 0, data);
    std::vector<char> buf(file.size() + 16);  // place it at an 8-aligned address, so 8 + h is odd
    char *base = buf.data() + (8 - reinterpret_cast<uintptr_t>(buf.data()) % 8) % 8;
    std::memcpy(base, file.data(), file.size());
    auto f = SafetensorsFile::parse(reinterpret_cast<uint8_t *>(base), file.size(), "u.safetensors");
    CHECK(reinterpret_cast<uintptr_t>(f->find("bf")->data) % 2 == 1);

    float out[5];
    tensor_to_f32(*f->find("bf"), out);
    CHECK(out[0] == 1.0f);
    CHECK(out[1] == -2.0f);
    CHECK(out[2] == 0.5f);
    CHECK(out[3] == 3.140625f);
    tensor_to_f32(*f->find("hf"), out);
    CHECK(out[0] == 1.0f);
    CHECK(out[1] == -2.0f);
    CHECK(out[2] == 0.333251953125f);
    CHECK(out[3] == 65504.0f);
    CHECK(out[4] == std::ldexp(1.0f, -24));
    tensor_to_f32(*f->find("df"), out);
    CHECK(out[0] == 3.25f);
    CHECK(out[1] == float(-1e-3));
    tensor_to_f32(*f->find("ff"), out);
    CHECK(out[0] == 0.1f);
    CHECK(out[1] == -7.5f);
    CHECK_FAILS(tensor_to_f32(*f->find("ii"), out), GPTQ_ERR_UNSUPPORTED, "tensor ii (u.safetensors): dtype I32 cannot");
}

TEST_CASE("SafetensorsFile::open: missing, empty, truncated and directory paths") {
    std::string dir = testutil::temp_dir("st-open");
    CHECK_FAILS(SafetensorsFile::open(dir + "/none.safetensors"), GPTQ_ERR_IO, "cannot open " + dir + "/none.safetensors");
    CHECK_FAILS(SafetensorsFile::open(dir), GPTQ_ERR_IO, "is not a regular file");
    write_bytes(dir + "/empty.safetensors", "");
    CHECK_FAILS(SafetensorsFile::open(dir + "/empty.safetensors"), GPTQ_ERR_FORMAT, "empty.safetensors: file is 0 bytes");
    std::string good = make_file(one("t", "U8", "[4]", "[0, 4]"), 4);
    write_bytes(dir + "/cut.safetensors", good.substr(0, good.size() - 1));  // last data byte missing
    CHECK_FAILS(SafetensorsFile::open(dir + "/cut.safetensors"), GPTQ_ERR_FORMAT,
                "cut.safetensors: tensor t: data_offsets [0, 4] run past the end of the data section (3 bytes)");
}

// ------------------------------------------------------------------------------------ TensorStore

namespace {

void write_tensors(const std::string &path, const std::vector<std::string> &names) {
    SafetensorsWriter w;
    float v[6] = {1, 2, 3, 4, 5, 6};
    for (const auto &n : names) w.add(n, DType::F32, {2, 3}, v, sizeof v);
    w.write(path);
}

} // namespace

TEST_CASE("TensorStore: model.safetensors, require and shape checks, prefixes") {
    std::string dir = testutil::temp_dir("st-single");
    write_tensors(dir + "/model.safetensors", {"model.embed_tokens.weight", "model.layers.0.w", "model.norm.weight"});
    write_tensors(dir + "/other.safetensors", {"ignored"});  // model.safetensors takes precedence
    auto s = TensorStore::open_dir(dir);
    CHECK(s->names() == std::vector<std::string>{"model.embed_tokens.weight", "model.layers.0.w", "model.norm.weight"});
    CHECK(s->find("ignored") == nullptr);
    CHECK(s->require("model.norm.weight").dtype == DType::F32);
    CHECK(s->require("model.norm.weight", {2, 3}).numel() == 6);
    CHECK_FAILS(s->require("lm_head.weight"), GPTQ_ERR_FORMAT, "missing tensor lm_head.weight in " + dir);
    CHECK_FAILS(s->require("model.norm.weight", {3, 2}), GPTQ_ERR_FORMAT,
                "tensor model.norm.weight: expected [3, 2], found [2, 3]");
    CHECK(s->has_prefix("model.layers.0."));
    CHECK(s->has_prefix("model."));
    CHECK_FALSE(s->has_prefix("model.layers.1."));
    CHECK_FALSE(s->has_prefix("zzz"));
}

TEST_CASE("TensorStore: sharded index, shard validation, duplicates") {
    std::string dir = testutil::temp_dir("st-shards");
    write_tensors(dir + "/model-00001-of-00002.safetensors", {"a", "b"});
    write_tensors(dir + "/model-00002-of-00002.safetensors", {"c"});
    const std::string idx = dir + "/model.safetensors.index.json";
    write_bytes(idx, R"({"metadata": {"total_size": 72}, "weight_map": {
        "a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
        "c": "model-00002-of-00002.safetensors"}})");
    auto s = TensorStore::open_dir(dir);
    CHECK(s->names().size() == 3);
    CHECK(s->require("c").file == dir + "/model-00002-of-00002.safetensors");

    // the index says c is in shard 1, which does not hold it
    write_bytes(idx, R"({"weight_map": {"a": "model-00001-of-00002.safetensors",
        "c": "model-00001-of-00002.safetensors"}})");
    CHECK_FAILS(TensorStore::open_dir(dir), GPTQ_ERR_FORMAT,
                "tensor c is mapped to model-00001-of-00002.safetensors, which does not contain it");
    // a shard the index names but that does not exist
    write_bytes(idx, R"({"weight_map": {"a": "model-00009-of-00009.safetensors"}})");
    CHECK_FAILS(TensorStore::open_dir(dir), GPTQ_ERR_IO, "model-00009-of-00009.safetensors");
    // shard file names must stay in the directory
    write_bytes(idx, R"({"weight_map": {"a": "../model-00001-of-00002.safetensors"}})");
    CHECK_FAILS(TensorStore::open_dir(dir), GPTQ_ERR_FORMAT, "is not a file name in the same directory");
    write_bytes(idx, R"({"weight_map": {"a": 1}})");
    CHECK_FAILS(TensorStore::open_dir(dir), GPTQ_ERR_FORMAT, "weight_map entry of a is 1, not a file name");
    write_bytes(idx, R"({"weight_map": []})");
    CHECK_FAILS(TensorStore::open_dir(dir), GPTQ_ERR_FORMAT, "weight_map is missing or not an object");
    write_bytes(idx, R"({"weight_map": {}})");
    CHECK_FAILS(TensorStore::open_dir(dir), GPTQ_ERR_FORMAT, "weight_map is empty");
    write_bytes(idx, "{\"weight_map\": ");
    CHECK_FAILS(TensorStore::open_dir(dir), GPTQ_ERR_FORMAT, "model.safetensors.index.json: not valid JSON");

    // the same tensor in two shards
    write_tensors(dir + "/model-00002-of-00002.safetensors", {"c", "a"});
    write_bytes(idx, R"({"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
        "c": "model-00002-of-00002.safetensors"}})");
    CHECK_FAILS(TensorStore::open_dir(dir), GPTQ_ERR_FORMAT, "tensor a is in both");
}

TEST_CASE("TensorStore: one odd-named file, none, several, not a directory") {
    std::string dir = testutil::temp_dir("st-gptq");
    CHECK_FAILS(TensorStore::open_dir(dir), GPTQ_ERR_IO, "no .safetensors file in " + dir);
    write_tensors(dir + "/gptq_model-4bit-128g.safetensors", {"model.layers.0.self_attn.q_proj.qweight"});
    auto s = TensorStore::open_dir(dir);
    CHECK(s->find("model.layers.0.self_attn.q_proj.qweight") != nullptr);
    write_tensors(dir + "/another.safetensors", {"x"});
    CHECK_FAILS(TensorStore::open_dir(dir), GPTQ_ERR_FORMAT, "holds 2 .safetensors files");
    CHECK_FAILS(TensorStore::open_dir(dir + "/missing"), GPTQ_ERR_IO, "not a directory");
}
