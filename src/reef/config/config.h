// Typed configuration: one struct per section, each field with its default and a one-line
// comment. Every section lists its fields in visit(), which drives YAML loading, dotted
// overrides, validation messages and `reef config show`, so a field is declared exactly once.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace reef {

struct RunConfig {
  std::string dir = "runs/default";
  int64_t seed = 1234;
  std::string device = "cpu";
  int64_t threads = 0;

  template <class V>
  void visit(V& v) {
    v("dir", dir, "run folder: checkpoints/, metrics.jsonl, TensorBoard events, config.yaml");
    v("seed", seed, "seed for initialisation, data order and dropout; equal seeds give equal runs");
    v("device", device, "cpu, cuda or cuda:N");
    v("threads", threads, "intra-op CPU threads; 0 uses every core");
  }
};

struct ModelConfig {
  std::string preset = "";
  std::string init_from = "";
  std::string arch = "llama";
  int64_t vocab_size = 0;
  int64_t hidden_size = 256;
  int64_t intermediate_size = 0;
  int64_t n_layers = 4;
  int64_t n_heads = 4;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t max_seq_len = 256;
  double norm_eps = 1e-5;
  double rope_theta = 10000.0;
  std::string rope_scaling = "none";
  double rope_factor = 1.0;
  double rope_low_freq_factor = 1.0;
  double rope_high_freq_factor = 4.0;
  int64_t rope_original_max_seq_len = 8192;
  bool attention_bias = false;
  bool mlp_bias = false;
  bool qk_norm = false;
  bool tie_embeddings = false;
  std::string activation = "auto";
  double init_std = 0.02;
  int64_t n_experts = 0;
  int64_t n_experts_per_tok = 2;
  double router_aux_loss_coef = 0.001;
  bool output_router_logits = false;
  // Not config keys: `reef align rm` sets them, and a *ForSequenceClassification folder's
  // config.json carries them. num_labels > 0 makes the model a sequence classifier (a reward
  // model with 1): a `score` head of that many outputs replaces the LM head, and a row's output
  // is read at its last token that is not pad_token_id (transformers' rule; -1: none).
  int64_t num_labels = 0;
  int64_t pad_token_id = -1;

  template <class V>
  void visit(V& v) {
    v("preset", preset, "named preset applied before the other keys (see `reef config presets`)");
    v("init_from", init_from,
      "Hugging Face model folder (config.json + safetensors) to start from: its architecture, "
      "weights and (unless data.tokenizer is set) tokenizer; empty = random init");
    v("arch", arch,
      "architecture = HF model_type: llama, mistral, mixtral, qwen2, qwen3, gemma or gpt2");
    v("vocab_size", vocab_size, "vocabulary size; 0 takes the tokenizer's");
    v("hidden_size", hidden_size, "width of the residual stream");
    v("intermediate_size", intermediate_size,
      "MLP width; 0 = 4*hidden (gpt2) or SwiGLU 8/3*hidden rounded to 64");
    v("n_layers", n_layers, "number of decoder blocks");
    v("n_heads", n_heads, "attention (query) heads");
    v("n_kv_heads", n_kv_heads, "key/value heads (GQA/MQA); 0 = n_heads");
    v("head_dim", head_dim, "per-head width; 0 = hidden_size / n_heads");
    v("max_seq_len", max_seq_len, "longest sequence (positions) the model supports");
    v("norm_eps", norm_eps, "epsilon of RMSNorm/LayerNorm");
    v("rope_theta", rope_theta, "RoPE base frequency");
    v("rope_scaling", rope_scaling, "RoPE scaling: none, linear or llama3");
    v("rope_factor", rope_factor, "RoPE scaling factor (linear, llama3)");
    v("rope_low_freq_factor", rope_low_freq_factor, "llama3 rope scaling low_freq_factor");
    v("rope_high_freq_factor", rope_high_freq_factor, "llama3 rope scaling high_freq_factor");
    v("rope_original_max_seq_len", rope_original_max_seq_len,
      "llama3 rope scaling original_max_position_embeddings");
    v("attention_bias", attention_bias, "biases on q/k/v/o projections (qwen2: q/k/v only)");
    v("mlp_bias", mlp_bias, "biases on the MLP projections (llama family)");
    v("qk_norm", qk_norm, "RMSNorm on per-head queries and keys (qwen3)");
    v("tie_embeddings", tie_embeddings, "LM head shares the token embedding matrix");
    v("activation", activation,
      "MLP activation: auto (silu for the llama family, gelu_pytorch_tanh for gemma, gelu_new for "
      "gpt2), silu, gelu, gelu_new, gelu_pytorch_tanh, relu");
    v("init_std", init_std,
      "std of the normal initialisation; residual projections scaled by 1/sqrt(2*n_layers)");
    v("n_experts", n_experts,
      "mixtral: experts per MoE layer (HF num_local_experts); 0 = 8 for mixtral, must be 0 for the "
      "dense archs");
    v("n_experts_per_tok", n_experts_per_tok,
      "mixtral: experts each token is routed to (HF num_experts_per_tok)");
    v("router_aux_loss_coef", router_aux_loss_coef,
      "mixtral: weight of the load-balancing loss added to the training loss when "
      "output_router_logits is on");
    v("output_router_logits", output_router_logits,
      "mixtral: train with the load-balancing auxiliary loss (HF output_router_logits)");
  }
};

struct DataConfig {
  std::vector<std::string> blend = {};
  std::vector<std::string> valid_blend = {};
  std::string split = "969,30,1";
  std::string index_cache_dir = "";
  std::vector<std::string> train_files = {};
  std::vector<std::string> valid_files = {};
  std::string format = "auto";
  std::string text_key = "text";
  double valid_fraction = 0.0;
  int64_t seq_len = 128;
  std::string tokenizer = "byte";
  std::string chat_template = "";
  bool packing = true;
  std::string overlong = "drop";
  std::string on_bad_row = "error";
  bool group_by_length = false;

  template <class V>
  void visit(V& v) {
    v("blend", blend,
      "indexed datasets (reef data prepare) to train on: PREFIX, [PREFIX1, PREFIX2] (blended by "
      "size) or Megatron's [w1, PREFIX1, w2, PREFIX2]");
    v("valid_blend", valid_blend,
      "indexed datasets for validation (used whole); empty takes the validation share of "
      "data.split from data.blend");
    v("split", split,
      "train,valid,test shares of each blend dataset's documents, as Megatron's \"969,30,1\"");
    v("index_cache_dir", index_cache_dir,
      "where sample-index caches (.sidx) go; empty: beside each dataset");
    v("train_files", train_files,
      "small runs without data.blend: .txt (one document per blank-line-separated block) or .jsonl "
      "documents, tokenized at start");
    v("valid_files", valid_files,
      "validation documents; empty holds out valid_fraction of train_files");
    v("format", format, "auto (by extension), text or jsonl");
    v("text_key", text_key, "JSONL field holding the document text");
    v("valid_fraction", valid_fraction,
      "fraction of training documents held out for validation when valid_files is empty");
    v("seq_len", seq_len, "tokens per training sample (<= model.max_seq_len)");
    v("tokenizer", tokenizer,
      "byte (256 bytes + specials), or a tokenizer folder or file (tokenizer.json, .model, "
      ".tiktoken); with data.blend, the one the datasets were prepared with");
    v("chat_template", chat_template,
      "finetune: empty = the model's own chat template (tokenizer_config.json / "
      "chat_template.jinja), else a built-in name (chatml, llama3, gemma, ...) or a .jinja file");
    v("packing", packing,
      "finetune: pack several samples into each sequence (positions restart and attention stays "
      "within each sample); false pads every sample to seq_len");
    v("overlong", overlong,
      "finetune: a sample longer than seq_len + 1 tokens is dropped (drop, counted in the log), "
      "cut to length (truncate) or an error (error)");
    v("on_bad_row", on_bad_row,
      "align dpo: a preference row that cannot be used is an error naming file, line and field "
      "(error), or dropped and counted (skip)");
    v("group_by_length", group_by_length,
      "align dpo/rm: order each epoch's shuffled pairs by length within groups of 50 steps' "
      "pairs, so a micro-batch pads less (transformers' group_by_length); false keeps the "
      "shuffled order");
  }
};

struct TrainConfig {
  int64_t max_steps = 100;
  int64_t micro_batch_size = 8;
  int64_t grad_accum = 1;
  double clip_grad = 1.0;
  double z_loss = 0.0;
  std::string precision = "fp32";
  int64_t eval_every = 50;
  int64_t eval_batches = 8;

  template <class V>
  void visit(V& v) {
    v("max_steps", max_steps, "optimizer steps to run");
    v("micro_batch_size", micro_batch_size, "sequences per forward/backward pass");
    v("grad_accum", grad_accum, "micro-batches accumulated per optimizer step");
    v("clip_grad", clip_grad, "clip the global gradient norm to this; 0 disables");
    v("z_loss", z_loss, "coefficient of the z-loss, log(Z)^2 per counted target (PaLM: 1e-4)");
    v("precision", precision, "fp32, or bf16 (autocast with fp32 master weights)");
    v("eval_every", eval_every, "validation loss every N steps (and at the end); 0 disables");
    v("eval_batches", eval_batches, "micro-batches per validation pass");
  }
};

struct OptimConfig {
  std::string name = "adamw";
  double lr = 3e-4;
  double min_lr = 3e-5;
  double weight_decay = 0.1;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  int64_t warmup_steps = 10;
  std::string schedule = "cosine";
  bool decay_norms_and_biases = false;

  template <class V>
  void visit(V& v) {
    v("name", name, "optimizer: adamw");
    v("lr", lr, "peak learning rate");
    v("min_lr", min_lr, "learning rate at the end of the decay");
    v("weight_decay", weight_decay, "decoupled weight decay");
    v("beta1", beta1, "Adam beta1");
    v("beta2", beta2, "Adam beta2");
    v("eps", eps, "Adam epsilon");
    v("warmup_steps", warmup_steps, "linear warmup steps from 0 to lr");
    v("schedule", schedule, "decay after warmup: cosine, linear or constant");
    v("decay_norms_and_biases", decay_norms_and_biases, "also decay norms, biases and embeddings");
  }
};

struct CheckpointConfig {
  int64_t every = 0;
  int64_t keep_last = 3;
  bool save_optimizer = true;
  std::string layout = "auto";

  template <class V>
  void visit(V& v) {
    v("every", every, "save every N steps (and always at the end); 0 = only at the end");
    v("keep_last", keep_last, "keep the newest K checkpoints; 0 keeps all");
    v("save_optimizer", save_optimizer, "write optimizer.safetensors (needed to resume)");
    v("layout", layout,
      "auto (distributed with several ranks), consolidated (one Hugging Face folder "
      "written by rank 0) or distributed (every rank writes its own pieces)");
  }
};

struct LoggingConfig {
  int64_t every = 1;
  std::string progress = "auto";
  bool tensorboard = true;
  bool metrics_jsonl = true;

  template <class V>
  void visit(V& v) {
    v("every", every, "log metrics every N steps");
    v("progress", progress, "progress bar: auto (on a terminal), on or off");
    v("tensorboard", tensorboard, "write TensorBoard event files under run.dir/tb");
    v("metrics_jsonl", metrics_jsonl,
      "append one JSON object per logged step to run.dir/metrics.jsonl");
  }
};

struct ParallelConfig {
  int64_t dp = 0;
  int64_t tp = 1;
  int64_t pp = 1;
  int64_t zero = 0;
  bool sequence_parallel = false;
  double bucket_mb = 25.0;
  int64_t timeout_s = 300;
  std::string backend = "auto";

  template <class V>
  void visit(V& v) {
    v("dp", dp,
      "data-parallel ranks; 0 = the world size / (tp * pp) (reef launch, torchrun, srun set the "
      "world)");
    v("tp", tp,
      "tensor-parallel ranks (Megatron-style, llama family; consecutive ranks; n_heads, "
      "n_kv_heads, intermediate_size and vocab_size must divide by it)");
    v("pp", pp,
      "pipeline-parallel stages: decoder layers split into pp balanced stages run with the 1F1B "
      "schedule over train.grad_accum micro-batches (use grad_accum >= pp; at most "
      "model.n_layers)");
    v("zero", zero,
      "ZeRO stage: 0 (replicated optimizer), 1 (AdamW state sharded over dp ranks) or 3 (FSDP: "
      "parameters, gradients and AdamW state sharded over dp ranks; dp only)");
    v("sequence_parallel", sequence_parallel,
      "with tp > 1: norms and residuals between the tensor-parallel regions run on 1/tp of the "
      "sequence (Megatron sequence parallelism: all-gather + reduce-scatter replace each "
      "all-reduce, same bytes, less activation memory); data.seq_len must divide by tp");
    v("bucket_mb", bucket_mb,
      "gradient all-reduce bucket size in MB, overlapped with the backward pass");
    v("timeout_s", timeout_s,
      "seconds a rendezvous or collective may wait for the other ranks before the run fails");
    v("backend", backend, "collectives: auto (gloo on CPU, nccl on CUDA), gloo or nccl");
  }
};

struct PeftConfig {
  std::string method = "none";
  int64_t lora_r = 8;
  double lora_alpha = 16;
  double lora_dropout = 0.0;
  bool use_rslora = false;
  std::vector<std::string> target_modules = {"q_proj", "v_proj"};
  std::string target_regex = "";
  int64_t num_virtual_tokens = 20;
  std::string prompt_init_text = "";

  template <class V>
  void visit(V& v) {
    v("method", method, "finetune: none (every weight trains), lora or prompt_tuning");
    v("lora_r", lora_r, "LoRA rank");
    v("lora_alpha", lora_alpha,
      "LoRA alpha: the branch is scaled by alpha / r (alpha / sqrt(r) with use_rslora)");
    v("lora_dropout", lora_dropout, "dropout on the LoRA branch input while training");
    v("use_rslora", use_rslora, "rank-stabilised LoRA scaling alpha / sqrt(r)");
    v("target_modules", target_modules,
      "Linear layers that get a LoRA branch: module names or suffixes (q_proj, k_proj, v_proj, "
      "o_proj, gate_proj, up_proj, down_proj) or [all-linear]; PEFT's matching rules");
    v("target_regex", target_regex,
      "instead of target_modules: a regex that must match a layer's whole name (PEFT's string "
      "form)");
    v("num_virtual_tokens", num_virtual_tokens,
      "prompt_tuning: learned vectors put before every sample");
    v("prompt_init_text", prompt_init_text,
      "prompt_tuning: initialise the vectors from this text's token embeddings (PEFT's TEXT init); "
      "empty = random (PEFT's RANDOM)");
  }
};

struct DpoConfig {
  std::string loss_type = "sigmoid";
  double beta = 0.1;
  double label_smoothing = 0.0;
  double simpo_gamma = 0.5;
  double rpo_alpha = 0.0;
  int64_t max_length = 1024;
  std::string reference_cache_dir = "";

  template <class V>
  void visit(V& v) {
    v("loss_type", loss_type,
      "align dpo: sigmoid (DPO), ipo, hinge, robust (label_smoothing) or simpo (reference-free, "
      "length-normalised, simpo_gamma)");
    v("beta", beta, "align dpo: temperature of the implicit reward (IPO's tau)");
    v("label_smoothing", label_smoothing,
      "align dpo: robust (and simpo): probability that a preference label is flipped, in [0, 0.5)");
    v("simpo_gamma", simpo_gamma, "align dpo: simpo's target reward margin");
    v("rpo_alpha", rpo_alpha,
      "align dpo: weight of the NLL of the chosen answers (mean per token) added to the loss "
      "(RPO); 0 disables");
    v("max_length", max_length,
      "align dpo: each sequence (prompt + answer) is cut to this many tokens keeping its start, "
      "and pairs whose prompt fills it are dropped (TRL's max_length); 0 disables");
    v("reference_cache_dir", reference_cache_dir,
      "align dpo: where the reference log-probs are cached (keyed by the data and the "
      "reference's weights); empty = run.dir/reference_logps");
  }
};

struct RmConfig {
  double center_rewards_coefficient = 0.0;

  template <class V>
  void visit(V& v) {
    v("center_rewards_coefficient", center_rewards_coefficient,
      "align rm: weight of the mean squared sum of the pair's rewards added to the loss, keeping "
      "rewards centred on 0 (TRL's center_rewards_coefficient, Eisenstein et al. 2023); 0 "
      "disables");
  }
};

// `reef align grpo` (align/grpo_loss.h, recipes/grpo.h). The names and defaults are TRL's
// GRPOConfig's, except steps_per_generation, which counts optimizer steps here.
struct GrpoConfig {
  int64_t num_generations = 8;
  int64_t max_completion_length = 64;
  double temperature = 1.0;
  double top_p = 1.0;
  int64_t top_k = 0;
  std::vector<std::string> stop = {};
  std::string loss_type = "dapo";
  std::string importance_sampling_level = "token";
  double epsilon = 0.2;
  double epsilon_high = 0.0;
  double beta = 0.0;
  bool use_bias_correction_kl = true;
  std::string scale_rewards = "group";
  bool mask_truncated_completions = false;
  int64_t num_iterations = 1;
  int64_t steps_per_generation = 1;
  std::vector<std::string> rewards = {"exact_match"};
  std::string answer_field = "answer";
  std::string answer_regex = "";
  std::string format_regex = "";
  std::string json_schema = "";
  std::string gym_url = "";
  double env_timeout_s = 30.0;
  int64_t env_retries = 2;
  int64_t max_slots = 0;
  int64_t kv_memory_mb = 1024;
  bool save_rollouts = true;

  template <class V>
  void visit(V& v) {
    v("num_generations", num_generations,
      "align grpo: completions sampled per prompt (G); their rewards are compared within the "
      "group");
    v("max_completion_length", max_completion_length,
      "align grpo: new tokens per completion at most (longer ones are cut: finish_reason length)");
    v("temperature", temperature,
      "align grpo: sampling temperature; the policy's log-probs are taken at the same temperature");
    v("top_p", top_p, "align grpo: nucleus sampling of the rollouts (1 = off)");
    v("top_k", top_k, "align grpo: top-k sampling of the rollouts (0 = off)");
    v("stop", stop, "align grpo: strings that end a completion (besides the eos token)");
    v("loss_type", loss_type,
      "align grpo: grpo (per-sequence mean), bnpo (per-micro-batch token mean), dr_grpo (sum over "
      "the micro-batch / (rows x max_completion_length)) or dapo (token mean over the step)");
    v("importance_sampling_level", importance_sampling_level,
      "align grpo: token (a ratio per token) or sequence (GSPO: the mean log-ratio per sequence)");
    v("epsilon", epsilon, "align grpo: lower clip of the ratio, 1 - epsilon");
    v("epsilon_high", epsilon_high,
      "align grpo: upper clip of the ratio, 1 + epsilon_high (DAPO's clip-higher); 0 = epsilon");
    v("beta", beta,
      "align grpo: weight of the k3 KL to the reference model (the initial weights; with LoRA the "
      "base without the adapter); 0 keeps no reference");
    v("use_bias_correction_kl", use_bias_correction_kl,
      "align grpo: multiply the KL term by the importance ratio (the unbiased reverse-KL "
      "gradient, DeepSeek-V3.2; TRL's default)");
    v("scale_rewards", scale_rewards,
      "align grpo: advantages are reward - group mean, divided by the std of the group, of the "
      "batch, or not at all (none)");
    v("mask_truncated_completions", mask_truncated_completions,
      "align grpo: completions cut at max_completion_length count for no loss");
    v("num_iterations", num_iterations,
      "align grpo: passes over each generation batch (mu); the ratio is to the log-probs at "
      "generation");
    v("steps_per_generation", steps_per_generation,
      "align grpo: optimizer steps per generation batch (train.micro_batch_size x "
      "train.grad_accum completions each)");
    v("rewards", rewards,
      "align grpo: the environments whose weighted sum is the reward, each name[:weight]: "
      "exact_match, math, format (format_regex), json (json_schema), gym (gym_url)");
    v("answer_field", answer_field,
      "align grpo: the key of a prompt's metadata that holds the expected answer");
    v("answer_regex", answer_regex,
      "align grpo: exact_match compares the first group of this regex's last match in the "
      "completion (empty: the whole completion, trimmed)");
    v("format_regex", format_regex,
      "align grpo: the format reward is 1 when this regex matches the whole completion");
    v("json_schema", json_schema,
      "align grpo: the json reward's JSON Schema file (empty: any valid JSON; a prompt's "
      "metadata \"schema\" overrides it)");
    v("gym_url", gym_url,
      "align grpo: base URL of a NeMo Gym resources server (/seed_session, /verify) for the gym "
      "reward");
    v("env_timeout_s", env_timeout_s, "align grpo: seconds an environment call may take");
    v("env_retries", env_retries,
      "align grpo: retries of a failed or timed-out environment call before the completion is "
      "dropped (counted)");
    v("max_slots", max_slots,
      "align grpo: sequences the engine decodes at once (0: a whole generation batch)");
    v("kv_memory_mb", kv_memory_mb, "align grpo: the engine's KV cache budget (MiB)");
    v("save_rollouts", save_rollouts,
      "align grpo: write each generation batch's prompts, completions and rewards to "
      "run.dir/rollouts/ (JSONL)");
  }
};

struct Config {
  RunConfig run;
  ModelConfig model;
  DataConfig data;
  TrainConfig train;
  OptimConfig optim;
  CheckpointConfig checkpoint;
  LoggingConfig logging;
  ParallelConfig parallel;
  PeftConfig peft;
  DpoConfig dpo;
  RmConfig rm;
  GrpoConfig grpo;

  template <class V>
  void visit_sections(V& v) {
    v("run", run);
    v("model", model);
    v("data", data);
    v("train", train);
    v("optim", optim);
    v("checkpoint", checkpoint);
    v("logging", logging);
    v("parallel", parallel);
    v("peft", peft);
    v("dpo", dpo);
    v("rm", rm);
    v("grpo", grpo);
  }
};

// A loaded config and where each key's value came from ("recipes/x.yaml:12", "command line",
// "preset llama-tiny", "default"), for error messages and `reef config show`.
struct ResolvedConfig {
  Config config;
  std::map<std::string, std::string> origin;  // dotted key -> source

  // Where `key`'s value came from; "default" when nothing set it.
  std::string from(const std::string& key) const {
    auto it = origin.find(key);
    return it == origin.end() ? "default" : it->second;
  }
  bool is_default(const std::string& key) const { return from(key) == "default"; }
};

// Loads `path` (may be empty: defaults only), applies model.preset, then the dotted
// `overrides` ("train.max_steps=50"), then validates. Throws reef::Error(kUsage) with one line
// naming the key, its source and what is expected.
ResolvedConfig load_config(const std::string& path, const std::vector<std::string>& overrides);

// Validates cross-field constraints; `origin` is used to say where a bad value came from.
void validate_config(const Config& cfg, const std::map<std::string, std::string>& origin);

// The resolved config as YAML, every field present, with its comment. Loading it back yields
// the same Config.
std::string config_to_yaml(const Config& cfg, bool with_comments = true);

// Applies the same dotted override to an already-resolved config (used by resume/generate).
void apply_override(ResolvedConfig& rc, const std::string& assignment);

// Names of the built-in model presets and the dotted keys each sets.
const std::map<std::string, std::map<std::string, std::string>>& model_presets();

// ---- Helpers built on the declarations above ----

// Like load_config, but the YAML comes from `yaml_text`; `source` names it in messages and
// origins ("recipes/x.yaml" -> "recipes/x.yaml:12"). Used for run-folder configs and tests.
ResolvedConfig load_config_text(const std::string& yaml_text, const std::string& source,
                                const std::vector<std::string>& overrides);

// One known key, for `reef config keys` and did-you-mean: its dotted name, its type ("int",
// "float", "bool", "string", "list"), its default as YAML text, and its comment.
struct ConfigKey {
  std::string key;
  std::string type;
  std::string default_value;
  std::string comment;
};
const std::vector<ConfigKey>& config_keys();

// Field-by-field equality (doubles compared exactly), e.g. for the config_to_yaml round trip.
bool operator==(const Config& a, const Config& b);
inline bool operator!=(const Config& a, const Config& b) { return !(a == b); }

// The model's derived values, with the "0 = auto" and "auto" defaults filled in, so every
// layer agrees on them.
std::string resolved_activation(const ModelConfig& m);     // the named one; auto = arch own
int64_t resolved_kv_heads(const ModelConfig& m);           // n_kv_heads or n_heads
int64_t resolved_head_dim(const ModelConfig& m);           // head_dim or hidden / n_heads
int64_t resolved_intermediate_size(const ModelConfig& m);  // 4*hidden, or 8/3*hidden up to 64
bool uses_rope(const ModelConfig& m);                      // every arch but gpt2

}  // namespace reef
