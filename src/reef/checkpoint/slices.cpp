// Implementation of checkpoint/slices.h.
#include "reef/checkpoint/slices.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include "reef/base/error.h"

namespace reef {
namespace {

std::string shape_str(const std::vector<int64_t>& shape) {
  return "[" + fmt::format("{}", fmt::join(shape, ", ")) + "]";
}

std::string box_str(const Box& b) {
  std::string s = "[";
  for (size_t d = 0; d < b.offsets.size(); ++d)
    s += fmt::format("{}{}:{}", d ? ", " : "", b.offsets[d], b.offsets[d] + b.lengths[d]);
  return s + "]";
}

int64_t product(const std::vector<int64_t>& v, size_t from = 0) {
  int64_t n = 1;
  for (size_t i = from; i < v.size(); ++i) n *= v[i];
  return n;
}

// The boxes of flat range [s, e) of a tensor whose dimensions from `dim` on are shape[dim:],
// with the leading dimensions fixed by `prefix` (length 1 each); appended in flat order.
void flat_boxes(const std::vector<int64_t>& shape, size_t dim, std::vector<int64_t> prefix,
                int64_t s, int64_t e, std::vector<Box>* out) {
  if (s >= e) return;
  const size_t n = shape.size();
  if (dim == n) {  // a single element (all dimensions fixed)
    out->push_back({prefix, std::vector<int64_t>(n, 1)});
    return;
  }
  const int64_t row = product(shape, dim + 1);  // elements per index of this dimension
  auto with = [&](int64_t off, int64_t len) {
    Box b;
    b.offsets = prefix;
    b.lengths.assign(prefix.size(), 1);
    b.offsets.push_back(off);
    b.lengths.push_back(len);
    for (size_t d = dim + 1; d < n; ++d) {
      b.offsets.push_back(0);
      b.lengths.push_back(shape[d]);
    }
    return b;
  };
  const int64_t first = s / row, last = (e - 1) / row;
  if (first == last) {
    if (s % row == 0 && e % row == 0) return out->push_back(with(first, 1));
    prefix.push_back(first);
    return flat_boxes(shape, dim + 1, prefix, s - first * row, e - first * row, out);
  }
  const int64_t full_begin = (s + row - 1) / row, full_end = e / row;
  if (s % row != 0) {  // the head: the end of row `first`
    auto p = prefix;
    p.push_back(first);
    flat_boxes(shape, dim + 1, p, s - first * row, row, out);
  }
  if (full_end > full_begin) out->push_back(with(full_begin, full_end - full_begin));
  if (e % row != 0) {  // the tail: the start of row `last`
    auto p = prefix;
    p.push_back(last);
    flat_boxes(shape, dim + 1, p, 0, e - last * row, out);
  }
}

}  // namespace

int64_t Box::numel() const { return product(lengths); }

TensorSlice TensorSlice::whole(const std::vector<int64_t>& shape) {
  return of_box(std::vector<int64_t>(shape.size(), 0), shape);
}

TensorSlice TensorSlice::of_box(std::vector<int64_t> offsets, std::vector<int64_t> lengths) {
  TensorSlice s;
  s.box = {std::move(offsets), std::move(lengths)};
  return s;
}

TensorSlice TensorSlice::flat_range(int64_t start, int64_t length) {
  TensorSlice s;
  s.flat = true;
  s.start = start;
  s.length = length;
  return s;
}

int64_t TensorSlice::numel() const { return flat ? length : box.numel(); }

std::vector<int64_t> TensorSlice::local_shape() const {
  return flat ? std::vector<int64_t>{length} : box.lengths;
}

bool TensorSlice::is_whole(const std::vector<int64_t>& shape) const {
  if (flat) return start == 0 && length == product(shape);
  return box.lengths == shape &&
         std::all_of(box.offsets.begin(), box.offsets.end(), [](int64_t o) { return o == 0; });
}

std::string TensorSlice::str() const {
  return flat ? fmt::format("flat[{}:{}]", start, start + length) : box_str(box);
}

std::optional<Box> intersect(const Box& a, const Box& b) {
  if (a.offsets.size() != b.offsets.size()) return std::nullopt;
  Box r;
  for (size_t d = 0; d < a.offsets.size(); ++d) {
    const int64_t lo = std::max(a.offsets[d], b.offsets[d]);
    const int64_t hi = std::min(a.offsets[d] + a.lengths[d], b.offsets[d] + b.lengths[d]);
    if (hi <= lo) return std::nullopt;
    r.offsets.push_back(lo);
    r.lengths.push_back(hi - lo);
  }
  return r;
}

std::vector<SlicePart> slice_parts(const std::vector<int64_t>& shape, const TensorSlice& s) {
  std::vector<SlicePart> out;
  if (!s.flat) {
    bool inside = s.box.offsets.size() == shape.size() && s.box.lengths.size() == shape.size();
    for (size_t d = 0; inside && d < shape.size(); ++d)
      inside = s.box.offsets[d] >= 0 && s.box.lengths[d] >= 0 &&
               s.box.offsets[d] + s.box.lengths[d] <= shape[d];
    if (!inside) fail("slice {} does not lie inside shape {}", s.str(), shape_str(shape));
    if (s.box.numel() > 0) out.push_back({s.box, 0});
    return out;
  }
  if (s.start < 0 || s.length < 0 || s.start + s.length > product(shape))
    fail("slice {} does not lie inside shape {} ({} elements)", s.str(), shape_str(shape),
         product(shape));
  std::vector<Box> boxes;
  flat_boxes(shape, 0, {}, s.start, s.start + s.length, &boxes);
  int64_t at = 0;
  for (auto& b : boxes) {
    const int64_t n = b.numel();
    out.push_back({std::move(b), at});
    at += n;
  }
  return out;
}

std::string check_cover(const std::vector<int64_t>& shape, const std::vector<TensorSlice>& slices) {
  struct Part {
    Box box;
    size_t slice;
  };
  std::vector<Part> parts;
  int64_t covered = 0;
  for (size_t i = 0; i < slices.size(); ++i) {
    std::vector<SlicePart> ps;
    try {
      ps = slice_parts(shape, slices[i]);
    } catch (const Error& e) {
      return e.what();
    }
    for (auto& p : ps) {
      for (const auto& q : parts)
        if (q.slice != i && intersect(q.box, p.box))
          return fmt::format("pieces {} and {} overlap", slices[q.slice].str(), slices[i].str());
      covered += p.box.numel();
      parts.push_back({std::move(p.box), i});
    }
  }
  const int64_t total = product(shape);
  if (covered != total)
    return fmt::format("the pieces cover {} of its {} elements", covered, total);
  return "";
}

std::vector<int> balance_owners(const std::vector<uint64_t>& bytes, int writers) {
  if (writers < 1) fail("balance_owners: {} writers", writers);
  std::vector<uint64_t> load(static_cast<size_t>(writers), 0);
  std::vector<int> owner;
  owner.reserve(bytes.size());
  for (uint64_t b : bytes) {
    const auto it = std::min_element(load.begin(), load.end());
    *it += b;
    owner.push_back(static_cast<int>(it - load.begin()));
  }
  return owner;
}

}  // namespace reef
