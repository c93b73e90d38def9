"""Reference checks for `reef export gguf` (tests/reference/gguf_test.cpp), with gguf-py's reader.

  gguf_reference.py make OUT_DIR
      Writes tiny random Hugging Face model folders OUT_DIR/<case>/ (config.json,
      model.safetensors, tokenizer.json, tokenizer_config.json) for llama, mistral, mixtral and
      gemma (SentencePiece-style byte-fallback BPE tokenizer; mixtral with 4 experts, 2 per
      token; gemma tied, with (1 + w) norms written as their sums), llama3 (byte-level BPE,
      llama3 RoPE scaling, tied), qwen2, qwen3 and gpt2 (byte-level BPE), and OUT_DIR/cases.txt.

  gguf_reference.py check CASES_DIR GGUF_DIR
      For every GGUF_DIR/<case>.<type>.gguf, reads it with gguf.GGUFReader and compares with
      what llama.cpp's conventions give from CASES_DIR/<case>: every metadata key and value
      (and no others), the tokenizer, tensor names, ggml types, shapes and data: f32 exact,
      f16/bf16 bit-equal to torch's conversion, q8_0 bit-equal to a numpy re-quantization (and
      to gguf-py's own quantizer) and within half a quantization step after dequantization. For
      llama the q/k rows are un-permuted and compared with the HF weights. Mixtral's experts are
      expected as convert_hf_to_gguf.py writes them: llama.expert_count/expert_used_count,
      blk.N.ffn_gate_inp from the router and ffn_{gate,up,down}_exps stacking w1/w3/w2. One line per file;
      exit status 1 when anything is off.
"""
import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import load_file
import transformers
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

transformers.utils.logging.disable_progress_bar()

TEXT = ("The quick brown fox jumps over the lazy dog. Reef exports models to GGUF for llama.cpp. "
        "Tiny random models, tokenizers and weights; numbers 12345 and symbols !?%&. ") * 20


def byte_level_tokenizer(specials, vocab_size):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator([TEXT], trainer)
    return tok


def sentencepiece_style_tokenizer():
    """Llama-2-style tokenizer.json: <unk> <s> </s>, the 256 <0xXX> byte tokens, then BPE pieces
    over "▁"-marked text, with byte fallback."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    tmp = Tokenizer(models.BPE())
    tmp.pre_tokenizer = pre_tokenizers.Metaspace()
    tmp.train_from_iterator([TEXT], trainers.BpeTrainer(vocab_size=120, show_progress=False))
    trained = json.loads(tmp.to_str())["model"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for piece, _ in sorted(trained["vocab"].items(), key=lambda kv: kv[1]):
        if piece not in vocab:
            vocab[piece] = len(vocab)
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in trained["merges"]]
    tok = Tokenizer(models.BPE(vocab, merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                     decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    tok.add_special_tokens(["<unk>", "<s>", "</s>"])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", 1)])
    return tok


def save_tokenizer(tok, folder, extra_config=None, **special):
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **special)
    fast.save_pretrained(folder)
    if extra_config:
        path = f"{folder}/tokenizer_config.json"
        with open(path) as f:
            cfg = json.load(f)
        cfg.update(extra_config)
        with open(path, "w") as f:
            json.dump(cfg, f, indent=2)
    return len(tok.get_vocab())


CHAT = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
        "{% endfor %}")


def make(out_dir):
    T = transformers
    base = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                max_position_embeddings=128, rms_norm_eps=1e-6)
    names = []
    for i, name in enumerate(["llama", "mistral", "llama3", "qwen2", "qwen3", "gpt2", "mixtral",
                              "gemma", "wide"]):
        folder = f"{out_dir}/{name}"
        os.makedirs(folder, exist_ok=True)
        if name in ("llama", "mistral", "mixtral", "gemma", "wide"):
            n = save_tokenizer(sentencepiece_style_tokenizer(), folder,
                               {"add_bos_token": True, "add_eos_token": False},
                               bos_token="<s>", eos_token="</s>", unk_token="<unk>")
        elif name == "llama3":
            # As Llama 3 ships it: the post-processor, not tokenizer_config.json, adds BOS.
            from tokenizers import processors
            tok = byte_level_tokenizer(["<|begin_of_text|>", "<|end_of_text|>"], 300)
            bos = tok.token_to_id("<|begin_of_text|>")
            tok.post_processor = processors.TemplateProcessing(
                single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
                special_tokens=[("<|begin_of_text|>", bos)])
            n = save_tokenizer(tok, folder, bos_token="<|begin_of_text|>",
                               eos_token="<|end_of_text|>")
        elif name in ("qwen2", "qwen3"):
            n = save_tokenizer(byte_level_tokenizer(["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                                    300), folder, {"chat_template": CHAT},
                               eos_token="<|im_end|>", pad_token="<|endoftext|>")
        else:
            n = save_tokenizer(byte_level_tokenizer(["<|endoftext|>"], 300), folder,
                               bos_token="<|endoftext|>", eos_token="<|endoftext|>")
        if name == "llama":  # a model vocabulary larger than the tokenizer's: [PADi] entries
            config = T.LlamaConfig(**base, vocab_size=n + 5, num_key_value_heads=2,
                                   tie_word_embeddings=False)
        elif name == "mistral":
            config = T.MistralConfig(**base, vocab_size=n, num_key_value_heads=1,
                                     sliding_window=None, rope_theta=1e6)
        elif name == "mixtral":
            config = T.MixtralConfig(**base, vocab_size=n, num_key_value_heads=2,
                                     num_local_experts=4, num_experts_per_tok=2,
                                     sliding_window=None)
        elif name == "llama3":
            config = T.LlamaConfig(**base, vocab_size=n, num_key_value_heads=2,
                                   rope_theta=500000.0, tie_word_embeddings=True,
                                   rope_scaling={"rope_type": "llama3", "factor": 8.0,
                                                 "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                 "original_max_position_embeddings": 32})
        elif name == "qwen2":
            config = T.Qwen2Config(**base, vocab_size=n, num_key_value_heads=2,
                                   tie_word_embeddings=True)
        elif name == "wide":  # rows of 256 and 512: whole K-quant super-blocks everywhere
            config = T.LlamaConfig(**{**base, "hidden_size": 256, "intermediate_size": 512},
                                   vocab_size=n, num_key_value_heads=2, tie_word_embeddings=False)
        elif name == "gemma":  # tied embeddings, (1 + w) norms, GELU-tanh, head_dim apart
            config = T.GemmaConfig(**base, vocab_size=n, num_key_value_heads=1, head_dim=32,
                                   hidden_activation="gelu_pytorch_tanh")
        elif name == "qwen3":
            config = T.Qwen3Config(**base, vocab_size=n, num_key_value_heads=2, head_dim=32,
                                   tie_word_embeddings=False)
        else:  # rows of 200 in mlp.c_proj: not a multiple of 32, so q8_0 falls back to f16
            config = T.GPT2Config(vocab_size=n, n_embd=64, n_layer=2, n_head=4, n_inner=200,
                                  n_positions=128, bos_token_id=0, eos_token_id=0)
        torch.manual_seed(200 + i)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if p.dim() == 1:
                    p.copy_((1.0 if pname.endswith("weight") else 0.0) + 0.1 * torch.randn_like(p))
                else:
                    p.normal_(0.0, 0.15)
        model.save_pretrained(folder)
        names.append(name)
    with open(f"{out_dir}/cases.txt", "w") as f:
        f.write("\n".join(names) + "\n")
    print(f"wrote {len(names)} cases")


# ---- check ---------------------------------------------------------------------------------

GGML = {"f32": 0, "f16": 1, "q8_0": 8, "bf16": 30, "q4_0": 2, "q4_k": 12, "q6_k": 14}
FILE_TYPE = {"f32": 0, "f16": 1, "q8_0": 7, "bf16": 32, "q4_0": 2, "q4_k": 14, "q6_k": 18}
TT_NORMAL, TT_UNKNOWN, TT_CONTROL, TT_USER, TT_UNUSED, TT_BYTE = 1, 2, 3, 4, 5, 6


def expected_tokenizer(folder, arch, vocab_size):
    with open(f"{folder}/tokenizer.json") as f:
        tj = json.load(f)
    model = tj["model"]
    byte_level = tj.get("pre_tokenizer") is not None and "ByteLevel" in json.dumps(tj["pre_tokenizer"])
    tokens = [f"[PAD{i}]" for i in range(vocab_size)]
    types = [TT_UNUSED] * vocab_size
    unk = model.get("unk_token")
    for tok, i in model["vocab"].items():
        tokens[i] = tok
        types[i] = TT_NORMAL
        if not byte_level and len(tok) == 6 and tok.startswith("<0x") and tok.endswith(">"):
            types[i] = TT_BYTE
        if tok == unk:
            types[i] = TT_UNKNOWN
    for a in tj.get("added_tokens", []):
        tokens[a["id"]] = a["content"]
        types[a["id"]] = TT_UNKNOWN if a["content"] == unk else (TT_CONTROL if a["special"] else TT_USER)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    hf = PreTrainedTokenizerFast.from_pretrained(folder)
    kv = {"tokenizer.ggml.model": "gpt2" if byte_level else "llama",
          "tokenizer.ggml.pre": ("gpt-2" if arch == "gpt2" else "qwen2" if arch in ("qwen2", "qwen3")
                                 else "llama-bpe") if byte_level else "default",
          "tokenizer.ggml.tokens": tokens, "tokenizer.ggml.token_type": types,
          "tokenizer.ggml.merges": merges}
    if hf.bos_token_id is not None:
        kv["tokenizer.ggml.bos_token_id"] = hf.bos_token_id
    kv["tokenizer.ggml.eos_token_id"] = hf.eos_token_id
    kv["tokenizer.ggml.padding_token_id"] = hf.pad_token_id if hf.pad_token_id is not None else hf.eos_token_id
    if unk is not None:
        kv["tokenizer.ggml.unknown_token_id"] = model["vocab"][unk]
    with open(f"{folder}/tokenizer_config.json") as f:
        tc = json.load(f)
    # Always written, from what transformers' tokenizer(text) adds (llama.cpp otherwise falls
    # back to its own per-vocabulary default).
    plain = hf("Hello world", add_special_tokens=False).input_ids
    full = hf("Hello world").input_ids
    at = next(i for i in range(len(full) - len(plain) + 1) if full[i:i + len(plain)] == plain)
    kv["tokenizer.ggml.add_bos_token"] = at > 0 and full[0] == hf.bos_token_id
    kv["tokenizer.ggml.add_eos_token"] = at + len(plain) < len(full) and full[-1] == hf.eos_token_id
    if tc.get("chat_template"):
        kv["tokenizer.chat_template"] = tc["chat_template"]
    if not byte_level:
        rank = {m.replace(" ", "", 1): r for r, m in enumerate(merges)}
        kv["tokenizer.ggml.scores"] = [(-float(rank[t] + 1) if types[i] == TT_NORMAL and t in rank
                                        else 0.0) for i, t in enumerate(tokens)]
    return kv


def expected_keys(folder, case, ttype):
    with open(f"{folder}/config.json") as f:
        c = json.load(f)
    mt = c["model_type"]
    arch = "llama" if mt in ("mistral", "mixtral") else mt
    kv = {"general.architecture": arch, "general.name": case, "general.file_type": FILE_TYPE[ttype],
          "general.quantization_version": 2}
    if mt == "gpt2":
        kv.update({"gpt2.vocab_size": c["vocab_size"], "gpt2.context_length": c["n_positions"],
                   "gpt2.embedding_length": c["n_embd"],
                   "gpt2.feed_forward_length": c.get("n_inner") or 4 * c["n_embd"],
                   "gpt2.block_count": c["n_layer"], "gpt2.attention.head_count": c["n_head"],
                   "gpt2.attention.head_count_kv": c["n_head"],
                   "gpt2.attention.layer_norm_epsilon": c["layer_norm_epsilon"]})
    else:
        head_dim = c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
        p = arch + "."
        kv.update({p + "vocab_size": c["vocab_size"], p + "context_length": c["max_position_embeddings"],
                   p + "embedding_length": c["hidden_size"],
                   p + "feed_forward_length": c["intermediate_size"],
                   p + "block_count": c["num_hidden_layers"],
                   p + "attention.head_count": c["num_attention_heads"],
                   p + "attention.head_count_kv": c.get("num_key_value_heads") or c["num_attention_heads"],
                   p + "attention.layer_norm_rms_epsilon": c["rms_norm_eps"],
                   p + "attention.key_length": head_dim, p + "attention.value_length": head_dim,
                   p + "rope.freq_base": c.get("rope_theta") or c.get("rope_parameters", {})["rope_theta"],
                   p + "rope.dimension_count": head_dim})
        if mt == "mixtral":
            kv.update({p + "expert_count": c["num_local_experts"],
                       p + "expert_used_count": c["num_experts_per_tok"]})
    kv.update(expected_tokenizer(folder, mt, c["vocab_size"]))
    return kv, c


def permute(w, n_head):  # HF rotate-half -> ggml interleaved, as llama.cpp's converter
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def unpermute(w, n_head):
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def rope_factors(c, head_dim):
    r = c.get("rope_scaling") or c.get("rope_parameters")
    base = c.get("rope_theta") or r["rope_theta"]
    factor, low, high, old = (r["factor"], r["low_freq_factor"], r["high_freq_factor"],
                              r["original_max_position_embeddings"])
    out = []
    for i in range(0, head_dim, 2):
        freq = 1.0 / (base ** (i / head_dim))
        wavelen = 2 * np.pi / freq
        if wavelen < old / high:
            out.append(1.0)
        elif wavelen > old / low:
            out.append(factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return torch.tensor(out, dtype=torch.float32)


def expected_tensors(folder, c):
    """GGUF name -> HF-derived float32 tensor (torch order), mapped independently of Reef."""
    sd = load_file(f"{folder}/model.safetensors")
    mt = c["model_type"]
    out = {}
    if mt == "gpt2":
        top = {"transformer.wte.weight": "token_embd.weight", "transformer.wpe.weight": "position_embd.weight",
               "transformer.ln_f.weight": "output_norm.weight", "transformer.ln_f.bias": "output_norm.bias",
               "lm_head.weight": "output.weight"}
        blk = {"ln_1": "attn_norm", "ln_2": "ffn_norm", "attn.c_attn": "attn_qkv",
               "attn.c_proj": "attn_output", "mlp.c_fc": "ffn_up", "mlp.c_proj": "ffn_down"}
        prefix = "transformer.h."
    else:
        top = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
               "lm_head.weight": "output.weight"}
        blk = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
               "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
               "self_attn.o_proj": "attn_output", "self_attn.q_norm": "attn_q_norm",
               "self_attn.k_norm": "attn_k_norm", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
               "mlp.down_proj": "ffn_down", "block_sparse_moe.gate": "ffn_gate_inp"}
        prefix = "model.layers."
    n_head = c.get("num_attention_heads")
    n_kv = c.get("num_key_value_heads") or n_head
    experts = {}  # (layer, w) -> {expert: tensor}
    for name, t in sd.items():
        t = t.float()
        if ".block_sparse_moe.experts." in name:
            layer = name[len(prefix):].split(".", 1)[0]
            e, w = name.split(".block_sparse_moe.experts.")[1].split(".")[:2]
            experts.setdefault((layer, w), {})[int(e)] = t
            continue
        if name in top:
            out[top[name]] = t + 1 if mt == "gemma" and name.endswith("norm.weight") else t
            continue
        assert name.startswith(prefix), name
        layer, rest = name[len(prefix):].split(".", 1)
        mod, leaf = rest.rsplit(".", 1)
        if mt == "gpt2" and t.dim() == 2:
            t = t.t().contiguous()  # Conv1D [in, out] -> [out, in]
        if mt == "gemma" and name.endswith("norm.weight"):
            t = t + 1  # llama.cpp's gemma stores Gemma's (1 + w) norm scales
        if mt in ("llama", "mistral", "mixtral") and mod == "self_attn.q_proj":
            t = permute(t, n_head)
        if mt in ("llama", "mistral", "mixtral") and mod == "self_attn.k_proj":
            t = permute(t, n_kv)
        out[f"blk.{layer}.{blk[mod]}.{leaf}"] = t
    exps = {"w1": "ffn_gate_exps", "w3": "ffn_up_exps", "w2": "ffn_down_exps"}
    for (layer, w), by_expert in experts.items():
        out[f"blk.{layer}.{exps[w]}.weight"] = torch.stack([by_expert[e] for e in sorted(by_expert)])
    r = c.get("rope_scaling") or c.get("rope_parameters") or {}
    if r.get("rope_type", r.get("type")) == "llama3":
        head_dim = c.get("head_dim") or c["hidden_size"] // n_head
        out["rope_freqs.weight"] = rope_factors(c, head_dim)
    return out, sd


def q8_0_numpy(x):
    """ggml's reference q8_0 in float32 numpy: d = amax/127 (stored fp16), q = roundf(x * (1/d))."""
    blocks = x.astype(np.float32).reshape(-1, 32)
    d = (np.abs(blocks).max(axis=1, keepdims=True) / np.float32(127)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(d == 0, np.float32(0), np.float32(1) / d).astype(np.float32)
    v = (blocks * inv).astype(np.float32)
    q = (np.sign(v) * np.floor(np.abs(v) + np.float32(0.5))).astype(np.int8)  # roundf: half away
    out = np.concatenate([d.astype(np.float16).view(np.uint8), q.view(np.uint8)], axis=1)
    return out.reshape(-1)


def field_value(field):
    from gguf import GGUFValueType
    if field.types[0] == GGUFValueType.ARRAY:
        return list(field.contents())
    return field.contents()


def close(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return np.float32(a) == np.float32(b)  # float32 keys: equal after rounding
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
    return a == b


def check_file(path, folder, case, ttype):
    import gguf
    from gguf import GGUFReader
    problems = []
    reader = GGUFReader(path)
    if int(reader.fields["GGUF.version"].parts[-1][0]) != 3:
        problems.append("version is not 3")
    want, c = expected_keys(folder, case, ttype)
    got = {k: field_value(f) for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    for k in sorted(set(want) | set(got)):
        if k not in got:
            problems.append(f"missing key {k}")
        elif k not in want:
            problems.append(f"unexpected key {k} = {str(got[k])[:60]}")
        elif not close(got[k], want[k]):
            problems.append(f"key {k}: {str(got[k])[:80]} != {str(want[k])[:80]}")
    tensors, sd = expected_tensors(folder, c)
    seen = set()
    for t in reader.tensors:
        seen.add(t.name)
        if t.name not in tensors:
            problems.append(f"unexpected tensor {t.name}")
            continue
        ref = tensors[t.name]
        if t.data_offset % 32:
            problems.append(f"{t.name}: data offset {t.data_offset} not aligned to 32")
        if list(t.shape) != list(reversed(ref.shape)):
            problems.append(f"{t.name}: ggml shape {list(t.shape)}, expected {list(reversed(ref.shape))}")
            continue
        # llama.cpp keeps MoE routers and learned position embeddings in f32.
        keep_f32 = t.name.endswith("ffn_gate_inp.weight") or t.name == "position_embd.weight"
        want_type = ttype if ref.dim() >= 2 and not keep_f32 else "f32"
        if want_type in ("q4_k", "q6_k") and ref.shape[-1] % 256:
            want_type = "q8_0"  # K-quants need rows of whole 256-value super-blocks
        if want_type in ("q8_0", "q4_0") and ref.shape[-1] % 32:
            want_type = "f16"
        if int(t.tensor_type) != GGML[want_type]:
            problems.append(f"{t.name}: type {t.tensor_type.name}, expected {want_type}")
            continue
        if want_type == "f32":
            ok = np.array_equal(np.asarray(t.data).reshape(ref.shape), ref.numpy())
        elif want_type == "f16":
            ok = np.array_equal(np.asarray(t.data).view(np.uint16).reshape(-1),
                                ref.half().numpy().view(np.uint16).reshape(-1))
        elif want_type == "bf16":
            ok = np.array_equal(np.asarray(t.data).view(np.uint16).reshape(-1),
                                ref.bfloat16().view(torch.int16).numpy().view(np.uint16).reshape(-1))
        elif want_type in ("q4_k", "q6_k"):
            # gguf-py has no K-quant encoder (bench/gguf_llamacpp.py compares the bytes with
            # llama.cpp's own): its decoder must give the weights back within the format's error.
            qt = gguf.GGMLQuantizationType.Q4_K if want_type == "q4_k" else gguf.GGMLQuantizationType.Q6_K
            deq = gguf.quants.dequantize(np.asarray(t.data), qt).reshape(-1)
            x = ref.numpy().reshape(-1)
            rel = np.sqrt(np.mean((deq - x) ** 2) / np.mean(x ** 2))
            ok = rel < (0.12 if want_type == "q4_k" else 0.03)
            if not ok:
                problems.append(f"{t.name}: {want_type} relative RMS error {rel:.3g}")
        elif want_type == "q4_0":
            # Byte for byte gguf-py's quantizer, and within half a step (+ the fp16 rounding
            # of the scale) of the original.
            raw = np.asarray(t.data).view(np.uint8).reshape(-1)
            ok = np.array_equal(
                raw, gguf.quants.quantize(ref.numpy(), gguf.GGMLQuantizationType.Q4_0).reshape(-1))
            deq = gguf.quants.dequantize(np.asarray(t.data), gguf.GGMLQuantizationType.Q4_0)
            x = ref.numpy().reshape(-1, 32)
            step = np.abs(x).max(axis=1, keepdims=True) / 8
            d16 = step.astype(np.float16).astype(np.float32)
            err = np.abs(deq.reshape(-1, 32) - x)
            if not np.all(err <= step * 1.0 + 8 * np.abs(step - d16) + 1e-6 * step):
                problems.append(f"{t.name}: q4_0 error {err.max():.3g} beyond a step")
        else:
            raw = np.asarray(t.data).view(np.uint8).reshape(-1)
            ok = np.array_equal(raw, q8_0_numpy(ref.numpy()))
            ours_vs_gguf_py = np.array_equal(
                raw, gguf.quants.quantize(ref.numpy(), gguf.GGMLQuantizationType.Q8_0).reshape(-1))
            if not ours_vs_gguf_py:
                problems.append(f"{t.name}: q8_0 blocks differ from gguf-py's quantizer")
            deq = gguf.quants.dequantize(np.asarray(t.data), gguf.GGMLQuantizationType.Q8_0)
            x = ref.numpy().reshape(-1, 32)
            step = np.abs(x).max(axis=1, keepdims=True) / 127
            err = np.abs(deq.reshape(-1, 32) - x)
            # Half a step, plus up to 127 times the fp16 rounding of the stored scale.
            d16 = step.astype(np.float16).astype(np.float32)
            if not np.all(err <= step * 0.5 + 127 * np.abs(step - d16) + 1e-6 * step):
                problems.append(f"{t.name}: q8_0 error {err.max():.3g} beyond half a step")
        if not ok:
            problems.append(f"{t.name}: {want_type} data differs from the reference")
    for name in sorted(set(tensors) - seen):
        problems.append(f"missing tensor {name}")
    # The q/k permutation, checked the other way round: un-permuting gives the HF rows back.
    if c["model_type"] in ("llama", "mistral", "mixtral") and ttype == "f32":
        by_name = {t.name: t for t in reader.tensors}
        n_head = c["num_attention_heads"]
        n_kv = c.get("num_key_value_heads") or n_head
        for hf, g, heads in (("model.layers.0.self_attn.q_proj.weight", "blk.0.attn_q.weight", n_head),
                             ("model.layers.1.self_attn.k_proj.weight", "blk.1.attn_k.weight", n_kv)):
            w = np.asarray(by_name[g].data).reshape(sd[hf].shape)
            if not np.array_equal(unpermute(w, heads), sd[hf].numpy()):
                problems.append(f"{g}: un-permuted rows differ from {hf}")
            if np.array_equal(w, sd[hf].numpy()):
                problems.append(f"{g}: not permuted")
    print(f"{os.path.basename(path)}: {len(reader.tensors)} tensors, {len(got)} keys: "
          + ("ok" if not problems else "; ".join(problems[:8])))
    return len(problems)


def check(cases_dir, gguf_dir):
    failures = 0
    files = sorted(f for f in os.listdir(gguf_dir) if f.endswith(".gguf"))
    if not files:
        print(f"no .gguf files in {gguf_dir}")
        return 1
    for f in files:
        case, ttype = f[:-len(".gguf")].rsplit(".", 1)
        try:
            failures += check_file(f"{gguf_dir}/{f}", f"{cases_dir}/{case}", case, ttype)
        except Exception as e:  # report every file, not just the first
            import traceback
            traceback.print_exc()
            print(f"{f}: {type(e).__name__}: {e}")
            failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "make":
        make(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "check":
        sys.exit(check(sys.argv[2], sys.argv[3]))
    else:
        sys.exit(__doc__)
