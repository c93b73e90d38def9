// `reef data prepare` (JSONL / text -> Megatron indexed dataset) and `reef data inspect`
// (counts, length histogram, decoded samples): thin CLI wrappers over data/prepare.h.
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "reef/base/log.h"
#include "reef/cli/subcommands.h"
#include "reef/data/prepare.h"
#include "reef/tokenizer/tokenizer.h"

namespace reef::cli {

// Registered from add_data (data_cmd.cpp) on the `data` subcommand.
void add_data_prepare(CLI::App* data, Runs& runs) {
  {
    auto* p = data->add_subcommand("prepare", "tokenize JSONL / text files into an indexed dataset (PREFIX.bin/.idx)");
    struct Args {
      PrepareOptions opts;
      std::string tokenizer;
    };
    auto a = std::make_shared<Args>();
    p->add_option("--input,-i", a->opts.inputs, "input files: .jsonl/.json (one object per line) or text (blank-line separated), plain or .gz/.zst")
        ->required()
        ->expected(1, -1);
    p->add_option("--tokenizer,-t", a->tokenizer, "\"byte\", a tokenizer file or a model folder")->required();
    p->add_option("--output,-o", a->opts.output_prefix, "output prefix (writes PREFIX.bin and PREFIX.idx)")->required();
    p->add_option("--text-key", a->opts.text_key, "JSONL field holding the text")->capture_default_str();
    p->add_flag("--append-eod", a->opts.append_eod, "append the tokenizer's end-of-text after every document");
    p->add_option("--workers,-j", a->opts.workers, "tokenizing threads")->capture_default_str()->check(CLI::PositiveNumber);
    p->add_flag("--skip-bad", a->opts.skip_bad, "count and skip malformed lines instead of failing");
    p->add_option("--progress", a->opts.progress, "progress display: auto, on, off (plain lines) or none")
        ->capture_default_str()
        ->check(CLI::IsMember({"auto", "on", "off", "none"}));
    p->callback([&runs, a] {
      runs.push_back([a] {
        auto tok = make_tokenizer(a->tokenizer);
        log_info("data prepare: {} input file(s), tokenizer {} (vocab {}), {} worker(s)", a->opts.inputs.size(),
                 tok->name(), tok->vocab_size(), a->opts.workers);
        PrepareStats st = prepare_dataset(a->opts, *tok);
        if (st.skipped > 0) log_warn("data prepare: skipped {} bad lines (first: {})", st.skipped, st.first_skipped);
        log_info("{}", format_prepare_summary(st, a->opts.output_prefix));
        return 0;
      });
    });
  }
  {
    auto* in = data->add_subcommand("inspect", "print counts, a document-length histogram and samples of an indexed dataset");
    struct Args {
      std::string prefix, tokenizer;
      int samples = 3;
    };
    auto a = std::make_shared<Args>();
    in->add_option("prefix", a->prefix, "dataset prefix (PREFIX.bin/.idx)")->required();
    in->add_option("--tokenizer,-t", a->tokenizer, "tokenizer to decode samples with (\"byte\", a file or folder)");
    in->add_option("--samples,-k", a->samples, "decoded sample documents (with --tokenizer)")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    in->callback([&runs, a] {
      runs.push_back([a] {
        std::unique_ptr<Tokenizer> tok;
        if (!a->tokenizer.empty()) tok = make_tokenizer(a->tokenizer);
        std::cout << inspect_dataset(a->prefix, tok.get(), a->samples) << std::flush;
        return 0;
      });
    });
  }
}

}  // namespace reef::cli
