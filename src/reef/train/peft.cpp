// Implementation of train/peft.h.
#include "reef/train/peft.h"

#include <fmt/format.h>

#include <cmath>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/base/log.h"
#include "reef/checkpoint/peft_io.h"
#include "reef/models/lora.h"
#include "reef/tokenizer/hf_tokenizer.h"

namespace reef {
namespace {

void freeze(CausalLM& model) {
  for (auto& p : model->parameters()) p.set_requires_grad(false);
}

int64_t numel(const std::vector<std::pair<std::string, torch::Tensor>>& ps) {
  int64_t n = 0;
  for (const auto& [name, t] : ps) n += t.numel();
  return n;
}

class LoraPeft : public Peft {
 public:
  LoraPeft(LoraConfig cfg, std::string base) : cfg_(std::move(cfg)), base_(std::move(base)) {}
  std::string method() const override { return "lora"; }
  std::vector<std::pair<std::string, torch::Tensor>> parameters(CausalLM& model) override {
    return lora_named_parameters(model);
  }
  std::vector<std::string> save(const std::string& dir, CausalLM& model) const override {
    save_adapter(dir, model, cfg_, base_);
    return {kAdapterConfigFile, kAdapterWeightsFile};
  }

 private:
  LoraConfig cfg_;
  std::string base_;
};

class PromptTuningPeft : public Peft {
 public:
  PromptTuningPeft(torch::Tensor prompt, ModelConfig model, PromptTuningSpec spec, std::string base)
      : prompt_(std::move(prompt)),
        model_(std::move(model)),
        spec_(std::move(spec)),
        base_(std::move(base)) {
    prompt_.set_requires_grad(true);
  }
  std::string method() const override { return "prompt_tuning"; }
  std::vector<std::pair<std::string, torch::Tensor>> parameters(CausalLM&) override {
    return {{"prompt_embeddings", prompt_}};
  }
  torch::Tensor prefix() const override { return prompt_; }
  std::vector<std::string> save(const std::string& dir, CausalLM&) const override {
    save_prompt_adapter(dir, prompt_, model_, spec_, base_);
    return {kAdapterConfigFile, kAdapterWeightsFile};
  }
  void to(const torch::Device& device) override {
    torch::NoGradGuard ng;
    if (prompt_.device() != device) prompt_ = prompt_.to(device).set_requires_grad(true);
  }

 private:
  torch::Tensor prompt_;
  ModelConfig model_;
  PromptTuningSpec spec_;
  std::string base_;
};

LoraConfig lora_config_of(const PeftConfig& p) {
  LoraConfig c;
  c.layer.r = p.lora_r;
  c.layer.alpha = p.lora_alpha;
  c.layer.dropout = p.lora_dropout;
  c.layer.use_rslora = p.use_rslora;
  c.target_modules = p.target_modules;
  c.target_regex = p.target_regex;
  return c;
}

// A resumed adapter must be the configured one.
void check_same(const std::string& dir, const char* key, const std::string& was,
                const std::string& now) {
  if (was != now)
    usage_error(
        "--resume: the checkpoint's adapter ({}) has {}={}, the config says {}; restore the "
        "setting or start a new run with --overwrite",
        dir, key, was, now);
}

}  // namespace

std::unique_ptr<Peft> attach_peft(CausalLM& model, const Config& cfg, const Tokenizer& tokenizer,
                                  const std::string& base_model, const std::string& resume_dir) {
  const PeftConfig& p = cfg.peft;
  if (p.method == "none") return nullptr;
  const int64_t total = count_parameters(model->config());
  std::unique_ptr<Peft> out;
  if (p.method == "lora") {
    LoraConfig want = lora_config_of(p);
    if (!resume_dir.empty()) {
      freeze(model);
      LoraConfig got = load_adapter(resume_dir, model);
      check_same(resume_dir, "peft.lora_r", std::to_string(got.layer.r),
                 std::to_string(want.layer.r));
      check_same(resume_dir, "peft.lora_alpha", fmt::format("{}", got.layer.alpha),
                 fmt::format("{}", want.layer.alpha));
      check_same(resume_dir, "peft.use_rslora", fmt::format("{}", got.layer.use_rslora),
                 fmt::format("{}", want.layer.use_rslora));
      const auto got_names = lora_target_names(model, got, false);
      const auto want_names = lora_target_names(model, want, false);
      check_same(resume_dir, "peft.target_modules", fmt::format("[{}]", fmt::join(got_names, ", ")),
                 fmt::format("[{}]", fmt::join(want_names, ", ")));
      // dropout is not in the weights; the config's value applies.
      for (auto& [name, t] : lora_named_parameters(model)) t.set_requires_grad(true);
    } else {
      apply_lora(model, want);
    }
    out = std::make_unique<LoraPeft>(want, base_model);
  } else if (p.method == "prompt_tuning") {
    if (cfg.data.packing)
      usage_error(
          "peft.method=prompt_tuning puts its virtual tokens before each row, so rows cannot "
          "hold several samples: set data.packing=false");
    freeze(model);
    const ModelConfig& mc = model->config();
    PromptTuningSpec spec{p.num_virtual_tokens, p.prompt_init_text};
    torch::Tensor prompt;
    if (!resume_dir.empty()) {
      PromptTuningSpec got;
      prompt = load_prompt_adapter(resume_dir, mc, &got);
      check_same(resume_dir, "peft.num_virtual_tokens", std::to_string(got.num_virtual_tokens),
                 std::to_string(spec.num_virtual_tokens));
    } else if (!spec.init_text.empty()) {
      // peft's TEXT init: the init text's token ids (with the tokenizer's special tokens, as a
      // transformers tokenizer call adds them), cycled or cut to num_virtual_tokens, embedded.
      const auto* hf = dynamic_cast<const HfTokenizer*>(&tokenizer);
      std::vector<int32_t> ids = hf ? hf->encode(spec.init_text, EncodeOptions{true, true})
                                    : tokenizer.encode(spec.init_text);
      if (ids.empty()) usage_error("peft.prompt_init_text encodes to no tokens");
      std::vector<int64_t> pick;
      for (int64_t i = 0; i < spec.num_virtual_tokens; ++i)
        pick.push_back(ids[static_cast<size_t>(i) % ids.size()]);
      torch::NoGradGuard ng;
      const auto device = model->parameters().front().device();
      prompt = model->embed_tokens(torch::tensor(pick, torch::kLong).unsqueeze(0).to(device))
                   .squeeze(0)
                   .to(torch::kFloat)
                   .clone();
    } else {
      // peft's RANDOM init: torch.nn.Embedding's normal(0, 1).
      prompt = torch::randn({spec.num_virtual_tokens, mc.hidden_size});
    }
    out = std::make_unique<PromptTuningPeft>(prompt, mc, spec, base_model);
  } else {
    usage_error("peft.method must be none, lora or prompt_tuning, got '{}'", p.method);
  }
  const int64_t trainable = numel(out->parameters(model));
  log_info("peft: {} with {} trainable parameters ({:.3f}% of the model's {})", out->method(),
           trainable, 100.0 * static_cast<double>(trainable) / static_cast<double>(total), total);
  return out;
}

}  // namespace reef
