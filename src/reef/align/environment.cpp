// Implementation of align/environment.h: the built-in verifiers (exact_match, math, format,
// json), the factory, and the weighted sum over grpo.rewards. The gym client lives in
// gym_environment.cpp.
#include "reef/align/environment.h"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <string_view>

#include "reef/align/gym_environment.h"
#include "reef/align/json_schema.h"
#include "reef/align/math_answer.h"
#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/base/log.h"
#include "reef/base/strings.h"

namespace reef {
namespace {

using ojson = nlohmann::ordered_json;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
const char* kNames = "exact_match, math, format, json, gym";

std::string trim(std::string_view s) {
  const char* ws = " \t\n\r\f\v";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return "";
  return std::string(s.substr(b, s.find_last_not_of(ws) - b + 1));
}

// metadata[field] as text (a number as JSON writes it); nullopt when absent or null.
std::optional<std::string> expected_answer(const ojson& metadata, const std::string& field) {
  if (!metadata.is_object()) return std::nullopt;
  auto it = metadata.find(field);
  if (it == metadata.end() || it->is_null()) return std::nullopt;
  return it->is_string() ? it->get<std::string>() : it->dump();
}

std::regex compile_regex(const std::string& key, const std::string& pattern) {
  try {
    return std::regex(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    usage_error("{}: invalid regex \"{}\": {}", key, pattern, e.what());
  }
}

class ExactMatch : public Environment {
 public:
  explicit ExactMatch(const GrpoConfig& cfg) : field_(cfg.answer_field) {
    if (!cfg.answer_regex.empty()) regex_ = compile_regex("grpo.answer_regex", cfg.answer_regex);
  }
  std::string name() const override { return "exact_match"; }
  std::vector<double> score(const std::vector<Rollout>& rollouts) override {
    std::vector<double> out;
    for (const auto& r : rollouts) {
      const auto expected = expected_answer(r.metadata, field_);
      if (!expected) {
        out.push_back(kNaN);
        continue;
      }
      std::optional<std::string> answer = r.completion;
      if (regex_) answer = last_match(r.completion);
      out.push_back(answer && trim(*answer) == trim(*expected) ? 1.0 : 0.0);
    }
    return out;
  }

 private:
  // The first group (or the whole match) of the regex's last match; nullopt without one.
  std::optional<std::string> last_match(const std::string& text) const {
    std::optional<std::string> last;
    const size_t group = regex_->mark_count() > 0 ? 1 : 0;
    for (auto it = std::sregex_iterator(text.begin(), text.end(), *regex_);
         it != std::sregex_iterator(); ++it)
      last = (*it)[group].str();
    return last;
  }

  std::string field_;
  std::optional<std::regex> regex_;
};

class MathAnswer : public Environment {
 public:
  explicit MathAnswer(const GrpoConfig& cfg) : field_(cfg.answer_field) {}
  std::string name() const override { return "math"; }
  std::vector<double> score(const std::vector<Rollout>& rollouts) override {
    std::vector<double> out;
    for (const auto& r : rollouts) {
      auto expected = expected_answer(r.metadata, field_);
      if (!expected) {
        out.push_back(kNaN);
        continue;
      }
      // A whole reference solution ("... #### 72", "... \boxed{72}") gives its final answer.
      if (expected->find("\\boxed{") != std::string::npos ||
          expected->find("####") != std::string::npos)
        expected = extract_math_answer(*expected);
      const std::string answer = extract_math_answer(r.completion);
      out.push_back(!answer.empty() && math_answers_equal(answer, *expected) ? 1.0 : 0.0);
    }
    return out;
  }

 private:
  std::string field_;
};

class FormatMatch : public Environment {
 public:
  explicit FormatMatch(const GrpoConfig& cfg) {
    if (cfg.format_regex.empty())
      usage_error(
          "grpo.format_regex: required by the format reward (a regex the whole completion must "
          "match; ECMAScript, where . does not match a newline: write [\\s\\S])");
    regex_ = compile_regex("grpo.format_regex", cfg.format_regex);
  }
  std::string name() const override { return "format"; }
  std::vector<double> score(const std::vector<Rollout>& rollouts) override {
    std::vector<double> out;
    for (const auto& r : rollouts)
      out.push_back(std::regex_match(r.completion, regex_) ? 1.0 : 0.0);
    return out;
  }

 private:
  std::regex regex_;
};

// The completion without surrounding space and a Markdown code fence (```json ... ```).
std::string unfenced(const std::string& completion) {
  std::string s = trim(completion);
  if (!starts_with(s, "```")) return s;
  size_t at = 3;
  while (at < s.size() &&
         (std::isalnum(static_cast<unsigned char>(s[at])) || s[at] == '_' || s[at] == '-'))
    ++at;  // the language tag
  s = s.substr(at);
  if (ends_with(s, "```")) s.resize(s.size() - 3);
  return trim(s);
}

class JsonValid : public Environment {
 public:
  explicit JsonValid(const GrpoConfig& cfg) {
    const std::string& path = cfg.json_schema;
    if (path.empty()) return;
    std::string text;
    try {
      text = read_file(path);
    } catch (const Error& e) {
      usage_error("grpo.json_schema: {}", e.what());
    }
    ojson schema;
    try {
      schema = ojson::parse(text);
    } catch (const std::exception& e) {
      usage_error("grpo.json_schema: {} is not JSON: {}", path, e.what());
    }
    try {
      file_schema_ = std::make_unique<JsonSchema>(std::move(schema));
    } catch (const Error& e) {
      usage_error("grpo.json_schema: {} is no valid schema: {}", path, e.what());
    }
  }
  std::string name() const override { return "json"; }
  std::vector<double> score(const std::vector<Rollout>& rollouts) override {
    std::vector<double> out;
    std::map<std::string, std::unique_ptr<JsonSchema>> row_schemas;  // by their text
    int64_t bad_schemas = 0;
    std::string first_problem;
    for (const auto& r : rollouts) {
      const JsonSchema* schema = file_schema_.get();
      if (r.metadata.is_object() && r.metadata.contains("schema")) {
        const ojson& s = r.metadata["schema"];
        const std::string key = s.is_string() ? s.get<std::string>() : s.dump();
        auto it = row_schemas.find(key);
        if (it == row_schemas.end()) {
          std::unique_ptr<JsonSchema> made;
          try {
            made = std::make_unique<JsonSchema>(s.is_string() ? ojson::parse(key) : s);
          } catch (const std::exception& e) {
            if (first_problem.empty()) first_problem = e.what();
          }
          it = row_schemas.emplace(key, std::move(made)).first;
        }
        schema = it->second.get();
        if (!schema) {
          ++bad_schemas;
          out.push_back(kNaN);
          continue;
        }
      }
      ojson value;
      try {
        value = ojson::parse(unfenced(r.completion));
      } catch (const std::exception&) {
        out.push_back(0.0);
        continue;
      }
      out.push_back(!schema || schema->validate(value) ? 1.0 : 0.0);
    }
    if (bad_schemas > 0)
      log_warn("json reward: {} rollouts have a metadata schema that is no valid schema ({})",
               bad_schemas, first_problem);
    return out;
  }

 private:
  std::unique_ptr<JsonSchema> file_schema_;
};

}  // namespace

std::unique_ptr<Environment> make_environment(const std::string& name, const GrpoConfig& cfg) {
  if (name == "exact_match") return std::make_unique<ExactMatch>(cfg);
  if (name == "math") return std::make_unique<MathAnswer>(cfg);
  if (name == "format") return std::make_unique<FormatMatch>(cfg);
  if (name == "json") return std::make_unique<JsonValid>(cfg);
  if (name == "gym") return std::make_unique<GymEnvironment>(cfg);
  usage_error("grpo.rewards: unknown environment \"{}\" ({})", name, kNames);
}

RewardSet::RewardSet(const GrpoConfig& cfg) {
  if (cfg.rewards.empty()) usage_error("grpo.rewards: at least one environment ({})", kNames);
  std::set<std::string> seen;
  for (const auto& entry : cfg.rewards) {
    const size_t colon = entry.find(':');
    const std::string name = trim(entry.substr(0, colon));
    double weight = 1.0;
    if (colon != std::string::npos) {
      const std::string w = trim(entry.substr(colon + 1));
      char* end = nullptr;
      weight = w.empty() ? kNaN : std::strtod(w.c_str(), &end);
      if (w.empty() || *end != '\0' || !std::isfinite(weight))
        usage_error(
            "grpo.rewards: \"{}\" has the weight \"{}\": expected name:weight with a number", entry,
            w);
    }
    if (!seen.insert(name).second)
      usage_error("grpo.rewards: \"{}\" is listed twice (give it one weight)", name);
    envs_.push_back(make_environment(name, cfg));
    weights_.push_back(weight);
  }
}

std::vector<std::string> RewardSet::names() const {
  std::vector<std::string> out;
  for (const auto& e : envs_) out.push_back(e->name());
  return out;
}

Rewards RewardSet::score(const std::vector<Rollout>& rollouts) {
  Rewards out;
  out.total.assign(rollouts.size(), 0.0);
  std::vector<bool> scored(rollouts.size(), false);
  for (size_t e = 0; e < envs_.size(); ++e) {
    std::vector<double> r = envs_[e]->score(rollouts);
    if (r.size() != rollouts.size())
      fail("reward environment {} gave {} rewards for {} rollouts", envs_[e]->name(), r.size(),
           rollouts.size());
    for (size_t i = 0; i < r.size(); ++i) {
      if (std::isnan(r[i])) continue;
      out.total[i] += weights_[e] * r[i];
      scored[i] = true;
    }
    out.per_environment.emplace_back(envs_[e]->name(), std::move(r));
  }
  for (size_t i = 0; i < rollouts.size(); ++i) {
    if (scored[i]) continue;
    out.total[i] = kNaN;
    ++out.dropped;
  }
  return out;
}

}  // namespace reef
