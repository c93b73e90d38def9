// `reef serve`: an OpenAI-compatible HTTP server (cpp-httplib) in front of the continuous-
// batching engine (infer/engine.h). Endpoints: POST /v1/completions, POST /v1/chat/completions
// (both with "stream": true as server-sent events ending in "data: [DONE]"), GET /v1/models,
// GET /health, GET /metrics (Prometheus), vLLM's POST /tokenize, /detokenize, GET
// /tokenizer_info and POST /v1/load_lora_adapter, /v1/unload_lora_adapter. Errors are OpenAI error
// objects: 400 bad request, 401 missing/wrong API key, 404 unknown model or path, 413 body too
// large, 429 queue full, 503 draining, 504 request time limit. SIGTERM/SIGINT stop accepting, let
// in-flight requests finish, then return.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "reef/infer/engine.h"

namespace reef {

struct ServeOptions {
  std::string model_dir;   // a model folder (config.json + weights + tokenizer)
  std::string model_name;  // the id /v1/models reports; "" = the folder's name
  std::string host = "127.0.0.1";
  int port = 8000;      // 0 = any free port (printed at start)
  std::string api_key;  // "" = no authentication
  std::string device = "cpu";
  int64_t threads = 0;  // torch CPU threads; 0 = every core
  EngineOptions engine;
  std::string chat_template = "chatml";  // when the model folder has no chat template
  size_t max_body_bytes = 1 << 20;       // larger bodies get 413
  double request_timeout_s = 600;        // a request still running after this is ended (504)
  int64_t http_threads = 0;              // 0 = enough for every slot and queue place, plus a few
  // LoRA adapters served beside the base model: "NAME=DIR" (a PEFT adapter folder); a request
  // whose "model" is NAME runs with it.
  std::vector<std::string> loras;
  // Allow /v1/load_lora_adapter (implied by loras). Off: no adapter hooks in the forward pass.
  bool enable_lora = false;
};

// Loads the model and serves until SIGTERM or SIGINT, then drains; returns the exit code.
// Prints "reef serve: listening on http://HOST:PORT" on stdout once it accepts connections.
// Throws reef::Error for a bad option or model folder (before listening).
int run_server(const ServeOptions& options);

}  // namespace reef
