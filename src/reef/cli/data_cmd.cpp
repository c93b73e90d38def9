// `reef data fortunes --output DIR`: the embedded default corpus; `reef data synth --output DIR`:
// a synthetic instruction set with exact answers (data/synth.h); `reef data prepare` and
// `reef data inspect` are registered from data_prepare_cmd.cpp.
#include <iostream>

#include "reef/base/log.h"
#include "reef/cli/subcommands.h"
#include "reef/data/fortunes.h"
#include "reef/data/synth.h"

namespace reef::cli {

void add_data_prepare(CLI::App* data, Runs& runs);  // data_prepare_cmd.cpp

void add_data(CLI::App& app, Runs& runs) {
  auto* cmd = app.add_subcommand("data", "build and inspect datasets");
  cmd->require_subcommand(1);
  auto* f = cmd->add_subcommand(
      "fortunes", "turn Debian's fortunes into a JSONL corpus with a validation split");
  struct Args {
    std::string source = "/usr/share/games/fortunes", output = "data/fortunes";
    double valid_fraction = 0.05;
  };
  auto a = std::make_shared<Args>();
  f->add_option("--source", a->source, "fortune files folder")->capture_default_str();
  f->add_option("--output,-o", a->output, "output folder (train.jsonl, valid.jsonl)")
      ->capture_default_str();
  f->add_option("--valid-fraction", a->valid_fraction, "share held out for validation")
      ->capture_default_str();
  f->callback([&runs, a] {
    runs.push_back([a] {
      FortunesCorpus c = build_fortunes_corpus(a->source, a->output, a->valid_fraction);
      log_info(
          "fortunes: {} train documents ({:.1f} KB) -> {}, {} validation ({:.1f} KB) -> {}, {} "
          "duplicates dropped",
          c.n_train, c.train_bytes / 1e3, c.train_path, c.n_valid, c.valid_bytes / 1e3,
          c.valid_path, c.n_duplicates);
      return 0;
    });
  });
  auto* s =
      cmd->add_subcommand("synth",
                          "write a synthetic instruction set with exact answers (SFT train set, "
                          "held-out test set and a reef eval task)");
  auto so = std::make_shared<SynthOptions>();
  s->add_option("--output,-o", so->output, "output folder (train.jsonl, test.jsonl, synth.yaml)")
      ->required();
  s->add_option("--train", so->train, "training records")->capture_default_str();
  s->add_option("--test", so->test, "held-out records")->capture_default_str();
  s->add_option("--seed", so->seed, "generator seed")->capture_default_str();
  s->add_option("--tasks", so->tasks,
                "comma-separated subset of: repeat, reverse, first, last, count, add (default all)")
      ->delimiter(',');
  s->callback([&runs, so] {
    runs.push_back([so] {
      SynthResult r = write_synth(*so);
      log_info(
          "synth: {} training records -> {}, {} held-out -> {}, eval task {}, preference pairs "
          "{} and {}",
          r.train, r.train_path, r.test, r.test_path, r.task_path, r.pairs_path, r.test_pairs_path);
      return 0;
    });
  });
  add_data_prepare(cmd, runs);
}

}  // namespace reef::cli
