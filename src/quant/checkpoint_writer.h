// checkpoint_writer.h — writes a GPTQ checkpoint (shared/docs/FORMAT.md) a tensor at a time.
//
// Tensors go into shards of at most max_shard_bytes inside a temporary directory beside out_dir;
// finish() writes the index, config.json (with quantization_config), quantize_config.json, copies
// the tokenizer files, and only then renames the directory into place — so an interrupted run
// never leaves a half checkpoint that looks whole. Destroying an unfinished writer removes it.
#pragma once

#include "../config.h"
#include "../safetensors.h"

#include <map>
#include <string>
#include <vector>

namespace gptq {

class CheckpointWriter {
public:
    CheckpointWriter(const std::string &src_dir, const std::string &out_dir, int64_t max_shard_bytes);
    ~CheckpointWriter();
    CheckpointWriter(const CheckpointWriter &) = delete;
    CheckpointWriter &operator=(const CheckpointWriter &) = delete;

    void add(const std::string &name, DType dtype, const std::vector<int64_t> &shape, const void *data, size_t nbytes);
    // Float tensor as fp16 (the ecosystem's GPTQ activation dtype); values beyond fp16's range keep
    // fp32 with a warning.
    void add_f16(const std::string &name, const std::vector<int64_t> &shape, const float *data);
    void finish(const ModelConfig &cfg, const QuantConfig &q);
    int64_t bytes_written() const { return total_bytes_; }

private:
    void flush_shard();
    std::string src_dir_, out_dir_, tmp_dir_;
    int64_t max_shard_bytes_;
    SafetensorsWriter shard_;
    std::vector<std::string> shard_files_;            // temporary names, in order
    std::map<std::string, size_t> tensor_shard_;      // tensor -> shard index
    int64_t total_bytes_ = 0;
    bool finished_ = false;
};

} // namespace gptq
