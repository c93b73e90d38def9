"""Reference renders for tests/reference/chat_template_test.cpp, by transformers itself.

  chat_template_reference.py OUT_DIR
      For every fixture template tests/data/chat_templates/<name>.jinja, builds a tokenizer
      folder OUT_DIR/<name>/ (a byte-level BPE trained here, with the family's special tokens;
      saved by transformers, so the template lands in chat_template.jinja, except for a few
      rewritten to the legacy tokenizer_config.json forms) and reloads it with AutoTokenizer.
      Then renders many conversations (system or not, multi-turn, tool calls and results,
      reasoning, unicode, empty content, bad role orders) with apply_chat_template(tokenize=False)
      with and without add_generation_prompt, and writes OUT_DIR/cases.jsonl: one line per render
      with the inputs and either the text or the error (type and message). For templates with
      {% generation %} it also writes the ids and assistant_masks of
      apply_chat_template(tokenize=True, return_dict=True, return_assistant_tokens_mask=True).
"""
import json
import os
import sys

import transformers
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

transformers.utils.logging.set_verbosity_error()

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATES = os.path.join(HERE, "..", "data", "chat_templates")

LLAMA3 = dict(bos="<|begin_of_text|>", eos="<|eot_id|>",
              specials=["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                        "<|eot_id|>", "<|eom_id|>", "<|python_tag|>"])
CHATML = dict(bos="<|im_start|>", eos="<|im_end|>", specials=["<|im_start|>", "<|im_end|>"])
QWEN = dict(bos=None, eos="<|im_end|>", pad="<|endoftext|>",
            specials=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
            added=["<think>", "</think>", "<tool_call>", "</tool_call>", "<tool_response>",
                   "</tool_response>"])
GEMMA = dict(bos="<bos>", eos="<eos>", pad="<pad>",
             specials=["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>",
                       "<start_of_image>"])
MISTRAL = dict(bos="<s>", eos="</s>", unk="<unk>", specials=["<unk>", "<s>", "</s>"])
MISTRAL3 = dict(bos="<s>", eos="</s>", unk="<unk>",
                specials=["<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[AVAILABLE_TOOLS]",
                          "[/AVAILABLE_TOOLS]", "[TOOL_CALLS]", "[TOOL_RESULTS]", "[/TOOL_RESULTS]"])

# template -> (special tokens, how the folder stores the template, tokenizer kind)
FAMILIES = {
    "llama3": (LLAMA3, "config_string", "byte"),
    "llama3_1_tools": (LLAMA3, "jinja", "byte"),
    "llama3_gen": (LLAMA3, "jinja", "byte"),
    "smollm2": (CHATML, "jinja", "byte"),
    "chatml_gen": (CHATML, "jinja", "byte"),
    "qwen2_5_tools": (QWEN, "config_string", "byte"),
    "qwen3_think": (QWEN, "jinja", "byte"),
    "qwen3_gen": (QWEN, "jinja", "byte"),
    "gemma": (GEMMA, "jinja", "byte"),
    "gemma3_macro": (GEMMA, "jinja", "byte"),
    "mistral_v1": (MISTRAL, "config_list", "metaspace"),
    "mistral_gen": (MISTRAL, "jinja", "metaspace"),
    "mistral_v3_tools": (MISTRAL3, "jinja", "metaspace"),
    "zephyr_blocks": (MISTRAL, "jinja", "byte"),
    "features": (MISTRAL, "jinja", "byte"),
}

CORPUS = [
    "The quick brown fox jumps over the lazy dog. What is the weather in Paris today?",
    "Hello! How can I help you? Sure, here is the answer: 42. Thanks, goodbye.",
    "Das Wetter ist schön. Le café est très bon. 日本語のテキスト。 Привет, мир! 😀 ✓",
    "def add(a, b):\n    return a + b\n\nprint(add(1, 2))  # {\"name\": \"get_weather\"}",
] * 20

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Get the weather in a city",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "description": "City name, e.g. Zürich"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "add", "description": "Add two numbers",
        "parameters": {"type": "object", "properties": {
            "a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]},
        "return": {"type": "number"}}},
]

SYS = {"role": "system", "content": "You are a helpful assistant."}
CONVERSATIONS = {
    "single_user": [{"role": "user", "content": "Hello!"}],
    "system_user": [SYS, {"role": "user", "content": "What is 2+2?"}],
    "one_turn": [{"role": "user", "content": "Hi there"},
                 {"role": "assistant", "content": "Hello! How can I help you?"}],
    "system_one_turn": [SYS, {"role": "user", "content": "Name a color."},
                        {"role": "assistant", "content": "Blue."}],
    "multi_turn": [SYS, {"role": "user", "content": "Hi"},
                   {"role": "assistant", "content": "Hello."},
                   {"role": "user", "content": "  What is the capital of France?  \n"},
                   {"role": "assistant", "content": "Paris.\n"},
                   {"role": "user", "content": "Thanks!"}],
    "multi_turn_ends_assistant": [{"role": "user", "content": "One"},
                                  {"role": "assistant", "content": "Two"},
                                  {"role": "user", "content": "Three"},
                                  {"role": "assistant", "content": "Four"}],
    "unicode": [{"role": "system", "content": "Réponds en français. 日本語もOK 😀"},
                {"role": "user", "content": "Ça va? Привет! ✓ — \"quotes\" and 'apostrophes' \\ backslash"},
                {"role": "assistant", "content": "Très bien, merci! 🎉 {{ not jinja }} {% raw %}"}],
    "empty_content": [{"role": "user", "content": ""},
                      {"role": "assistant", "content": ""}],
    "whitespace_content": [{"role": "user", "content": "\n\n  spaced out \t\n"},
                           {"role": "assistant", "content": "   \n"}],
    "none_content_dropped": [{"role": "user", "content": "Hi", "name": None},
                             {"role": "assistant", "content": "Yo", "tool_calls": None}],
    "bad_order": [{"role": "user", "content": "Hi"}, {"role": "user", "content": "Again"}],
    "assistant_first": [{"role": "assistant", "content": "I start."},
                        {"role": "user", "content": "Ok"}],
    "reasoning": [{"role": "user", "content": "What is 3*4?"},
                  {"role": "assistant", "content": "12", "reasoning_content": "3 times 4 is 12."},
                  {"role": "user", "content": "And 5*5?"},
                  {"role": "assistant", "content": "25", "reasoning_content": "\nfive squared\n"}],
    "inline_think": [{"role": "user", "content": "Think first."},
                     {"role": "assistant", "content": "<think>\nhmm, ok\n</think>\n\nDone."}],
    "thinking_alias": [{"role": "user", "content": "Alias?"},
                       {"role": "assistant", "content": "Yes.", "thinking": "aliased reasoning"}],
    "tool_call": [SYS, {"role": "user", "content": "Weather in Zürich?"},
                  {"role": "assistant", "tool_calls": [
                      {"id": "call12345", "type": "function", "function": {
                          "name": "get_weather", "arguments": {"city": "Zürich", "unit": "celsius"}}}]},
                  {"role": "tool", "tool_call_id": "call12345", "content": "{\"temp\": 21.5}"},
                  {"role": "assistant", "content": "It is 21.5 °C in Zürich."}],
    "parallel_tool_calls": [{"role": "user", "content": "Add 1+2 and 3+4"},
                            {"role": "assistant", "content": "Calling tools.", "tool_calls": [
                                {"id": "abc123def", "type": "function",
                                 "function": {"name": "add", "arguments": {"a": 1, "b": 2}}},
                                {"id": "xyz987uvw", "type": "function",
                                 "function": {"name": "add", "arguments": {"a": 3, "b": 4.5}}}]},
                            {"role": "tool", "tool_call_id": "abc123def", "content": "3"},
                            {"role": "tool", "tool_call_id": "xyz987uvw", "content": "7.5"},
                            {"role": "assistant", "content": "3 and 7.5."}],
    "string_arguments": [{"role": "user", "content": "Call it"},
                         {"role": "assistant", "content": "", "tool_calls": [
                             {"id": "strargs01", "type": "function", "function": {
                                 "name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]}],
    "content_list": [{"role": "system", "content": [{"type": "text", "text": " Be brief. "}]},
                     {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]},
                     {"role": "assistant", "content": [{"type": "text", "text": "A cat."}]}],
}
WITH_TOOLS = {"tool_call", "parallel_tool_calls", "string_arguments"}


def build_tokenizer(family, kind):
    specials = family["specials"]
    if kind == "byte":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=700, special_tokens=specials,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                      show_progress=False)
        tok.train_from_iterator(CORPUS, trainer)
    else:  # SentencePiece-style: Metaspace, byte fallback (Mistral / Llama 2 layout)
        tmp = Tokenizer(models.BPE())
        tmp.pre_tokenizer = pre_tokenizers.Metaspace()
        tmp.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=400, show_progress=False))
        trained = json.loads(tmp.to_str())["model"]
        vocab = {}
        for s in specials:
            vocab[s] = len(vocab)
        for b in range(256):
            vocab[f"<0x{b:02X}>"] = len(vocab)
        for piece, _ in sorted(trained["vocab"].items(), key=lambda kv: kv[1]):
            if piece not in vocab:
                vocab[piece] = len(vocab)
        merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in trained["merges"]]
        tok = Tokenizer(models.BPE(vocab, merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                         decoders.Fuse(), decoders.Strip(" ", 1, 0)])
        tok.add_special_tokens(specials)
    if family.get("added"):
        tok.add_tokens(family["added"])
    return tok


def make_folder(name, out_dir):
    family, storage, kind = FAMILIES[name]
    with open(os.path.join(TEMPLATES, name + ".jinja"), encoding="utf-8") as f:
        template = f.read()
    folder = os.path.join(out_dir, name)
    special = {k + "_token": family[k] for k in ("bos", "eos", "unk", "pad") if family.get(k)}
    fast = PreTrainedTokenizerFast(tokenizer_object=build_tokenizer(family, kind), **special)
    fast.chat_template = template
    fast.save_pretrained(folder)
    if storage != "jinja":  # the older layouts: the template inside tokenizer_config.json
        os.remove(os.path.join(folder, "chat_template.jinja"))
        path = os.path.join(folder, "tokenizer_config.json")
        with open(path, encoding="utf-8") as f:
            cfg = json.load(f)
        cfg["chat_template"] = template if storage == "config_string" else [
            {"name": "default", "template": template},
            {"name": "tool_use", "template": "{{ raise_exception('tool_use picked without tools') }}"}]
        with open(path, "w", encoding="utf-8") as f:
            json.dump(cfg, f, indent=2, ensure_ascii=False)
    return folder, AutoTokenizer.from_pretrained(folder)


def variable_sets(name):
    if name == "llama3_1_tools":
        return [{"date_string": "26 Jul 2024"},
                {"date_string": "01 Jan 2025", "tools_in_user_message": False},
                {"date_string": "02 Feb 2025", "builtin_tools": ["brave_search", "code_interpreter"]}]
    if name in ("qwen3_think", "qwen3_gen"):
        return [{}, {"enable_thinking": False}]
    return [{}]


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    n_text = n_err = n_mask = 0
    with open(os.path.join(out_dir, "cases.jsonl"), "w", encoding="utf-8") as out:
        for name in FAMILIES:
            folder, tok = make_folder(name, out_dir)
            generation = "{% generation %}" in tok.chat_template or "{%- generation %}" in tok.chat_template
            for cname, messages in CONVERSATIONS.items():
                for variables in variable_sets(name):
                    for tools in ([None, TOOLS] if cname in WITH_TOOLS else [None]):
                        for agp in (False, True):
                            case = {"template": name, "dir": os.path.basename(folder),
                                    "conversation": cname, "messages": messages, "tools": tools,
                                    "add_generation_prompt": agp, "variables": variables}
                            try:
                                case["text"] = tok.apply_chat_template(
                                    messages, tools=tools, add_generation_prompt=agp,
                                    tokenize=False, **variables)
                                n_text += 1
                            except Exception as e:  # the template (or Python) refused
                                case["error_type"] = type(e).__name__
                                case["error"] = str(e)
                                n_err += 1
                            if (generation and not agp and "text" in case
                                    and messages[-1]["role"] == "assistant"):
                                enc = tok.apply_chat_template(
                                    messages, tools=tools, tokenize=True, return_dict=True,
                                    return_assistant_tokens_mask=True, **variables)
                                case["input_ids"] = list(enc["input_ids"])
                                case["assistant_masks"] = list(enc["assistant_masks"])
                                n_mask += 1
                            out.write(json.dumps(case, ensure_ascii=False) + "\n")
    print(f"{n_text} renders, {n_err} errors, {n_mask} masks")


if __name__ == "__main__":
    main(sys.argv[1])
