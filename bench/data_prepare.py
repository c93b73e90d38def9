"""Benchmark: `reef data prepare` throughput against HF `tokenizers` and `tiktoken` on the same input
and vocabulary.

Builds a JSONL corpus from Debian's fortunes (repeated to --mb megabytes), trains a byte-level BPE
with HF `tokenizers` (--vocab tokens), writes the same vocabulary as a tiktoken rank file, then
times, in one run:
  - reef data prepare --workers 1 and 2 with the tokenizer.json (the whole command: read, parse
    JSON, tokenize, write .bin/.idx)
  - HF tokenizers encode_batch with 1 and 2 threads (tokenization only, input already in memory)
  - reef data prepare --workers 1 and 2 with the rank file (cl100k regex), against tiktoken's
    encode_ordinary_batch with 1 and 2 threads on an Encoding of the same ranks and regex
checks that each pair's token streams are identical, and prints MB/s and the ratios.

  ~/.cache/reef/venv/bin/python bench/data_prepare.py [--reef build/bin/reef] [--mb 20] [--vocab 8000]
"""
import argparse, json, os, subprocess, sys, tempfile, time

import numpy as np


# tiktoken's cl100k_base split pattern (what Reef applies to a bare rank file).
CL100K_PATTERN = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
                  r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s""")


def read_tokens(prefix):
    """PREFIX.bin as an array, in the dtype PREFIX.idx declares (byte 17: 4 int32, 8 uint16)."""
    with open(prefix + ".idx", "rb") as f:
        code = f.read(18)[17]
    return np.fromfile(prefix + ".bin", dtype={4: np.int32, 8: np.uint16}[code])


def write_ranks(tok, path):
    """The tokenizer's byte-level vocabulary as a tiktoken rank file, in id order."""
    import base64
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    byte_of = {chr(b): b for b in printable}
    extra = 0
    for b in range(256):
        if b not in printable:
            byte_of[chr(256 + extra)] = b
            extra += 1
    seen = set()
    with open(path, "w") as f:
        for token, _ in sorted(tok.get_vocab(with_added_tokens=False).items(), key=lambda kv: kv[1]):
            if all(ch in byte_of for ch in token):
                raw = bytes(byte_of[ch] for ch in token)
                if raw not in seen:
                    f.write(f"{base64.b64encode(raw).decode()} {len(seen)}\n")
                    seen.add(raw)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reef", default="build/bin/reef")
    ap.add_argument("--mb", type=float, default=20.0)
    ap.add_argument("--vocab", type=int, default=8000)
    ap.add_argument("--fortunes", default="data/fortunes/train.jsonl")
    args = ap.parse_args()
    if not os.path.exists(args.fortunes):
        subprocess.run([args.reef, "data", "fortunes", "--output", os.path.dirname(args.fortunes)], check=True)
    docs = [json.loads(l)["text"] for l in open(args.fortunes, encoding="utf-8")]
    work = tempfile.mkdtemp(prefix="reef-bench-")
    corpus = os.path.join(work, "corpus.jsonl")
    texts, size = [], 0
    while size < args.mb * 1e6:
        for i, d in enumerate(docs):
            t = d if not texts or len(texts) < len(docs) else f"{d} [{len(texts)}]"
            texts.append(t)
            size += len(t.encode("utf-8"))
            if size >= args.mb * 1e6:
                break
    with open(corpus, "w", encoding="utf-8") as f:
        for t in texts:
            f.write(json.dumps({"text": t}) + "\n")
    mb = size / 1e6

    from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(docs, trainers.BpeTrainer(vocab_size=args.vocab, special_tokens=["<|endoftext|>"],
                                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok_path = os.path.join(work, "tokenizer.json")
    tok.save(tok_path)
    eod = tok.token_to_id("<|endoftext|>")

    results = {}
    for workers in (1, 2):
        prefix = os.path.join(work, f"reef{workers}")
        t0 = time.perf_counter()
        subprocess.run([args.reef, "data", "prepare", "--input", corpus, "--tokenizer", tok_path, "--output", prefix,
                        "--append-eod", "--workers", str(workers), "--progress", "none"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        results[f"reef x{workers}"] = mb / (time.perf_counter() - t0)
    reef_tokens = read_tokens(os.path.join(work, "reef1"))
    assert np.array_equal(reef_tokens, read_tokens(os.path.join(work, "reef2")))

    hf_tokens = None
    for threads in (1, 2):
        code = ("import sys,json,time,os; from tokenizers import Tokenizer; t=Tokenizer.from_file(sys.argv[1]);"
                "x=[json.loads(l)['text'] for l in open(sys.argv[2],encoding='utf-8')]; t0=time.perf_counter();"
                "e=t.encode_batch(x, add_special_tokens=False); dt=time.perf_counter()-t0;"
                "import numpy as np; np.save(sys.argv[3], np.concatenate([np.array(i.ids+[int(sys.argv[4])],dtype=np.int64) for i in e]));"
                "print(dt)")
        out = os.path.join(work, f"hf{threads}.npy")
        env = dict(os.environ, RAYON_NUM_THREADS=str(threads), TOKENIZERS_PARALLELISM="true")
        dt = float(subprocess.run([sys.executable, "-c", code, tok_path, corpus, out, str(eod)], env=env, check=True,
                                  capture_output=True, text=True).stdout.strip())
        results[f"hf x{threads}"] = mb / dt
        hf_tokens = np.load(out)
    identical = np.array_equal(reef_tokens.astype(np.int64), hf_tokens)

    # tiktoken: the same vocabulary as ranks (id order; the trainer's ids are merge order).
    ranks_path = os.path.join(work, "ranks.tiktoken")
    write_ranks(tok, ranks_path)
    for workers in (1, 2):
        prefix = os.path.join(work, f"reeftt{workers}")
        t0 = time.perf_counter()
        subprocess.run([args.reef, "data", "prepare", "--input", corpus, "--tokenizer", ranks_path, "--output", prefix,
                        "--workers", str(workers), "--progress", "none"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        results[f"reef-tt x{workers}"] = mb / (time.perf_counter() - t0)
    reef_tt = read_tokens(os.path.join(work, "reeftt1"))
    assert np.array_equal(reef_tt, read_tokens(os.path.join(work, "reeftt2")))
    for threads in (1, 2):
        code = ("import sys,json,time,base64,tiktoken; import numpy as np;"
                "r={base64.b64decode(a):int(b) for a,b in (l.split() for l in open(sys.argv[1]))};"
                "e=tiktoken.Encoding(name='bench',pat_str=sys.argv[4],mergeable_ranks=r,special_tokens={});"
                "x=[json.loads(l)['text'] for l in open(sys.argv[2],encoding='utf-8')]; t0=time.perf_counter();"
                "o=e.encode_ordinary_batch(x,num_threads=int(sys.argv[5])); dt=time.perf_counter()-t0;"
                "np.save(sys.argv[3], np.concatenate([np.array(i,dtype=np.int64) for i in o])); print(dt)")
        out = os.path.join(work, f"tt{threads}.npy")
        dt = float(subprocess.run([sys.executable, "-c", code, ranks_path, corpus, out, CL100K_PATTERN, str(threads)],
                                  check=True, capture_output=True, text=True).stdout.strip())
        results[f"tiktoken x{threads}"] = mb / dt
        tt_tokens = np.load(out)
    identical_tt = np.array_equal(reef_tt.astype(np.int64), tt_tokens)

    print(f"corpus: {mb:.1f} MB, {len(texts)} documents, vocab {args.vocab}; identical tokens: "
          f"reef=hf {identical}, reef=tiktoken {identical_tt}")
    for k, v in results.items():
        print(f"  {k:12s} {v:7.2f} MB/s")
    print(f"ratio reef/hf, 1 thread: {results['reef x1'] / results['hf x1']:.2f}   "
          f"2 threads: {results['reef x2'] / results['hf x2']:.2f}")
    print(f"ratio reef/tiktoken, 1 thread: {results['reef-tt x1'] / results['tiktoken x1']:.2f}   "
          f"2 threads: {results['reef-tt x2'] / results['tiktoken x2']:.2f}")
    print("(reef's figures cover reading, JSON parsing and writing .bin/.idx; HF's and tiktoken's cover "
          "tokenization only)")
    if not identical or not identical_tt:
        sys.exit(1)


if __name__ == "__main__":
    main()
