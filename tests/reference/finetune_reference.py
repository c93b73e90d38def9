"""Reference fine-tuning losses for tests/reference/finetune_test.cpp, computed with transformers and peft.

  finetune_reference.py make OUT_DIR
      OUT_DIR/model/: a tiny random Llama saved by transformers with a byte-level BPE tokenizer
      trained here (ChatML specials) and a ChatML chat template whose assistant replies sit in
      {% generation %} blocks, so transformers' return_assistant_tokens_mask marks them.
      OUT_DIR/train.jsonl, OUT_DIR/valid.jsonl: conversations ({"messages": [...]}), some
      multi-turn, some with a system message.

  finetune_reference.py val-loss JOBS_JSON
      JOBS_JSON is a list of {"model": DIR, "adapter": DIR or null, "data": JSONL}. For each job,
      every conversation of DATA is tokenized with apply_chat_template(...,
      return_assistant_tokens_mask=True) and run ALONE through the model (peft's
      PeftModel.from_pretrained on top when an adapter is given: LoRA, or prompt tuning whose
      virtual tokens come first and whose logits are left out); the loss is the sum of
      next-token cross-entropy over the targets the assistant mask marks, divided by their
      count over the whole file: what Reef's validation loss must equal whatever its packing.
      Prints a JSON list of {"val_loss": ..., "targets": ...}.
"""
import json
import os
import random
import sys
import warnings

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

transformers.utils.logging.disable_progress_bar()
warnings.filterwarnings("ignore")

CHATML = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['role'] == 'assistant' %}"
    "{% generation %}{{- message['content'] + '<|im_end|>' }}{% endgeneration %}{{- '\\n' }}"
    "{%- else %}{{- message['content'] + '<|im_end|>\\n' }}{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

WORDS = ["apple", "river", "stone", "light", "seven", "green", "quiet", "north", "table", "cloud",
         "small", "red", "blue", "dog", "cat", "runs", "sleeps", "the", "a", "is", "what", "how"]


def conversation(rng):
    def sentence(n):
        return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + rng.choice([".", "?", "!"])
    msgs = []
    if rng.random() < 0.3:
        msgs.append({"role": "system", "content": sentence(rng.randint(2, 5))})
    for _ in range(rng.randint(1, 3)):
        msgs.append({"role": "user", "content": sentence(rng.randint(2, 8))})
        msgs.append({"role": "assistant", "content": sentence(rng.randint(1, 10))})
    return {"messages": msgs}


def make(out_dir):
    rng = random.Random(7)
    train = [conversation(rng) for _ in range(40)]
    valid = [conversation(rng) for _ in range(9)]
    for name, rows in (("train", train), ("valid", valid)):
        with open(os.path.join(out_dir, f"{name}.jsonl"), "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [m["content"] for r in train + valid for m in r["messages"]]
    tok.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=320, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    model_dir = os.path.join(out_dir, "model")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.chat_template = CHATML
    fast.save_pretrained(model_dir)

    torch.manual_seed(11)
    config = transformers.LlamaConfig(
        vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        rms_norm_eps=1e-6, tie_word_embeddings=False, eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            else:
                p.normal_(0.0, 0.1)
    model.save_pretrained(model_dir)


def val_loss(job):
    tok = AutoTokenizer.from_pretrained(job["model"])
    model = AutoModelForCausalLM.from_pretrained(job["model"], dtype=torch.float32)
    prefix = 0
    if job.get("adapter"):
        from peft import PeftModel
        model = PeftModel.from_pretrained(model, job["adapter"])
        cfg = model.peft_config["default"]
        if cfg.peft_type == "PROMPT_TUNING":
            prefix = cfg.num_virtual_tokens
    model.eval()
    total, count = 0.0, 0
    with open(job["data"]) as f:
        for line in f:
            if not line.strip():
                continue
            msgs = json.loads(line)["messages"]
            enc = tok.apply_chat_template(msgs, tokenize=True, return_dict=True,
                                          return_assistant_tokens_mask=True)
            ids = torch.tensor([enc["input_ids"]])
            mask = torch.tensor(enc["assistant_masks"], dtype=torch.bool)
            with torch.no_grad():
                logits = model(input_ids=ids).logits[0, prefix:].float()
            targets = ids[0, 1:]
            keep = mask[1:]
            ce = torch.nn.functional.cross_entropy(logits[:-1], targets, reduction="none")
            total += float(ce[keep].double().sum())
            count += int(keep.sum())
    return {"val_loss": total / count, "targets": count}


def main():
    if sys.argv[1] == "make":
        make(sys.argv[2])
    elif sys.argv[1] == "val-loss":
        with open(sys.argv[2]) as f:
            jobs = json.load(f)
        print(json.dumps([val_loss(j) for j in jobs]))
    else:
        sys.exit(f"unknown mode {sys.argv[1]}")


if __name__ == "__main__":
    main()
