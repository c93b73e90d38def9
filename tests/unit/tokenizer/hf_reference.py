# Builds reference tokenizers with HF `tokenizers` (nothing is downloaded) and writes, for a
# seeded multilingual corpus, the ids and decodings HF produces, for Reef's hf_tokenizer_test:
# byte-level BPE (GPT-2, Llama 3, Qwen2 with NFC), normalizer mixes, and Llama-2-style
# byte-fallback tokenizer.json files converted by transformers from a SentencePiece model
# trained here. Usage: hf_reference.py N_DOCS OUT_DIR
import importlib
import json
import os
import random
import sys
import unicodedata

from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors,
                        trainers)

QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")

BASE_WORDS = {
    "en": "the quick brown fox jumps over lazy dog it's we're they've I'm you'll she'd DON'T WE'LL".split(),
    "fr": "déjà vu élève garçon où ça naïve cœur Noël forêt".split(),
    "de": "Größe Straße übermäßig Fußgänger Äpfel Öl".split(),
    "ru": "привет мир Москва съешь же ещё этих мягких французских булок".split(),
    "el": "καλημέρα κόσμε Ελλάδα αλφάβητο".split(),
    "ar": "مرحبا بالعالم العربية كتاب".split(),
    "hi": "नमस्ते दुनिया हिन्दी भाषा".split(),
    "zh": ["你好", "世界", "中文", "分词器", "测试", "。", "，"],
    "ja": ["こんにちは", "世界", "カタカナ", "ひらがな", "漢字", "です"],
    "ko": ["안녕하세요", "세계", "한국어"],
    "emoji": ["😀", "🎉", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "❤️", "🤖", "✨"],
    "num": ["0", "42", "3.14159", "1,000,000", "2026", "1234567890", "٣٤٥", "①"],
    "code": ["def f(x):", "return x**2", "for (int i = 0; i < n; ++i) {", "}", "#include <vector>",
             "std::vector<int>", "x += 1;", "// comment", "if a != b:", "\"str\"", "'c'", "=>", "->",
             "<|endoftext|>", "<|begin_of_text|>", "<tool>", "<mask>"],
}
# The corpus of the tokenizers built here adds Qwen2/Llama 2 specials and text that the Unicode
# normal forms change; the SentencePiece references keep BASE_WORDS (libsentencepiece and the
# Python package break some score ties differently, and the base corpus has none).
WORDS = {
    **BASE_WORDS,
    "code": BASE_WORDS["code"] + ["<|im_start|>", "<|im_end|>", "<s>", "</s>", "<unk>", "custom_word", "\u2581",
                                  "<0x41>"],
    # Decomposed and compatibility forms, so that NFC/NFKC/NFD change the text.
    "nfc": ["e\u0301", "cafe\u0301", "caf\u00e9", "\u212b", "A\u030a", "\u1100\u1161\u11a8", "\u1112\u1161\u11ab",
            "o\u0308\u0301", "x\u0323\u0307", "\u1e9b\u0323", "n\u0303o", "x\u0301y", "\ufb01", "\ufb03",
            "\uff21\uff22\uff23", "\u00bd", "\u2460", "\u01c5", "\u0130stanbul", "\u03a3\u0391\u03a3"],
}
SPACES = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\u00a0", "\u0085", "\u3000", "\u2009",
          "        ", "\t\t", "\n   \n", "\u2028"]


def random_char(rng):
    ranges = [(0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x6FF), (0x900, 0x97F),
              (0x3040, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0x1F300, 0x1F64F), (0x2000, 0x206F)]
    lo, hi = rng.choice(ranges)
    return chr(rng.randint(lo, hi))


def make_doc(rng, words=WORDS):
    parts = []
    for _ in range(rng.randint(1, 40)):
        r = rng.random()
        if r < 0.55:
            parts.append(rng.choice(words[rng.choice(list(words))]))
        elif r < 0.8:
            parts.append(rng.choice(SPACES))
        elif r < 0.9:
            parts.append("".join(random_char(rng) for _ in range(rng.randint(1, 6))))
        else:
            parts.append(rng.choice(["'s", "'T", "'ll", "'VE", "...", "!!", "?", "-", "--", "(", ")"]))
        if rng.random() < 0.6:
            parts.append(" ")
    return "".join(parts)


def train(tok, texts, specials, vocab_size):
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)


def build_gpt2(texts, out):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    train(tok, texts, ["<|endoftext|>"], 1500)
    os.makedirs(out, exist_ok=True)
    tok.save(os.path.join(out, "tokenizer.json"))
    # The legacy "a b" merge form, as older GPT-2 files carry it.
    with open(os.path.join(out, "tokenizer.json")) as f:
        doc = json.load(f)
    doc["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m for m in doc["model"]["merges"]]
    with open(os.path.join(out, "tokenizer.json"), "w") as f:
        json.dump(doc, f, ensure_ascii=False)
    cfg = {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "tokenizer_class": "GPT2Tokenizer"}
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f)
    return Tokenizer.from_file(os.path.join(out, "tokenizer.json"))


def build_llama3(texts, out):
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]
    train(tok, texts, specials, 2500)
    tok.add_tokens([AddedToken("<tool>", special=False, normalized=False), "custom_word"])
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, rstrip=True, special=True)])
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A $B",
                                      special_tokens=[("<|begin_of_text|>", bos)])])
    os.makedirs(out, exist_ok=True)
    tok.save(os.path.join(out, "tokenizer.json"))
    cfg = {"bos_token": {"content": "<|begin_of_text|>", "special": True}, "eos_token": "<|eot_id|>",
           "chat_template": "{% for m in messages %}{{ m['content'] }}{% endfor %}"}
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f)
    return tok


def build_qwen2(texts, out):
    """Qwen2/Qwen3's layout: NFC, a Split regex, ByteLevel without its own regex."""
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    train(tok, texts, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], 2000)
    # A normalized added token is matched on NFC text by its NFC form; a non-normalized one only
    # on the raw text.
    tok.add_tokens([AddedToken("cafe\u0301", normalized=True), AddedToken("n\u0303o", normalized=False)])
    os.makedirs(out, exist_ok=True)
    tok.save(os.path.join(out, "tokenizer.json"))
    cfg = {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f)
    return tok


def build_normalized(norm):
    """Byte-level BPE behind a mix of normalizers."""
    def build(texts, out):
        tok = Tokenizer(models.BPE())
        tok.normalizer = norm
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        train(tok, texts[:300], ["<|endoftext|>"], 600)
        os.makedirs(out, exist_ok=True)
        tok.save(os.path.join(out, "tokenizer.json"))
        return tok
    return build


def build_split(behavior, invert, prefix_space):
    def build(texts, out):
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(r"\s+|\p{P}"), behavior=behavior, invert=invert),
            pre_tokenizers.Split(" ", behavior="merged_with_next"),
            pre_tokenizers.ByteLevel(add_prefix_space=prefix_space, use_regex=prefix_space)])
        tok.decoder = decoders.ByteLevel()
        train(tok, texts[:300], ["<|endoftext|>"], 600)
        os.makedirs(out, exist_ok=True)
        tok.save(os.path.join(out, "tokenizer.json"))
        return tok
    return build


CL100K_PATTERN = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
                  r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s""")
O200K_PATTERN = "|".join([
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""", r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""", r"""\s*[\r\n]+""", r"""\s+(?!\S)""", r"""\s+"""])


def build_digits_punct(individual):
    def build(texts, out):
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=individual),
            pre_tokenizers.Punctuation(behavior="merged_with_next" if individual else "isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
        tok.decoder = decoders.ByteLevel()
        train(tok, texts[:300], ["<|endoftext|>"], 600)
        os.makedirs(out, exist_ok=True)
        tok.save(os.path.join(out, "tokenizer.json"))
        return tok
    return build


def write_tiktoken(hf_tok, docs, out):
    """A tiktoken rank file from a trained byte-level vocabulary (ranks in id order), and tiktoken's
    own encodings of the corpus under the cl100k and o200k regexes."""
    import base64
    import tiktoken
    # GPT-2 byte-to-unicode, to turn vocabulary strings back into bytes.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    u2b = {chr(c): b for b, c in zip(bs, cs)}
    vocab = sorted(hf_tok.get_vocab(with_added_tokens=False).items(), key=lambda kv: kv[1])
    ranks = {}
    for token, _ in vocab:
        if all(ch in u2b for ch in token):
            ranks.setdefault(bytes(u2b[ch] for ch in token), len(ranks))
    assert len(ranks) > 256
    for name, pattern in [("tiktoken_cl100k", CL100K_PATTERN), ("tiktoken_o200k", O200K_PATTERN)]:
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "ranks.tiktoken"), "w") as f:
            for tok, r in ranks.items():
                f.write(base64.b64encode(tok).decode() + " " + str(r) + "\n")
        specials = {"<|endoftext|>": len(ranks), "<|endofprompt|>": len(ranks) + 1}
        enc = tiktoken.Encoding(name=name, pat_str=pattern, mergeable_ranks=ranks, special_tokens=specials)
        with open(os.path.join(d, "reference.jsonl"), "w") as f:
            for text in docs:
                plain = enc.encode_ordinary(text)
                full = enc.encode(text, allowed_special="all")
                rec = {"text": text, "plain": plain, "full": full, "decode_plain": enc.decode(plain),
                       "decode_full_skip": enc.decode([i for i in full if i < len(ranks)]),
                       "decode_full_keep": enc.decode(full)}
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")


def write_sentencepiece(n_docs, out):
    """SentencePiece models trained here: BPE with byte fallback and no normalization (Llama 2
    style), and a unigram model with the default NFKC normalizer; with their encodings of the
    base corpus."""
    import sentencepiece as spm
    rng = random.Random(1234)
    docs = [make_doc(rng, BASE_WORDS) for _ in range(n_docs)]
    train_texts = [make_doc(random.Random(i), BASE_WORDS) for i in range(2000)]
    # Only the word lists' characters in training, so the random ones exercise byte fallback/unk.
    allowed = set("".join(w for ws in BASE_WORDS.values() for w in ws) + "".join(SPACES) + "".join(map(chr, range(32, 127))))
    train_texts = ["".join(c for c in t if c in allowed) for t in train_texts]
    for name, kwargs in [("sp_bpe", dict(model_type="bpe", byte_fallback=True, normalization_rule_name="identity",
                                          remove_extra_whitespaces=False, vocab_size=2000)),
                         ("sp_unigram", dict(model_type="unigram", vocab_size=600))]:
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        spm.SentencePieceTrainer.train(sentence_iterator=iter(train_texts), model_prefix=os.path.join(d, "tokenizer"),
                                       character_coverage=1.0, minloglevel=2, num_threads=1,
                                       bos_id=1, eos_id=2, unk_id=0, pad_id=3, **kwargs)
        sp = spm.SentencePieceProcessor(model_file=os.path.join(d, "tokenizer.model"))
        with open(os.path.join(d, "reference.jsonl"), "w") as f:
            for text in docs:
                ids = sp.encode(text, out_type=int)
                full = [sp.bos_id()] + ids + [sp.eos_id()]
                rec = {"text": text, "plain": ids, "full": full, "decode_plain": sp.decode(ids),
                       "decode_full_skip": sp.decode(full),
                       "decode_full_keep": "<s>" + sp.decode(ids) + "</s>"}
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")


def train_llama_sp(train_texts, out):
    """A SentencePiece BPE model with Llama 2's trainer settings (byte fallback, split digits),
    trained once into OUT and shared by the Llama-2-style variants."""
    import sentencepiece as spm
    if os.path.exists(os.path.join(out, "llama.model")):
        return os.path.join(out, "llama.model")
    allowed = set("".join(w for ws in WORDS.values() for w in ws) + "".join(SPACES) + "".join(map(chr, range(32, 127))))
    train_texts = ["".join(c for c in t if c in allowed) for t in train_texts]
    os.makedirs(out, exist_ok=True)
    spm.SentencePieceTrainer.train(sentence_iterator=iter(train_texts), model_prefix=os.path.join(out, "llama"),
                                   model_type="bpe", vocab_size=1500, byte_fallback=True, split_digits=True,
                                   allow_whitespace_only_pieces=True, normalization_rule_name="identity",
                                   remove_extra_whitespaces=False, character_coverage=1.0, minloglevel=2,
                                   num_threads=1, unk_id=0, bos_id=1, eos_id=2, pad_id=-1)
    return os.path.join(out, "llama.model")


def convert_llama(model_file, legacy):
    """transformers' LlamaConverter, as LlamaTokenizerFast(from_slow=True, legacy=...) runs it, then
    what LlamaTokenizerFast adds: <unk> as a special token and the "<s> $A" template."""
    cst = importlib.import_module("transformers.convert_slow_tokenizer")

    class Extractor(cst.SentencePieceExtractor):
        # transformers 5's extractor lost the (vocab_scores) form that SpmConverter still calls.
        def extract(self, vocab_scores=None):
            vocab = {p.piece: i for i, p in enumerate(self.proto.pieces)}
            return vocab, cst.generate_merges(vocab, vocab_scores)

    class Converter(cst.LlamaConverter):
        SpmExtractor = Extractor

    class Slow:
        vocab_file, add_prefix_space = model_file, True

        def __init__(self):
            self.legacy = legacy

        def convert_ids_to_tokens(self, i):
            return ["<unk>", "<s>", "</s>"][i]

    tok = Converter(Slow()).converted()
    tok.add_special_tokens([AddedToken("<unk>", normalized=False, special=True)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", 1)])
    return tok


def build_llama2(legacy, edit=None):
    def build(texts, out):
        model = train_llama_sp(texts, os.path.join(os.path.dirname(out), "llama_sp"))
        tok = convert_llama(model, legacy)
        tok.add_tokens([AddedToken("custom_word", normalized=True), AddedToken("<tool>", normalized=False)])
        if edit:
            doc = json.loads(tok.to_str())
            edit(doc)
            tok = Tokenizer.from_str(json.dumps(doc))
        os.makedirs(out, exist_ok=True)
        tok.save(os.path.join(out, "tokenizer.json"))
        cfg = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "legacy": legacy}
        with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
            json.dump(cfg, f)
        return tok
    return build


def metaspace_split_unk(fuse):
    """Metaspace pre-tokenizer and decoder (prepend always, split), no byte fallback: unknown
    characters become <unk>, fused or not."""
    def edit(doc):
        ms = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True}
        doc["pre_tokenizer"] = ms
        doc["decoder"] = ms
        doc["post_processor"] = None
        doc["model"]["byte_fallback"] = False
        doc["model"]["fuse_unk"] = fuse
    return edit


def normalized_specials(doc):
    """Older Llama files (huggyllama) mark <unk>, <s>, </s> "normalized": true."""
    for t in doc["added_tokens"]:
        if t["content"] in ("<unk>", "<s>", "</s>"):
            t["normalized"] = True


def gemma_style(doc):
    """Gemma's layout: Replace(" ", "\u2581") with no prefix, no Strip in the decoder."""
    doc["normalizer"] = {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}
    doc["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
        {"type": "ByteFallback"}, {"type": "Fuse"}]}


def main():
    n_docs, out = int(sys.argv[1]), sys.argv[2]
    rng = random.Random(1234)
    docs = [make_doc(rng) for _ in range(n_docs)]
    train_texts = [make_doc(random.Random(i)) for i in range(2000)]
    variants = [("gpt2", build_gpt2, n_docs), ("llama3", build_llama3, n_docs)]
    for behavior in ["removed", "isolated", "merged_with_previous", "merged_with_next", "contiguous"]:
        for invert in [False, True]:
            name = "split_%s%s" % (behavior, "_inverted" if invert else "")
            variants.append((name, build_split(behavior, invert, invert), n_docs // 10))
    variants.append(("digits_individual", build_digits_punct(True), n_docs // 10))
    variants.append(("digits_runs", build_digits_punct(False), n_docs // 10))
    variants.append(("qwen2", build_qwen2, n_docs))
    variants.append(("norm_nfkd_lower", build_normalized(normalizers.Sequence([
        normalizers.NFKD(), normalizers.StripAccents(), normalizers.Lowercase(), normalizers.Strip(),
        normalizers.Replace(Regex(" {2,}"), " ")])), n_docs // 5))
    variants.append(("norm_nfkc_prepend", build_normalized(normalizers.Sequence([
        normalizers.NFKC(), normalizers.Replace("e", "E"), normalizers.Prepend("\u00a7"),
        normalizers.Strip(left=False, right=True)])), n_docs // 5))
    variants.append(("norm_nfd", build_normalized(normalizers.NFD()), n_docs // 5))
    variants.append(("llama2_legacy", build_llama2(True), n_docs))
    variants.append(("llama2_metaspace", build_llama2(False), n_docs // 3))
    variants.append(("metaspace_unk_fused", build_llama2(False, metaspace_split_unk(True)), n_docs // 5))
    variants.append(("metaspace_unk_unfused", build_llama2(False, metaspace_split_unk(False)), n_docs // 5))
    variants.append(("gemma_style", build_llama2(True, gemma_style), n_docs // 5))
    variants.append(("llama2_normalized_specials", build_llama2(True, normalized_specials), n_docs // 5))
    for name, build, n in variants:
        tok = build(train_texts, os.path.join(out, name))
        if name == "llama3":
            write_tiktoken(tok, docs, out)
            write_sentencepiece(n_docs, out)
        # "plain": special-token text stays text, no template; "full": HF's default encode.
        tok.encode_special_tokens = True
        plains = [e.ids for e in tok.encode_batch(docs[:n], add_special_tokens=False)]
        tok.encode_special_tokens = False
        fulls = [e.ids for e in tok.encode_batch(docs[:n], add_special_tokens=True)]
        columns = zip(docs[:n], plains, fulls, tok.decode_batch(plains, skip_special_tokens=True),
                      tok.decode_batch(fulls, skip_special_tokens=True),
                      tok.decode_batch(fulls, skip_special_tokens=False))
        with open(os.path.join(out, name, "reference.jsonl"), "w") as f:
            for d, plain, full, decode_plain, decode_full_skip, decode_full_keep in columns:
                rec = {"text": d, "plain": plain, "full": full, "decode_plain": decode_plain,
                       "decode_full_skip": decode_full_skip, "decode_full_keep": decode_full_keep,
                       "nfc_changes": unicodedata.normalize("NFC", d) != d}
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
