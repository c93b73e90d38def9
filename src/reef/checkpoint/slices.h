// The geometry of distributed checkpoints: which part of a logical tensor a piece holds, and how
// two parts overlap. A part is either an N-D box (an offset and a length per dimension: a
// tensor-parallel split along one dimension, a whole tensor owned by one pipeline stage) or a
// flat range [start, start + length) of the tensor's row-major flattening (ZeRO-1 cuts a
// parameter group's flat vector, so a rank holds a run of a parameter's elements). Every flat
// range is a few boxes whose elements are consecutive in the range, which reduces all reading
// to box intersections. Pure functions on integers: unit-tested without tensors or files.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace reef {

struct Box {
  std::vector<int64_t> offsets, lengths;  // one per dimension; none for a scalar
  int64_t numel() const;
  bool operator==(const Box& o) const { return offsets == o.offsets && lengths == o.lengths; }
};

// A part of a tensor: a box, or a flat range of the row-major flattening.
struct TensorSlice {
  bool flat = false;
  Box box;                        // !flat
  int64_t start = 0, length = 0;  // flat

  static TensorSlice whole(const std::vector<int64_t>& shape);
  static TensorSlice of_box(std::vector<int64_t> offsets, std::vector<int64_t> lengths);
  static TensorSlice flat_range(int64_t start, int64_t length);
  int64_t numel() const;
  // The shape of the local data holding this part: the box's lengths, or [length].
  std::vector<int64_t> local_shape() const;
  bool is_whole(const std::vector<int64_t>& shape) const;
  // "[0:4, 2:6]" (begin:end per dimension) or "flat[10:20]".
  std::string str() const;
};

// The box a and b share, if any (same rank required).
std::optional<Box> intersect(const Box& a, const Box& b);

// One box of a slice and where its elements start in the slice's local data (row-major): a box
// slice is itself at 0; a flat range is up to 2*ndim-1 boxes, each consecutive in the range.
struct SlicePart {
  Box box;
  int64_t at = 0;
};
// Throws reef::Error when the slice does not lie inside `shape`.
std::vector<SlicePart> slice_parts(const std::vector<int64_t>& shape, const TensorSlice& s);

// "" when `slices` cover a tensor of `shape` exactly once (inside it, pairwise disjoint, no
// hole); otherwise what is wrong, e.g. "flat[0:8] and [0:1, 0:4] overlap" or "the pieces cover
// 96 of its 128 elements".
std::string check_cover(const std::vector<int64_t>& shape, const std::vector<TensorSlice>& slices);

// Spreads whole tensors of the given byte sizes over `writers` ranks, each to the least-loaded
// rank so far (ties to the lowest): returns the owner of each tensor. Deterministic, so every
// rank computes the same plan.
std::vector<int> balance_owners(const std::vector<uint64_t>& bytes, int writers);

}  // namespace reef
