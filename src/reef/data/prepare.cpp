// Implementation of data/prepare.h. One reader (the calling thread) cuts the inputs into batches
// of raw JSONL lines or text documents, N workers validate, parse and tokenize them, and the
// calling thread writes finished batches strictly in submission order, so the output never
// depends on the number of workers and at most ~2N+2 batches are in memory at once.
#include "reef/data/prepare.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <exception>
#include <filesystem>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "reef/base/compressed.h"
#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/base/log.h"
#include "reef/base/progress.h"
#include "reef/data/documents.h"
#include "reef/tokenizer/regex.h"

namespace reef {
namespace {

bool is_blank(std::string_view s) { return s.find_first_not_of(" \t\r") == std::string_view::npos; }

// Buffered reader of '\n'-terminated lines of a plain, gzip or zstd file; the newline is not
// part of the line.
class LineReader {
 public:
  explicit LineReader(const std::string& path) : in_(path), buf_(1 << 20) {}

  // Reads the next line into *line; *consumed gets its size in the (decompressed) input,
  // newline included.
  bool next(std::string* line, int64_t* consumed) {
    line->clear();
    bool any = false;
    for (;;) {
      if (pos_ == end_) {
        end_ = in_.read(buf_.data(), buf_.size());
        pos_ = 0;
        if (end_ == 0) {
          *consumed = static_cast<int64_t>(line->size());
          return any;
        }
      }
      any = true;
      const char* start = buf_.data() + pos_;
      const void* nl = std::memchr(start, '\n', end_ - pos_);
      if (nl) {
        size_t n = static_cast<const char*>(nl) - start;
        line->append(start, n);
        pos_ += n + 1;
        *consumed = static_cast<int64_t>(line->size()) + 1;
        return true;
      }
      line->append(start, end_ - pos_);
      pos_ = end_;
    }
  }
  // Bytes of the file (compressed, if it is) read so far.
  int64_t file_position() const { return in_.file_position(); }

 private:
  DecompressingReader in_;
  std::vector<char> buf_;
  size_t pos_ = 0, end_ = 0;
};

struct Batch {
  const std::string* path = nullptr;
  bool jsonl = false;
  std::vector<std::string> items;  // raw JSONL lines or whole text documents
  std::vector<int64_t> lines;      // 1-based line of each item's start
  int64_t bytes = 0;               // input bytes this batch covers
  int64_t file_bytes = 0;          // bytes of the input files read up to this batch's end
  // Results, filled by a worker.
  std::vector<int32_t> tokens;
  std::vector<int32_t> lengths;
  std::vector<std::string> bad;  // "file:line: reason" per bad item, in order
  int64_t empty = 0;
  std::exception_ptr fatal;
  bool done = false;
};

// Returns "" and sets *text for a good item, or the reason it is bad.
std::string extract_text(const Batch& b, size_t i, const std::string& text_key, std::string* text,
                         int64_t* bad_line) {
  const std::string& item = b.items[i];
  *bad_line = b.lines[i];
  size_t valid = valid_utf8_prefix(item);
  if (valid != item.size()) {
    const size_t line_start = valid == 0 ? 0 : item.rfind('\n', valid - 1);
    *bad_line += std::count(item.begin(), item.begin() + static_cast<std::ptrdiff_t>(valid), '\n');
    return fmt::format(
        "invalid UTF-8 at byte {} of the line",
        line_start == std::string::npos || valid == 0 ? valid : valid - line_start - 1);
  }
  if (!b.jsonl) {
    *text = item;
    return "";
  }
  nlohmann::json j = nlohmann::json::parse(item, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return "malformed JSON";
  if (!j.is_object()) return "expected a JSON object per line";
  auto it = j.find(text_key);
  if (it == j.end()) return fmt::format("no '{}' field (--text-key)", text_key);
  if (!it->is_string()) return fmt::format("field '{}' is not a string", text_key);
  *text = it->get_ref<const std::string&>();
  return "";
}

void process_batch(Batch* b, const Tokenizer& tok, const PrepareOptions& opts) {
  std::string text;
  for (size_t i = 0; i < b->items.size(); ++i) {
    int64_t line = 0;
    std::string why = extract_text(*b, i, opts.text_key, &text, &line);
    if (!why.empty()) {
      b->bad.push_back(fmt::format("{}:{}: {}", *b->path, line, why));
      if (!opts.skip_bad) break;  // the first bad item fails the run; the rest is irrelevant
      continue;
    }
    std::vector<int32_t> ids = tok.encode(text);
    if (opts.append_eod) ids.push_back(tok.eos_id());
    if (ids.empty()) {
      ++b->empty;
      continue;
    }
    b->tokens.insert(b->tokens.end(), ids.begin(), ids.end());
    b->lengths.push_back(static_cast<int32_t>(ids.size()));
  }
  b->items.clear();
  b->items.shrink_to_fit();
}

// Worker threads that process submitted batches; wait() blocks until a given one is done.
class WorkerPool {
 public:
  WorkerPool(int n, const Tokenizer& tok, const PrepareOptions& opts) : tok_(tok), opts_(opts) {
    for (int i = 0; i < n; ++i) threads_.emplace_back([this] { loop(); });
  }
  ~WorkerPool() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    work_cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void submit(Batch* b) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      queue_.push_back(b);
    }
    work_cv_.notify_one();
  }
  void wait(Batch* b) {
    std::unique_lock<std::mutex> lk(mu_);
    done_cv_.wait(lk, [b] { return b->done; });
  }

 private:
  void loop() {
    for (;;) {
      Batch* b = nullptr;
      {
        std::unique_lock<std::mutex> lk(mu_);
        work_cv_.wait(lk, [this] { return stop_ || !queue_.empty(); });
        if (stop_) return;
        b = queue_.front();
        queue_.pop_front();
      }
      try {
        process_batch(b, tok_, opts_);
      } catch (...) {
        b->fatal = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lk(mu_);
        b->done = true;
      }
      done_cv_.notify_all();
    }
  }

  const Tokenizer& tok_;
  const PrepareOptions& opts_;
  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  std::deque<Batch*> queue_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

PrepareStats prepare_dataset(const PrepareOptions& opts, const Tokenizer& tok) {
  if (opts.inputs.empty()) usage_error("data prepare: no --input files");
  if (opts.output_prefix.empty()) usage_error("data prepare: no --output prefix");
  if (opts.workers < 1)
    usage_error("data prepare: --workers must be at least 1 (got {})", opts.workers);
  if (opts.text_key.empty()) usage_error("data prepare: --text-key must not be empty");
  int64_t total_bytes = 0;
  for (const auto& in : opts.inputs) {
    if (!path_exists(in) || is_directory(in))
      usage_error("data prepare: input file not found: {}", in);
    total_bytes += static_cast<int64_t>(std::filesystem::file_size(in));
  }
  std::string parent = std::filesystem::path(opts.output_prefix).parent_path().string();
  if (!parent.empty() && !path_exists(parent)) make_dirs(parent);

  PrepareStats st;
  st.dtype = token_dtype_for_vocab(tok.vocab_size());
  const auto t0 = std::chrono::steady_clock::now();
  IndexedDatasetWriter writer(opts.output_prefix, st.dtype);

  const bool show = opts.progress != "none";
  const int64_t total_mb = std::max<int64_t>(1, (total_bytes + 999999) / 1000000);
  std::unique_ptr<ProgressBar> bar;
  if (show) bar = std::make_unique<ProgressBar>("prepare MB", total_mb, opts.progress, 1);
  auto last_update = t0;

  auto emit = [&](Batch& b) {
    if (b.fatal) std::rethrow_exception(b.fatal);
    if (!b.bad.empty()) {
      if (!opts.skip_bad) usage_error("{} (use --skip-bad to skip such lines)", b.bad.front());
      if (st.skipped == 0) st.first_skipped = b.bad.front();
      st.skipped += static_cast<int64_t>(b.bad.size());
    }
    size_t off = 0;
    for (int32_t len : b.lengths) {
      writer.add_item(b.tokens.data() + off, static_cast<size_t>(len));
      writer.end_document();
      off += static_cast<size_t>(len);
    }
    st.documents += static_cast<int64_t>(b.lengths.size());
    st.tokens += static_cast<int64_t>(b.tokens.size());
    st.empty += b.empty;
    st.input_bytes += b.bytes;
    const int64_t file_done = b.file_bytes;  // compressed bytes for compressed inputs
    if (bar) {
      auto now = std::chrono::steady_clock::now();
      double since = std::chrono::duration<double>(now - last_update).count();
      if (since >= (bar->is_bar() ? 0.2 : 5.0)) {
        last_update = now;
        double el = std::max(1e-9, seconds_since(t0));
        bar->update(std::min(total_mb, file_done / 1000000),
                    fmt::format("{:.1f} MB/s {} tok/s {} docs", st.input_bytes / 1e6 / el,
                                format_count(st.tokens / el),
                                format_count(static_cast<double>(st.documents))));
      }
    }
  };

  {
    // Declared before the pool so that, on an exception, the pool joins its workers before the
    // batches they may still be working on are freed.
    std::deque<std::unique_ptr<Batch>> inflight;
    WorkerPool pool(opts.workers, tok, opts);
    const size_t max_inflight = static_cast<size_t>(2 * opts.workers + 2);
    auto submit = [&](std::unique_ptr<Batch> b) {
      while (inflight.size() >= max_inflight) {
        pool.wait(inflight.front().get());
        emit(*inflight.front());
        inflight.pop_front();
      }
      pool.submit(b.get());
      inflight.push_back(std::move(b));
    };
    auto fresh = [](const std::string& path, bool jsonl) {
      auto b = std::make_unique<Batch>();
      b->path = &path;
      b->jsonl = jsonl;
      return b;
    };
    auto full = [&](const Batch& b) {
      return static_cast<int64_t>(b.items.size()) >= opts.batch_docs || b.bytes >= opts.batch_bytes;
    };

    int64_t files_before = 0;  // sizes of the input files already read
    for (const auto& path : opts.inputs) {
      const bool jsonl = is_jsonl_path(path);
      LineReader reader(path);
      auto batch = fresh(path, jsonl);
      std::string line, doc;
      int64_t line_no = 0, consumed = 0, doc_line = 0;
      while (reader.next(&line, &consumed)) {
        ++line_no;
        batch->bytes += consumed;
        if (jsonl) {
          if (is_blank(line)) continue;
          batch->items.push_back(line);
          batch->lines.push_back(line_no);
        } else if (is_blank(line)) {
          // text: blank lines separate documents (as read_documents does)
          if (!doc.empty()) {
            batch->items.push_back(std::move(doc));
            batch->lines.push_back(doc_line);
            doc.clear();
          }
        } else {
          if (doc.empty())
            doc_line = line_no;
          else
            doc.push_back('\n');
          doc += line;
        }
        if (full(*batch)) {
          batch->file_bytes = files_before + reader.file_position();
          submit(std::move(batch));
          batch = fresh(path, jsonl);
        }
      }
      if (!doc.empty()) {
        batch->items.push_back(std::move(doc));
        batch->lines.push_back(doc_line);
      }
      files_before += static_cast<int64_t>(std::filesystem::file_size(path));
      batch->file_bytes = files_before;
      if (!batch->items.empty() || batch->bytes > 0) submit(std::move(batch));
    }
    while (!inflight.empty()) {
      pool.wait(inflight.front().get());
      emit(*inflight.front());
      inflight.pop_front();
    }
  }

  if (st.documents == 0) {
    if (st.skipped > 0)
      usage_error("data prepare: no good documents in the inputs ({} bad skipped; first: {})",
                  st.skipped, st.first_skipped);
    usage_error("data prepare: no documents in the inputs");
  }
  writer.finalize();
  st.output_bytes = st.tokens * static_cast<int64_t>(token_dtype_size(st.dtype));
  st.seconds = seconds_since(t0);
  if (bar) {
    double el = std::max(1e-9, st.seconds);
    bar->update(total_mb, fmt::format("{:.1f} MB/s {} tok/s {} docs", st.input_bytes / 1e6 / el,
                                      format_count(st.tokens / el),
                                      format_count(static_cast<double>(st.documents))));
    bar->finish();
  }
  return st;
}

std::string format_prepare_summary(const PrepareStats& s, const std::string& prefix) {
  double el = std::max(1e-9, s.seconds);
  std::string out = fmt::format(
      "prepared {} documents, {} tokens ({}, {:.2f} MB) from {:.2f} MB of input in {}: {:.1f} "
      "MB/s, {} tokens/s -> {}.bin/.idx",
      s.documents, s.tokens, token_dtype_name(s.dtype), s.output_bytes / 1e6, s.input_bytes / 1e6,
      format_duration(s.seconds), s.input_bytes / 1e6 / el, format_count(s.tokens / el), prefix);
  if (s.empty > 0) out += fmt::format("; {} empty documents dropped", s.empty);
  if (s.skipped > 0)
    out += fmt::format("; skipped {} bad lines (first: {})", s.skipped, s.first_skipped);
  return out;
}

std::string inspect_dataset(const std::string& prefix, const Tokenizer* tok, int samples) {
  if (!path_exists(idx_path(prefix)) || !path_exists(bin_path(prefix)))
    usage_error("data inspect: no indexed dataset at {} (expected {} and {})", prefix,
                idx_path(prefix), bin_path(prefix));
  IndexedDataset ds(prefix);
  const int64_t n_docs = ds.num_documents();
  std::string out;
  out += fmt::format("dataset:   {}\n", prefix);
  out += fmt::format("dtype:     {}\n", token_dtype_name(ds.dtype()));
  out += fmt::format("sequences: {}\n", ds.num_sequences());
  out += fmt::format("documents: {}\n", n_docs);
  out += fmt::format("tokens:    {}\n", ds.num_tokens());
  if (n_docs == 0) return out;

  std::vector<int64_t> lens(static_cast<size_t>(n_docs));
  for (int64_t d = 0; d < n_docs; ++d) lens[static_cast<size_t>(d)] = ds.document_length(d);
  std::vector<int64_t> sorted = lens;
  std::sort(sorted.begin(), sorted.end());
  out += fmt::format("document length (tokens): min {} median {} mean {:.1f} max {}\n",
                     sorted.front(), sorted[sorted.size() / 2],
                     static_cast<double>(ds.num_tokens()) / n_docs, sorted.back());

  // Bucket 0 holds empty documents; bucket k >= 1 holds lengths in [2^(k-1), 2^k).
  std::vector<int64_t> buckets;
  for (int64_t len : lens) {
    size_t k = 0;
    while (len >> k) ++k;
    if (buckets.size() <= k) buckets.resize(k + 1, 0);
    ++buckets[k];
  }
  const int64_t peak = *std::max_element(buckets.begin(), buckets.end());
  out += "histogram of document lengths (log2 buckets):\n";
  size_t first = 0;
  while (first < buckets.size() && buckets[first] == 0) ++first;
  for (size_t k = first; k < buckets.size(); ++k) {
    std::string range = k <= 1 ? std::to_string(k)
                               : fmt::format("{}-{}", int64_t{1} << (k - 1), (int64_t{1} << k) - 1);
    int width = static_cast<int>(40 * buckets[k] / peak);
    if (buckets[k] > 0 && width == 0) width = 1;
    out += fmt::format("  {:>15} {:>10} {:5.1f}% {}\n", range, buckets[k],
                       100.0 * buckets[k] / n_docs, std::string(static_cast<size_t>(width), '#'));
  }

  if (tok && samples > 0) {
    const int64_t k = std::min<int64_t>(samples, n_docs);
    constexpr int64_t kMaxShown = 256;
    for (int64_t i = 0; i < k; ++i) {
      int64_t d = i * n_docs / k;
      TokenView v = ds.document(d);
      std::vector<int32_t> ids;
      v.append_to(&ids, 0, std::min(v.size, kMaxShown));
      out += fmt::format("--- sample {}/{}: document {} ({} tokens{}) ---\n", i + 1, k, d, v.size,
                         v.size > kMaxShown ? fmt::format(", first {} shown", kMaxShown) : "");
      try {
        out += tok->decode(ids, /*keep_special=*/true);
      } catch (const std::exception& e) {
        out += fmt::format("(cannot decode with tokenizer {}: {})", tok->name(), e.what());
      }
      out += "\n";
    }
  }
  return out;
}

}  // namespace reef
