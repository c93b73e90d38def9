// `reef tokenizer chat`: renders conversations from a JSONL file with a model's chat template
// (tokenizer/chat_template.h), byte for byte what transformers' apply_chat_template(...,
// tokenize=False) gives; and the options shared with `reef data inspect --sft` (template
// fallback, extra template variables).
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/cli/subcommands.h"
#include "reef/tokenizer/chat_template.h"

namespace reef::cli {

using ojson = nlohmann::ordered_json;

// KEY=VALUE pairs as template variables; VALUE is JSON when it parses (true, 3, [..]), else text.
ojson parse_template_vars(const std::vector<std::string>& pairs) {
  ojson vars = ojson::object();
  for (const std::string& p : pairs) {
    size_t eq = p.find('=');
    if (eq == std::string::npos || eq == 0) usage_error("--var {}: expected KEY=VALUE", p);
    std::string value = p.substr(eq + 1);
    try {
      vars[p.substr(0, eq)] = ojson::parse(value);
    } catch (const nlohmann::json::exception&) {
      vars[p.substr(0, eq)] = value;
    }
  }
  return vars;
}

namespace {

struct ChatArgs {
  std::string model, messages, fallback;
  std::vector<std::string> vars;
  bool add_generation_prompt = false;
};

int run_chat(const ChatArgs& a) {
  if (!is_directory(a.model)) usage_error("--model {}: not a folder", a.model);
  if (!path_exists(a.messages)) usage_error("--messages {}: file not found", a.messages);
  ChatTemplate tmpl = ChatTemplate::load(a.model, a.fallback);
  ChatOptions opts;
  opts.add_generation_prompt = a.add_generation_prompt;
  opts.variables = parse_template_vars(a.vars);
  const std::vector<RenderedConversation> rendered = render_conversations(tmpl, a.messages, opts);
  if (rendered.empty()) usage_error("--messages {}: no conversation found", a.messages);
  // One conversation prints exactly its text; several get a header line each.
  for (const auto& [source, text] : rendered) {
    if (rendered.size() > 1) std::cout << "=== " << source << " ===\n";
    std::cout << text;
    if (rendered.size() > 1) std::cout << "\n";
  }
  std::cout << std::flush;
  return 0;
}

}  // namespace

void add_tokenizer_chat(CLI::App* tokenizer, Runs& runs) {
  auto* c = tokenizer->add_subcommand(
      "chat", "render conversations (JSONL) with a model's chat template, as transformers does");
  auto a = std::make_shared<ChatArgs>();
  c->add_option("--model,-m", a->model,
                "model or tokenizer folder (chat_template.jinja / tokenizer_config.json)")
      ->required();
  c->add_option("--messages", a->messages,
                "JSONL: one conversation a line, {\"messages\": [...], \"tools\": [...]} or a list "
                "of messages")
      ->required();
  c->add_flag("--add-generation-prompt", a->add_generation_prompt,
              "end with the assistant's turn header");
  c->add_option("--template", a->fallback,
                "when the folder has no template: a built-in one (chatml, gemma, llama3, mistral) "
                "or a .jinja file");
  c->add_option("--var", a->vars,
                "template variable KEY=VALUE (JSON or text), e.g. enable_thinking=false");
  c->callback([&runs, a] { runs.push_back([a] { return run_chat(*a); }); });
}

}  // namespace reef::cli
