// `reef data prepare` (JSONL / text -> Megatron indexed dataset) and `reef data inspect`
// (counts, length histogram, decoded samples; or SFT samples with their loss mask, data/sft.h):
// thin CLI wrappers.
#include <unistd.h>

#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/base/log.h"
#include "reef/cli/subcommands.h"
#include "reef/data/preference.h"
#include "reef/data/prepare.h"
#include "reef/data/sft.h"
#include "reef/tokenizer/tokenizer.h"

namespace reef::cli {

nlohmann::ordered_json parse_template_vars(const std::vector<std::string>& pairs);  // chat_cmd.cpp

// Registered from add_data (data_cmd.cpp) on the `data` subcommand.
void add_data_prepare(CLI::App* data, Runs& runs) {
  {
    auto* p = data->add_subcommand(
        "prepare", "tokenize JSONL / text files into an indexed dataset (PREFIX.bin/.idx)");
    struct Args {
      PrepareOptions opts;
      std::string tokenizer;
    };
    auto a = std::make_shared<Args>();
    p->add_option("--input,-i", a->opts.inputs,
                  "input files: .jsonl/.json (one object per line) or text (blank-line separated), "
                  "plain or .gz/.zst")
        ->required()
        ->expected(1, -1);
    p->add_option("--tokenizer,-t", a->tokenizer, "\"byte\", a tokenizer file or a model folder")
        ->required();
    p->add_option("--output,-o", a->opts.output_prefix,
                  "output prefix (writes PREFIX.bin and PREFIX.idx)")
        ->required();
    p->add_option("--text-key", a->opts.text_key, "JSONL field holding the text")
        ->capture_default_str();
    p->add_flag("--append-eod", a->opts.append_eod,
                "append the tokenizer's end-of-text after every document");
    p->add_option("--workers,-j", a->opts.workers, "tokenizing threads")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    p->add_flag("--skip-bad", a->opts.skip_bad,
                "count and skip malformed lines instead of failing");
    p->add_option("--progress", a->opts.progress,
                  "progress display: auto, on, off (plain lines) or none")
        ->capture_default_str()
        ->check(CLI::IsMember({"auto", "on", "off", "none"}));
    p->callback([&runs, a] {
      runs.push_back([a] {
        auto tok = make_tokenizer(a->tokenizer);
        log_info("data prepare: {} input file(s), tokenizer {} (vocab {}), {} worker(s)",
                 a->opts.inputs.size(), tok->name(), tok->vocab_size(), a->opts.workers);
        PrepareStats st = prepare_dataset(a->opts, *tok);
        if (st.skipped > 0)
          log_warn("data prepare: skipped {} bad lines (first: {})", st.skipped, st.first_skipped);
        log_info("{}", format_prepare_summary(st, a->opts.output_prefix));
        return 0;
      });
    });
  }
  {
    auto* in = data->add_subcommand(
        "inspect",
        "print counts, a document-length histogram and samples of an indexed dataset, "
        "or (--sft) SFT samples with their supervised tokens marked, or (--pairs) preference "
        "pairs with the tokens the DPO loss counts marked");
    struct Args {
      std::string prefix, tokenizer, sft, pairs, model, fallback;
      std::vector<std::string> vars;
      int samples = 3;
      bool skip_bad = false;
    };
    auto a = std::make_shared<Args>();
    in->add_option("prefix", a->prefix, "dataset prefix (PREFIX.bin/.idx)");
    in->add_option("--tokenizer,-t", a->tokenizer,
                   "tokenizer to decode samples with (\"byte\", a file or folder)");
    in->add_option("--samples,-k,--n", a->samples, "samples to show")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    in->add_option("--sft", a->sft,
                   "SFT JSONL ({\"messages\": ...} or {\"prompt\", \"completion\"} lines)");
    in->add_option("--pairs", a->pairs,
                   "preference JSONL ({\"prompt\", \"chosen\", \"rejected\"} lines, strings or "
                   "messages, or chosen/rejected alone)");
    in->add_flag("--skip-bad", a->skip_bad,
                 "with --pairs: count and skip rows that cannot be used");
    in->add_option("--model,-m", a->model,
                   "with --sft or --pairs: model folder (tokenizer and chat template)");
    in->add_option("--template", a->fallback,
                   "with --sft, when the folder has no template: chatml, gemma, llama3, mistral or "
                   "a .jinja file");
    in->add_option("--var", a->vars, "with --sft: template variable KEY=VALUE (JSON or text)");
    in->callback([&runs, a] {
      runs.push_back([a] {
        if (!a->pairs.empty()) {
          if (!a->prefix.empty() || !a->sft.empty())
            usage_error("data inspect: give one of a dataset prefix, --sft or --pairs");
          if (a->model.empty()) usage_error("data inspect --pairs: --model DIR is required");
          if (!is_directory(a->model)) usage_error("--model {}: not a folder", a->model);
          auto tok = load_tokenizer(a->model);
          std::string fallback = a->fallback.empty() ? "chatml" : a->fallback;
          PreferencePairBuilder builder(*tok, ChatTemplate::load(a->model, fallback),
                                        parse_template_vars(a->vars));
          std::cout << inspect_pairs(a->pairs, builder, a->samples, ::isatty(1) != 0, a->skip_bad)
                    << std::flush;
          return 0;
        }
        if (!a->sft.empty()) {
          if (!a->prefix.empty())
            usage_error("data inspect: give a dataset prefix or --sft, not both");
          if (a->model.empty()) usage_error("data inspect --sft: --model DIR is required");
          if (!is_directory(a->model)) usage_error("--model {}: not a folder", a->model);
          auto tok = load_tokenizer(a->model);
          SftSampleBuilder builder(*tok, ChatTemplate::load(a->model, a->fallback),
                                   parse_template_vars(a->vars));
          std::cout << inspect_sft(a->sft, builder, a->samples, ::isatty(1) != 0) << std::flush;
          return 0;
        }
        if (a->prefix.empty())
          usage_error("data inspect: a dataset prefix (or --sft FILE) is required");
        std::unique_ptr<Tokenizer> tok;
        if (!a->tokenizer.empty()) tok = make_tokenizer(a->tokenizer);
        std::cout << inspect_dataset(a->prefix, tok.get(), a->samples) << std::flush;
        return 0;
      });
    });
  }
}

}  // namespace reef::cli
