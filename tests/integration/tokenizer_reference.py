# Reference side of tokenizer_cli_test: a seeded mixed-language corpus, HF `tokenizers`' own
# BpeTrainer on it (to compare vocabularies and merges with `reef tokenizer train`), and the ids
# that `tokenizers` and `transformers` give for documents under a tokenizer folder Reef wrote.
# Usage:
#   tokenizer_reference.py corpus OUT.jsonl N_DOCS SEED
#   tokenizer_reference.py train CORPUS.jsonl OUT_tokenizer.json VOCAB MIN_FREQ PATTERN SPECIALS MAX_LEN
#   tokenizer_reference.py encode TOKENIZER_DIR DOCS.jsonl OUT.jsonl
import json
import random
import sys

PATTERNS = {
    "llama3": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
              r"|\s*[\r\n]+|\s+(?!\S)|\s+",
    "qwen2": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
             r"|\s*[\r\n]+|\s+(?!\S)|\s+",
}

WORDS = (
    "the quick brown fox jumps over the lazy dog it's we're they've I'm you'll she'd DON'T "
    "tokenizer training merges vocabulary frequency the of and to in is that for "
    "déjà vu élève garçon où ça naïve cœur Noël forêt Größe Straße übermäßig Fußgänger Äpfel "
    "привет мир Москва съешь же ещё этих мягких καλημέρα κόσμε مرحبا بالعالم नमस्ते दुनिया "
    "你好 世界 中文 分词器 测试 。 ， こんにちは カタカナ ひらがな 안녕하세요 한국어 "
    "😀 🎉 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️ 🤖 ✨ 0 42 3.14159 1,000,000 2026 ٣٤٥ ① "
    "def return for while if else import from class self None True False "
    "std::vector<int> #include <|endoftext|> <tool> -> => != == += ** // /* */ {} () [] ;"
).split()
CODE = ["def f(x):\n    return x ** 2\n", "for (int i = 0; i < n; ++i) {\n  sum += a[i];\n}\n",
        "if a != b:\n\tprint(\"differ\")\n", "#include <vector>\nint main() { return 0; }\n",
        "SELECT name, count(*) FROM t GROUP BY name;\n", "x = {'k': [1, 2, 3], \"s\": None}\n"]
SPACES = [" ", " ", " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\u00a0", "\u3000", "        "]


def random_char(rng):
    lo, hi = rng.choice([(0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x6FF),
                         (0x900, 0x97F), (0x3040, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3),
                         (0x1F300, 0x1F64F), (0x2000, 0x206F)])
    return chr(rng.randint(lo, hi))


def make_doc(rng):
    parts = []
    for _ in range(rng.randint(1, 60)):
        r = rng.random()
        if r < 0.65:
            parts.append(rng.choice(WORDS))
        elif r < 0.8:
            parts.append(rng.choice(SPACES))
        elif r < 0.87:
            parts.append(rng.choice(CODE))
        elif r < 0.94:
            parts.append("".join(random_char(rng) for _ in range(rng.randint(1, 5))))
        else:
            parts.append(rng.choice(["'s", "'T", "'ll", "...", "!!", "?", "-", "--", "(", ")", str(rng.randint(0, 10**6))]))
        if rng.random() < 0.7:
            parts.append(" ")
    return "".join(parts).strip("\n") or "x"


def corpus(out, n, seed):
    rng = random.Random(seed)
    with open(out, "w", encoding="utf-8") as f:
        for _ in range(n):
            f.write(json.dumps({"text": make_doc(rng)}, ensure_ascii=False) + "\n")


def read_docs(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f if line.strip()]


def train(corpus_path, out, vocab, min_freq, pattern, specials, max_len):
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    if pattern == "gpt2":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    else:
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(PATTERNS.get(pattern, pattern)), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    kwargs = {"max_token_length": max_len} if max_len > 0 else {}
    trainer = trainers.BpeTrainer(vocab_size=vocab, min_frequency=min_freq, show_progress=False,
                                  special_tokens=[s for s in specials.split(",") if s],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), **kwargs)
    tok.train_from_iterator(read_docs(corpus_path), trainer=trainer)
    tok.save(out)


def encode(tok_dir, docs_path, out):
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer
    tok = Tokenizer.from_file(tok_dir + "/tokenizer.json")
    fast = AutoTokenizer.from_pretrained(tok_dir)
    with open(out, "w", encoding="utf-8") as f:
        for text in read_docs(docs_path):
            ids = tok.encode(text, add_special_tokens=False).ids
            tf_ids = fast(text, add_special_tokens=False)["input_ids"]
            if ids != tf_ids:
                sys.exit(f"tokenizers and transformers disagree on {text!r}: {ids} vs {tf_ids}")
            rec = {"ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False),
                   "tf_decoded": fast.decode(ids, skip_special_tokens=False)}
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        meta = {"eos": fast.eos_token, "bos": fast.bos_token, "pad": fast.pad_token, "vocab": len(fast)}
        f.write(json.dumps({"meta": meta}, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "corpus":
        corpus(args[0], int(args[1]), int(args[2]))
    elif cmd == "train":
        train(args[0], args[1], int(args[2]), int(args[3]), args[4], args[5], int(args[6]))
    elif cmd == "encode":
        encode(args[0], args[1], args[2])
    else:
        sys.exit(f"unknown command {cmd}")
