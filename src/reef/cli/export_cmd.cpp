// `reef export gguf --model DIR --out FILE [--type f32|f16|bf16|q8_0|q4_0|q4_k|q6_k]`: a Hugging
// Face / Reef model folder to a llama.cpp GGUF file (checkpoint/gguf_export.h does the work).
#include <memory>
#include <string>

#include "reef/checkpoint/gguf_export.h"
#include "reef/cli/subcommands.h"

namespace reef::cli {

void add_export(CLI::App& app, Runs& runs) {
  auto* cmd = app.add_subcommand("export", "export a model folder to other formats");
  cmd->require_subcommand(1);
  auto* g = cmd->add_subcommand("gguf", "write a GGUF v3 file for llama.cpp");
  auto o = std::make_shared<GgufExportOptions>();
  g->add_option("--model,-m", o->model_dir,
                "model folder: config.json, safetensors, tokenizer.json")
      ->required();
  g->add_option("--out,-o", o->out, "the .gguf file to write (atomically)")->required();
  g->add_option("--type,-t", o->type,
                "tensor type of 2-D weights: f32, f16, bf16, q8_0, q4_0, q4_k or q6_k (1-D tensors "
                "stay f32)")
      ->capture_default_str();
  g->add_option("--name", o->name, "general.name (default: the folder's name)");
  g->callback([&runs, o] {
    runs.push_back([o] {
      export_gguf(*o);
      return 0;
    });
  });
}

}  // namespace reef::cli
