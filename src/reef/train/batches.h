// Training micro-batches from a sample source (data/sample_index.h): token rows of seq_len + 1
// ids cut into inputs and next-token targets, with the loss mask, positions and packing
// segments of samples that carry a layout (SFT rows, data/sft_dataset.h).
#pragma once

#include <torch/torch.h>

#include "reef/data/sample_index.h"
#include "reef/train/loss.h"

namespace reef {

// Samples [first, first + n) of `src` on `device`. An id outside [0, vocab_size) is a usage
// error naming the sample (data tokenized with another tokenizer). When the source's rows end in
// padding (GptSampleSource::trailing_padding), the columns no row uses are dropped before the
// batch leaves the CPU, keeping a multiple of `column_multiple` (trim_trailing_padding).
TrainBatch make_train_batch(const GptSampleSource& src, int64_t first, int64_t n,
                            int64_t vocab_size, const torch::Device& device,
                            int64_t column_multiple = 1);
// Drops the trailing columns of a micro-batch of laid-out rows where every row is padding
// (segment 0), keeping a multiple of `multiple` columns (tensor-parallel sequence slices): the
// same outputs for every token that is not padding, without computing the padding. A row of a
// preference pair is a pair's two sequences and then padding up to seq_len, so this saves what
// the longest pair of the micro-batch does not use. Nothing happens without segment ids.
void trim_trailing_padding(TrainBatch& batch, int64_t multiple = 1);
// Marks the batch's counted targets in inputs.head_positions, so that a loss that reads logits
// only there (Loss::reads_logits_at_targets_only) gets the LM head at those positions alone;
// leaves it unset when every position counts (nothing to skip).
void mark_head_positions(TrainBatch& batch);

// The model's outputs for a batch outside the train step (a reference or old-policy pass): its
// packed layout, logits at inputs.head_positions when marked, under bf16 autocast with `bf16`.
// No prompt-tuning prefix; one process's whole model (no tensor parallelism).
ModelOutputs forward_batch(CausalLM& model, const TrainBatch& batch, bool bf16);

// Counted targets of samples [first, first + n) of `src` (reads layouts only).
int64_t count_targets(const GptSampleSource& src, int64_t first, int64_t n);

}  // namespace reef
