"""Benchmark: `reef data prepare` throughput against HF `tokenizers` on the same input and vocabulary.

Builds a JSONL corpus from Debian's fortunes (repeated to --mb megabytes), trains a byte-level BPE
with HF `tokenizers` (--vocab tokens), then times, in one run:
  - reef data prepare --workers 1 and 2 (the whole command: read, parse JSON, tokenize, write .bin/.idx)
  - HF tokenizers encode_batch with 1 and 2 threads (tokenization only, input already in memory)
checks that the token streams are identical, and prints MB/s and the ratios reef/HF.

  ~/.cache/reef/venv/bin/python bench/data_prepare.py [--reef build/bin/reef] [--mb 20] [--vocab 8000]
"""
import argparse, json, os, subprocess, sys, tempfile, time

import numpy as np


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
    reef_tokens = np.fromfile(os.path.join(work, "reef1.bin"), dtype=np.uint16 if args.vocab < 65500 else np.int32)
    assert np.array_equal(reef_tokens, np.fromfile(os.path.join(work, "reef2.bin"), dtype=reef_tokens.dtype))

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
    print(f"corpus: {mb:.1f} MB, {len(texts)} documents, vocab {args.vocab}; identical tokens: {identical}")
    for k, v in results.items():
        print(f"  {k:8s} {v:7.2f} MB/s")
    print(f"ratio reef/hf, 1 thread: {results['reef x1'] / results['hf x1']:.2f}   "
          f"2 threads: {results['reef x2'] / results['hf x2']:.2f}")
    print("(reef's figure covers reading, JSON parsing and writing .bin/.idx; HF's covers tokenization only)")
    if not identical:
        sys.exit(1)


if __name__ == "__main__":
    main()
