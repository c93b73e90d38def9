"""Reference side of model_cli_test: tiny random Hugging Face model folders made by transformers,
each with a byte-level BPE tokenizer trained by `tokenizers`, and what transformers computes on them.

  model_cli_reference.py make OUT_DIR
      OUT_DIR/<case>/ for case in llama, gpt2, mixtral, gemma: save_pretrained folder (config.json,
      model.safetensors, tokenizer.json, tokenizer_config.json) and expected.json with
        greedy_ids: prompt ids + transformers' greedy generate (max_new_tokens 16),
        greedy_ids_bf16: the same with the folder loaded in bfloat16 (max_new_tokens 8),
        eos: the eos id, val_loss: mean next-token loss on the first two unshuffled validation
        windows of valid.jsonl (seq_len 16), as Reef's documents mode cuts them.
      OUT_DIR/train.jsonl, OUT_DIR/valid.jsonl: documents for `reef pretrain`.
      OUT_DIR/gpt2_hub/: the gpt2 case with the Hub's GPT2Model key names (no "transformer."
      prefix, h.N.attn.bias / h.N.attn.masked_bias buffers, no lm_head) and reference.safetensors
      holding input_ids [2, 10] and transformers' logits.

  model_cli_reference.py check-convert SRC OUT DTYPE [OUT DTYPE ...]
      Checks `reef convert` results: each OUT loads in transformers with no missing, unexpected or
      mismatched keys, every weight equals SRC loaded by transformers in DTYPE bit for bit (the
      rounding transformers itself does), config.json names DTYPE, the tokenizer files are
      SRC's byte for byte, and the logits are equal. Prints "ok" and the number of weight
      files of each OUT; exits non-zero with the difference otherwise.
"""
import json
import os
import sys

import torch
from safetensors.torch import load_file, save_file
import transformers
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

transformers.utils.logging.disable_progress_bar()

WORDS = "the cat sat on a mat and dog ran far away home big red sun over hill".split()
PROMPT = "the cat sat on"
SEQ = 16


def documents(n, seed):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        k = int(torch.randint(6, 14, (1,), generator=g))
        idx = torch.randint(0, len(WORDS), (k,), generator=g).tolist()
        out.append(" ".join(WORDS[i] for i in idx))
    return out


def make_tokenizer(docs):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(docs, trainer)
    return tok


def randomize(model):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * torch.randn_like(p))
            else:
                p.normal_(0.0, 0.15)


def make(out):
    train, valid = documents(200, 1), documents(20, 2)
    for name, docs in (("train", train), ("valid", valid)):
        with open(f"{out}/{name}.jsonl", "w") as f:
            for d in docs:
                f.write(json.dumps({"text": d}) + "\n")
    tok = make_tokenizer(train)
    eos = tok.token_to_id("<|endoftext|>")
    vocab = tok.get_vocab_size()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>",
                                   bos_token="<|endoftext|>")
    stream = []
    for d in valid:
        stream += tok.encode(d).ids + [eos]
    windows = torch.tensor([stream[i * SEQ:i * SEQ + SEQ + 1] for i in range(2)])
    T = transformers
    configs = {
        "llama": T.LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=48,
                               num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                               max_position_embeddings=64, bos_token_id=eos, eos_token_id=eos),
        "gpt2": T.GPT2Config(vocab_size=vocab, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                             bos_token_id=eos, eos_token_id=eos),
        "mixtral": T.MixtralConfig(vocab_size=vocab, hidden_size=32, intermediate_size=32,
                                   num_hidden_layers=2, num_attention_heads=4,
                                   num_key_value_heads=2, num_local_experts=4,
                                   num_experts_per_tok=2, max_position_embeddings=64,
                                   sliding_window=None, bos_token_id=eos, eos_token_id=eos),
        "gemma": T.GemmaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=48,
                               num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1,
                               head_dim=16, max_position_embeddings=64, bos_token_id=eos,
                               eos_token_id=eos, pad_token_id=eos),
    }
    for i, (name, config) in enumerate(configs.items()):
        torch.manual_seed(10 + i)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        randomize(model)
        model.eval()
        folder = f"{out}/{name}"
        model.save_pretrained(folder)
        fast.save_pretrained(folder)
        ids = torch.tensor([tok.encode(PROMPT).ids])
        with torch.no_grad():
            gen = model.generate(ids, max_new_tokens=16, do_sample=False, eos_token_id=eos,
                                 pad_token_id=eos)
            logits = model(input_ids=windows[:, :-1]).logits
            val = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab),
                                                    windows[:, 1:].reshape(-1)).item()
        half = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16).eval()
        with torch.no_grad():
            gen_bf16 = half.generate(ids, max_new_tokens=8, do_sample=False, eos_token_id=eos,
                                     pad_token_id=eos)
        with open(f"{folder}/expected.json", "w") as f:
            json.dump({"greedy_ids": gen[0].tolist(), "greedy_ids_bf16": gen_bf16[0].tolist(),
                       "eos": eos, "val_loss": val, "prompt": PROMPT}, f)
        if name == "gpt2":
            hub = f"{out}/gpt2_hub"
            os.makedirs(hub, exist_ok=True)
            sd = load_file(f"{folder}/model.safetensors")
            renamed = {k[len("transformer."):]: v for k, v in sd.items()
                       if k.startswith("transformer.")}
            assert len(renamed) == len(sd), sorted(sd)
            for layer in range(config.n_layer):
                n = config.n_positions
                renamed[f"h.{layer}.attn.bias"] = torch.tril(torch.ones(n, n)).view(1, 1, n, n)
                renamed[f"h.{layer}.attn.masked_bias"] = torch.tensor(-1e4)
            save_file(renamed, f"{hub}/model.safetensors", metadata={"format": "pt"})
            cfg = json.load(open(f"{folder}/config.json"))
            json.dump(cfg, open(f"{hub}/config.json", "w"), indent=2)
            ref_ids = torch.randint(0, vocab, (2, 10), dtype=torch.int64)
            with torch.no_grad():
                ref_logits = model(input_ids=ref_ids).logits.float().contiguous()
            save_file({"input_ids": ref_ids, "logits": ref_logits}, f"{hub}/reference.safetensors")
    print(f"wrote model_cli reference folders with transformers {transformers.__version__}")


def check_convert(src, out, dtype_name):
    dtype = getattr(torch, dtype_name)
    ref = AutoModelForCausalLM.from_pretrained(src, dtype=dtype).eval()
    got, info = AutoModelForCausalLM.from_pretrained(out, dtype=dtype, output_loading_info=True)
    problems = {k: v for k, v in info.items() if v}
    assert not problems, f"loading info: {problems}"
    cfg = json.load(open(f"{out}/config.json"))
    assert cfg.get("torch_dtype", cfg.get("dtype")) == dtype_name, cfg
    ref_sd, got_sd = ref.state_dict(), got.eval().state_dict()
    assert sorted(ref_sd) == sorted(got_sd), (sorted(ref_sd), sorted(got_sd))
    for k, v in ref_sd.items():
        assert got_sd[k].dtype == dtype, (k, got_sd[k].dtype)
        assert torch.equal(got_sd[k], v), f"weight {k} differs"
    for f in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        if os.path.exists(f"{src}/{f}"):
            assert open(f"{src}/{f}", "rb").read() == open(f"{out}/{f}", "rb").read(), f
    ids = torch.arange(1, 13).view(2, 6)
    with torch.no_grad():
        assert torch.equal(ref(input_ids=ids).logits, got(input_ids=ids).logits), "logits differ"
    files = [f for f in os.listdir(out) if f.endswith(".safetensors")]
    print(f"ok {len(files)}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "make":
        make(sys.argv[2])
    elif len(sys.argv) >= 5 and len(sys.argv) % 2 == 1 and sys.argv[1] == "check-convert":
        for i in range(3, len(sys.argv), 2):
            check_convert(sys.argv[2], sys.argv[i], sys.argv[i + 1])
    else:
        sys.exit(__doc__)
