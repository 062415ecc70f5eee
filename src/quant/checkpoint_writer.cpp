// checkpoint_writer.cpp — see checkpoint_writer.h.
#include "checkpoint_writer.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <unistd.h>

namespace fs = std::filesystem;

namespace gptq {

CheckpointWriter::CheckpointWriter(const std::string &src_dir, const std::string &out_dir, int64_t max_shard_bytes)
    : src_dir_(src_dir), out_dir_(out_dir), max_shard_bytes_(max_shard_bytes) {
    std::error_code ec;
    fs::path out = fs::absolute(out_dir, ec);
    if (ec) fail(GPTQ_ERR_IO, "%s: %s", out_dir.c_str(), ec.message().c_str());
    while (!out.empty() && out.filename().empty()) out = out.parent_path();  // "dir/" -> "dir"
    if (fs::exists(out) && !fs::is_directory(out))
        fail(GPTQ_ERR_IO, "%s exists and is not a directory", out_dir.c_str());
    // Replacing an earlier checkpoint is expected; wiping a directory of something else is not.
    if (fs::is_directory(out) && !fs::is_empty(out) && !fs::exists(out / "quantize_config.json"))
        fail(GPTQ_ERR_IO, "%s exists, is not empty and is not a GPTQ checkpoint; refusing to replace it", out_dir.c_str());
    if (fs::equivalent(fs::path(src_dir), out, ec))
        fail(GPTQ_ERR_INVALID_ARG, "output directory %s is the input model's directory", out_dir.c_str());
    fs::create_directories(out.parent_path(), ec);
    out_dir_ = out.string();
    tmp_dir_ = out_dir_ + strprintf(".partial-%d", int(getpid()));
    fs::remove_all(tmp_dir_, ec);
    if (!fs::create_directory(tmp_dir_, ec) || ec)
        fail(GPTQ_ERR_IO, "cannot create %s: %s", tmp_dir_.c_str(), ec.message().c_str());
}

CheckpointWriter::~CheckpointWriter() {
    if (!finished_) {
        std::error_code ec;
        fs::remove_all(tmp_dir_, ec);
    }
}

void CheckpointWriter::add(const std::string &name, DType dtype, const std::vector<int64_t> &shape, const void *data,
                           size_t nbytes) {
    if (max_shard_bytes_ > 0 && shard_.count() > 0 && int64_t(shard_.total_bytes() + nbytes) > max_shard_bytes_)
        flush_shard();
    shard_.add(name, dtype, shape, data, nbytes);
    tensor_shard_[name] = shard_files_.size();
    total_bytes_ += int64_t(nbytes);
}

void CheckpointWriter::add_f16(const std::string &name, const std::vector<int64_t> &shape, const float *data) {
    size_t n = 1;
    for (int64_t d : shape) n *= size_t(d);
    std::vector<uint16_t> h(n);
    for (size_t i = 0; i < n; i++) {
        if (!(std::fabs(data[i]) <= 65504.0f)) {
            log_msg(GPTQ_LOG_WARN, "%s: value %g does not fit fp16; tensor kept in fp32", name.c_str(), double(data[i]));
            add(name, DType::F32, shape, data, n * 4);
            return;
        }
        h[i] = f32_to_f16(data[i]);
    }
    add(name, DType::F16, shape, h.data(), n * 2);
}

void CheckpointWriter::flush_shard() {
    if (shard_.count() == 0) return;
    const std::string path = path_join(tmp_dir_, strprintf("shard-%05zu.safetensors", shard_files_.size()));
    shard_.write(path);
    shard_files_.push_back(path);
    shard_.clear();
}

static void write_text(const std::string &path, const std::string &text) {
    std::ofstream f(path, std::ios::binary);
    f << text;
    if (!f) fail(GPTQ_ERR_IO, "cannot write %s", path.c_str());
}

void CheckpointWriter::finish(const ModelConfig &cfg, const QuantConfig &q) {
    flush_shard();
    const size_t n = shard_files_.size();
    std::error_code ec;
    std::vector<std::string> names;
    for (size_t i = 0; i < n; i++) {
        names.push_back(n == 1 ? "model.safetensors" : strprintf("model-%05zu-of-%05zu.safetensors", i + 1, n));
        fs::rename(shard_files_[i], path_join(tmp_dir_, names.back()), ec);
        if (ec) fail(GPTQ_ERR_IO, "cannot rename %s: %s", shard_files_[i].c_str(), ec.message().c_str());
    }
    if (n > 1) {
        nlohmann::json index;
        index["metadata"]["total_size"] = total_bytes_;
        for (const auto &[tensor, shard] : tensor_shard_) index["weight_map"][tensor] = names[shard];
        write_text(path_join(tmp_dir_, "model.safetensors.index.json"), index.dump(2));
    }
    const nlohmann::json qjson = nlohmann::json::parse(quant_config_json(q));
    nlohmann::json config = nlohmann::json::parse(cfg.raw_config_json);
    config["quantization_config"] = qjson;
    config["torch_dtype"] = "float16";
    if (config.contains("dtype")) config["dtype"] = "float16";
    write_text(path_join(tmp_dir_, "config.json"), config.dump(2));
    write_text(path_join(tmp_dir_, "quantize_config.json"), qjson.dump(2));
    for (const char *f : {"tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                          "generation_config.json", "added_tokens.json"}) {
        const std::string src = path_join(src_dir_, f);
        if (file_exists(src)) {
            fs::copy_file(src, path_join(tmp_dir_, f), fs::copy_options::overwrite_existing, ec);
            if (ec) fail(GPTQ_ERR_IO, "cannot copy %s: %s", src.c_str(), ec.message().c_str());
        }
    }
    // Into place: an existing output directory is replaced only now that the new one is whole.
    if (fs::exists(out_dir_)) {
        const std::string old = out_dir_ + strprintf(".old-%d", int(getpid()));
        fs::rename(out_dir_, old, ec);
        if (ec) fail(GPTQ_ERR_IO, "cannot move the existing %s aside: %s", out_dir_.c_str(), ec.message().c_str());
        fs::rename(tmp_dir_, out_dir_, ec);
        if (ec) fail(GPTQ_ERR_IO, "cannot rename %s to %s: %s", tmp_dir_.c_str(), out_dir_.c_str(), ec.message().c_str());
        fs::remove_all(old, ec);
    } else {
        fs::rename(tmp_dir_, out_dir_, ec);
        if (ec) fail(GPTQ_ERR_IO, "cannot rename %s to %s: %s", tmp_dir_.c_str(), out_dir_.c_str(), ec.message().c_str());
    }
    finished_ = true;
}

} // namespace gptq
