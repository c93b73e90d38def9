// `reef serve --model DIR [--host H] [--port P] [--api-key K] ...`: the OpenAI-compatible
// server (serve/server.h). DIR is a model folder or a run folder (newest checkpoint).
#include <cstdlib>

#include "reef/base/error.h"
#include "reef/cli/subcommands.h"
#include "reef/serve/server.h"

namespace reef::cli {

void add_serve(CLI::App& app, Runs& runs) {
  auto* cmd =
      app.add_subcommand("serve", "serve a model over the OpenAI HTTP API (continuous batching)");
  auto o = std::make_shared<ServeOptions>();
  auto kv_mib = std::make_shared<int64_t>(1024);
  cmd->add_option("--model,-m", o->model_dir,
                  "model folder (Reef or Hugging Face), or run folder (newest checkpoint)")
      ->required();
  cmd->add_option(
      "--model-name", o->model_name,
      "model id reported by /v1/models and accepted in requests; default: the folder's name");
  cmd->add_option("--host", o->host, "address to listen on")->capture_default_str();
  cmd->add_option("--port", o->port, "port to listen on; 0 = any free port (printed)")
      ->capture_default_str();
  cmd->add_option(
      "--api-key", o->api_key,
      "require 'Authorization: Bearer KEY' on /v1/* (default: $REEF_API_KEY, else none)");
  cmd->add_option("--device", o->device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--threads", o->threads, "CPU threads; 0 = every core")->capture_default_str();
  cmd->add_option("--max-batch", o->engine.max_slots,
                  "sequences decoded together at most (KV slots)")
      ->capture_default_str();
  cmd->add_option("--kv-memory-mb", *kv_mib, "KV-cache memory budget in MiB; may lower --max-batch")
      ->capture_default_str();
  cmd->add_option("--max-seq-len", o->engine.slot_len,
                  "tokens per sequence (prompt + output); 0 = the model's context")
      ->capture_default_str();
  cmd->add_option("--prefill-chunk", o->engine.prefill_chunk,
                  "prompt tokens processed per engine step")
      ->capture_default_str();
  cmd->add_flag("--no-prefix-caching{false}", o->engine.prefix_caching,
                "recompute every prompt (by default a prompt reuses the keys and values of a "
                "cached prefix: system prompts, few-shot headers, earlier turns)");
  cmd->add_option("--lora", o->loras,
                  "serve a LoRA adapter beside the base model: NAME=DIR (a PEFT adapter folder; "
                  "repeatable); a request's \"model\": NAME runs with it");
  cmd->add_flag(
      "--enable-lora", o->enable_lora,
      "allow loading LoRA adapters at run time (/v1/load_lora_adapter); --lora implies it");
  cmd->add_option("--max-queue", o->engine.max_waiting,
                  "sequences waiting for a slot before requests get 429")
      ->capture_default_str();
  cmd->add_option("--chat-template", o->chat_template,
                  "chat template for a model folder without one: a built-in name (chatml, llama3, "
                  "...) or a .jinja file")
      ->capture_default_str();
  cmd->add_option("--max-body-bytes", o->max_body_bytes, "larger request bodies get 413")
      ->capture_default_str();
  cmd->add_option("--request-timeout", o->request_timeout_s, "seconds a request may run")
      ->capture_default_str();
  cmd->add_option("--http-threads", o->http_threads,
                  "HTTP worker threads; 0 = max-batch + max-queue + 8")
      ->capture_default_str();
  cmd->callback([&runs, o, kv_mib] {
    runs.push_back([o, kv_mib] {
      if (*kv_mib < 1) usage_error("--kv-memory-mb must be >= 1, got {}", *kv_mib);
      ServeOptions opts = *o;
      opts.engine.kv_memory_bytes = *kv_mib * (1LL << 20);
      if (opts.api_key.empty()) {
        if (const char* env = std::getenv("REEF_API_KEY")) opts.api_key = env;
      }
      opts.model_dir = resolve_model_dir(opts.model_dir);
      return run_server(opts);
    });
  });
}

}  // namespace reef::cli
