"""Reference side of dist_checkpoint_test: what transformers computes on a model folder that
`reef convert` consolidated from a distributed checkpoint.

  dist_checkpoint_reference.py logits HF_DIR OUT_FILE
      Loads HF_DIR with AutoModelForCausalLM (float32; fails on missing or unexpected keys) and
      writes OUT_FILE (safetensors) holding input_ids [2, 12] (fixed ids below the vocab size)
      and transformers' logits [2, 12, V] for them.
"""
import sys

import torch
from safetensors.torch import save_file
import transformers
from transformers import AutoModelForCausalLM

transformers.utils.logging.disable_progress_bar()


def main():
    if len(sys.argv) != 4 or sys.argv[1] != "logits":
        sys.exit(__doc__)
    hf_dir, out = sys.argv[2], sys.argv[3]
    model, info = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32, output_loading_info=True)
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        if info.get(kind):
            sys.exit(f"{kind}: {info[kind]}")
    model.eval()
    vocab = model.config.vocab_size
    ids = (torch.arange(24, dtype=torch.int64).view(2, 12) * 37 + 5) % vocab
    with torch.no_grad():
        logits = model(ids).logits.float().contiguous()
    save_file({"input_ids": ids, "logits": logits}, out)
    print("ok", tuple(logits.shape))


if __name__ == "__main__":
    main()
