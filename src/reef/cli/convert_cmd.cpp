// `reef convert --model DIR --out DIR [--dtype ...] [--max-shard-size 5GB] [--adapter DIR]`:
// rewrites a model folder in another weight dtype or shard layout, optionally with a PEFT LoRA
// adapter merged in (checkpoint/convert.h does the work).
#include <fmt/format.h>

#include <memory>
#include <string>

#include "reef/base/log.h"
#include "reef/checkpoint/convert.h"
#include "reef/checkpoint/model_io.h"
#include "reef/cli/subcommands.h"

namespace reef::cli {

void add_convert(CLI::App& app, Runs& runs) {
  auto* cmd = app.add_subcommand(
      "convert", "rewrite a model folder in another dtype or shard size (Hugging Face layout)");
  auto o = std::make_shared<ConvertOptions>();
  auto shard = std::make_shared<std::string>();
  cmd->add_option("--model,-m", o->model_dir,
                  "source model folder (Hugging Face or Reef), or run folder (newest checkpoint)")
      ->required();
  cmd->add_option("--out,-o", o->out_dir,
                  "the folder to write (a temp folder is renamed into place)")
      ->required();
  cmd->add_option("--dtype", o->dtype,
                  "weight dtype: auto (as stored), float32, float16 or bfloat16")
      ->capture_default_str();
  cmd->add_option("--max-shard-size", *shard,
                  "write shards of at most this size (5GB, 500MB, 2GiB, bytes) plus "
                  "model.safetensors.index.json; default: one model.safetensors");
  cmd->add_option("--adapter", o->adapter_dir,
                  "merge this PEFT LoRA adapter folder (adapter_config.json + "
                  "adapter_model.safetensors) into the weights");
  cmd->add_flag("--overwrite", o->overwrite, "replace --out if it exists");
  cmd->callback([&runs, o, shard] {
    runs.push_back([o, shard] {
      if (!shard->empty()) o->max_shard_bytes = parse_byte_size(*shard, "--max-shard-size");
      o->model_dir = resolve_model_dir(o->model_dir);
      ConvertResult r = convert_model_folder(*o);
      if (!o->adapter_dir.empty()) log_info("merged the LoRA adapter {}", o->adapter_dir);
      log_info("wrote {}: {} parameters as {} ({:.1f} MB) in {} file(s); copied {} file(s)",
               o->out_dir, r.parameters, hf_dtype_name(r.dtype), r.weight_bytes / 1e6,
               r.weight_files.size(), r.copied_files.size());
      return 0;
    });
  });
}

}  // namespace reef::cli
