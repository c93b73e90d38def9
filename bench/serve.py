"""Benchmark: `reef serve` throughput and latency at concurrency 1, 8 and 32 against one stream.

Makes a small random llama model folder with transformers (hidden 256, 4 layers, 8 heads / 4
kv heads, context 512) and a byte-level BPE tokenizer trained by `tokenizers`, starts
`reef serve` on it, and for each concurrency level runs that many client threads, each sending
streamed completions (a prompt of --prompt-words words, --max-tokens tokens, greedy, with
"ignore_eos" so every request generates them all) one after another. Prints generated tokens/s, request latency
(mean, p50, p95), time to first token (p50, p95) and inter-token latency (mean), and each level's
throughput as a multiple of concurrency 1.

Then prefix caching: requests that share a --prefix-tokens long start (a system prompt) and end
in different questions, sent one at a time to a server with prefix caching (the default) and to
one started with --no-prefix-caching; prints each one's time to first token (median and spread
over --prefix-trials requests after the first) and their ratio, and checks that both servers
give the same greedy text. --levels "" runs only this part; --prefix-tokens 0 skips it.

  ~/.cache/reef/venv/bin/python bench/serve.py [--reef build/bin/reef] [--requests-per-client 3]
      [--max-tokens 64] [--threads 2] [--prefix-tokens 1000] [--prefix-trials 8]
"""
import argparse, http.client, json, os, re, statistics, subprocess, sys, tempfile, threading, time

from reef_bench import start_serve


def make_model(folder):
    import torch, transformers
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
    from transformers import PreTrainedTokenizerFast
    words = "the cat sat on a mat and dog ran far away home big red sun over hill".split()
    g = torch.Generator().manual_seed(0)
    docs = [" ".join(words[i] for i in torch.randint(0, len(words), (12,), generator=g).tolist())
            for _ in range(300)]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(docs, trainers.BpeTrainer(
        vocab_size=512, special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    eos = tok.token_to_id("<|endoftext|>")
    cfg = transformers.LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=256,
                                   intermediate_size=688, num_hidden_layers=4,
                                   num_attention_heads=8, num_key_value_heads=4,
                                   max_position_embeddings=2048, bos_token_id=eos,
                                   eos_token_id=eos)
    torch.manual_seed(0)
    transformers.AutoModelForCausalLM.from_config(cfg, dtype=torch.float32).save_pretrained(folder)
    PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>",
                            bos_token="<|endoftext|>").save_pretrained(folder)
    return words


def one_request(port, prompt, max_tokens):
    """Streams one completion; returns (latency, ttft, token times, completion tokens)."""
    body = json.dumps({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
                       "ignore_eos": True,
                       "stream": True, "stream_options": {"include_usage": True}})
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200, resp.read()
    times, tokens = [], 0
    for raw in resp:
        line = raw.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        chunk = json.loads(line[6:])
        if chunk.get("usage"):
            tokens = chunk["usage"]["completion_tokens"]
        elif chunk["choices"] and chunk["choices"][0]["finish_reason"] is None:
            times.append(time.perf_counter())
    conn.close()
    end = time.perf_counter()
    return end - start, (times[0] - start) if times else end - start, times, tokens


def run_level(port, words, concurrency, per_client, max_tokens, prompt_words):
    results, lock = [], threading.Lock()

    def client(c):
        for r in range(per_client):
            prompt = " ".join(words[(c * 7 + r * 3 + i) % len(words)] for i in range(prompt_words))
            out = one_request(port, prompt, max_tokens)
            with lock:
                results.append(out)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    lat = sorted(r[0] for r in results)
    ttft = sorted(r[1] for r in results)
    gaps = [b - a for r in results for a, b in zip(r[2], r[2][1:])]
    tokens = sum(r[3] for r in results)
    pct = lambda xs, p: xs[min(len(xs) - 1, int(p * len(xs)))]
    return {"concurrency": concurrency, "requests": len(results), "tokens": tokens,
            "wall_s": wall, "tok_per_s": tokens / wall, "lat_mean": statistics.mean(lat),
            "lat_p50": pct(lat, 0.5), "lat_p95": pct(lat, 0.95), "ttft_p50": pct(ttft, 0.5),
            "ttft_p95": pct(ttft, 0.95), "itl_mean": statistics.mean(gaps) if gaps else 0.0}


def token_count(port, text):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", "/tokenize", json.dumps({"prompt": text, "add_special_tokens": False}),
                 {"Content-Type": "application/json"})
    n = json.loads(conn.getresponse().read())["count"]
    conn.close()
    return n


def greedy_text(port, prompt, max_tokens):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("POST", "/v1/completions",
                 json.dumps({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0}),
                 {"Content-Type": "application/json"})
    text = json.loads(conn.getresponse().read())["choices"][0]["text"]
    conn.close()
    return text


def prefix_run(argv, log, words, n_tokens, trials):
    """TTFTs of trials + 1 requests sharing an n_tokens start, and their greedy texts."""
    proc, port = start_serve(argv, log)
    try:
        prefix, i = "", 0
        while token_count(port, prefix) < n_tokens:
            prefix += words[(i * 5) % len(words)] + " "
            i += 1
        ttfts, texts = [], []
        for t in range(trials + 1):
            question = " ".join(words[(t * 3 + k) % len(words)] for k in range(6))
            ttfts.append(one_request(port, prefix + question, 1)[1])
            texts.append(greedy_text(port, prefix + question, 8))
        return ttfts, texts, token_count(port, prefix)
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reef", default="build/bin/reef")
    ap.add_argument("--requests-per-client", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--prompt-words", type=int, default=24)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--levels", default="1,8,32")
    ap.add_argument("--prefix-tokens", type=int, default=1000)
    ap.add_argument("--prefix-trials", type=int, default=8)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "model")
        words = make_model(folder)
        argv = [args.reef, "serve", "--model", folder, "--port", "0", "--threads",
                str(args.threads), "--max-batch", "32", "--prefill-chunk", "64",
                "--max-seq-len", "2048"]
        rows = []
        if args.levels:
            proc, port = start_serve(argv, os.path.join(tmp, "serve.log"))
            try:
                one_request(port, "warm up", 4)
                rows = [run_level(port, words, c, args.requests_per_client, args.max_tokens,
                                  args.prompt_words) for c in map(int, args.levels.split(","))]
            finally:
                proc.terminate()
                proc.wait(timeout=60)
        if args.prefix_tokens > 0:
            log = os.path.join(tmp, "prefix.log")
            hit, hit_texts, n = prefix_run(argv, log, words, args.prefix_tokens, args.prefix_trials)
            miss, miss_texts, _ = prefix_run(argv + ["--no-prefix-caching"], log, words,
                                             args.prefix_tokens, args.prefix_trials)
    if rows:
        print_levels(args, rows)
    if args.prefix_tokens > 0:
        med = statistics.median
        h, m = hit[1:], miss[1:]  # the first request of each server fills its cache
        print(f"prefix caching, {n}-token shared start, {len(h)} requests each (after one "
              f"warm-up), time to first token:")
        print(f"  cached:    median {med(h) * 1000:7.1f} ms  (min {min(h) * 1000:.1f}, "
              f"max {max(h) * 1000:.1f}); first request {hit[0] * 1000:.1f} ms")
        print(f"  no cache:  median {med(m) * 1000:7.1f} ms  (min {min(m) * 1000:.1f}, "
              f"max {max(m) * 1000:.1f})")
        print(f"  ratio no-cache / cached: {med(m) / med(h):.1f}x (spread "
              f"{min(m) / max(h):.1f}x .. {max(m) / min(h):.1f}x)")
        same = hit_texts == miss_texts
        print(f"  greedy texts identical with and without the cache: {same}")
        if not same:
            sys.exit("prefix caching changed a greedy output")


def print_levels(args, rows):
    base = rows[0]["tok_per_s"]
    print(f"reef serve, llama 4x256 (random), {args.threads} torch threads, "
          f"max_tokens {args.max_tokens}, {args.requests_per_client} requests per client")
    print(f"{'conc':>4} {'reqs':>5} {'tokens':>7} {'tok/s':>8} {'x c=1':>6} {'lat mean':>9} "
          f"{'lat p50':>8} {'lat p95':>8} {'ttft p50':>9} {'ttft p95':>9} {'itl mean':>9}")
    for r in rows:
        print(f"{r['concurrency']:>4} {r['requests']:>5} {r['tokens']:>7} {r['tok_per_s']:>8.1f} "
              f"{r['tok_per_s'] / base:>6.2f} {r['lat_mean']:>8.2f}s {r['lat_p50']:>7.2f}s "
              f"{r['lat_p95']:>7.2f}s {r['ttft_p50']:>8.3f}s {r['ttft_p95']:>8.3f}s "
              f"{r['itl_mean'] * 1000:>7.1f}ms")


if __name__ == "__main__":
    main()
