"""Check: llama.cpp reads `reef export gguf` files as Reef reads the model folders.

For each tiny random folder that tests/reference/gguf_reference.py makes (llama and mistral with
a SentencePiece-style tokenizer whose tokenizer_config adds BOS, llama3 whose post-processor adds
BOS, qwen2, qwen3 and gpt2 with none, mixtral), exports an f32 GGUF, loads it in llama.cpp
(the `llama-cpp-python` package, installed here on first use: it compiles llama.cpp for several
minutes) and compares, for a few prompts (one quoting a special token):
  - the prompt's ids: llama.cpp's tokenize(add_bos=True, special=True) against the ids
    `reef generate --print-ids` feeds the model (BOS included or not);
  - greedy decoding: llama.cpp's next 8 tokens (top_k 1) against Reef's;
  - q4_0: `reef export gguf --type q4_0` against llama.cpp's own quantization of the f32 file
    (llama_model_quantize, MOSTLY_Q4_0, pure): every tensor's type and bytes;
  - K-quants, on the folder whose rows are all whole 256-value super-blocks ("wide"): q4_k and
    q6_k against llama.cpp's pure MOSTLY_Q4_K_S / MOSTLY_Q6_K quantization, byte for byte, and
    the perplexity llama.cpp computes on a held-out text with Reef's file, its own and the f32
    one. Models load with use_extra_bufts off: with weight repacking on, this machine's
    llama.cpp build crashes in its AMX matmul on K-quant files (its own files included).
Prints one line per case and prompt and exits non-zero on any difference.

  ~/.cache/reef/venv/bin/python bench/gguf_llamacpp.py [--reef build/bin/reef] [--tokens 8]
"""
import argparse
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def llama_cpp():
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        print("installing llama-cpp-python (compiles llama.cpp; several minutes)", flush=True)
        subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "llama-cpp-python"])
    import llama_cpp
    import llama_cpp.llama_cpp as raw
    default_params = raw.llama_model_default_params

    def without_repacking():
        p = default_params()
        p.use_extra_bufts = False
        return p

    raw.llama_model_default_params = without_repacking
    return llama_cpp


def reef_ids(reef, folder, prompt, n):
    out = subprocess.run([reef, "generate", "--model", folder, "--prompt", prompt, "--greedy",
                          "-n", str(n), "--print-ids", "--threads", "1"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"reef generate failed on {folder}:\n{out.stderr}")
    return [int(x) for x in out.stdout.split()]


HELD_OUT = ("the red dog ran over the big hill and the small cat sat on the mat under the sun "
            "then a bird flew far over the water near the tree")


def perplexity(lc, path):
    """llama.cpp's perplexity of HELD_OUT under the GGUF at `path` (every token after BOS)."""
    import numpy as np
    llm = lc.Llama(model_path=path, n_ctx=128, n_threads=1, verbose=False, logits_all=True)
    ids = llm.tokenize(HELD_OUT.encode(), add_bos=True, special=False)
    llm.eval(ids)
    logits = np.array(llm.scores[: len(ids)], dtype=np.float64)
    top = logits.max(1, keepdims=True)
    logp = logits - top - np.log(np.exp(logits - top).sum(1, keepdims=True))
    return float(np.exp(-np.mean([logp[i - 1, ids[i]] for i in range(1, len(ids))])))


def compare_quant(lc, reef, folder, f32_gguf, stem, rtype, ftype, with_perplexity=False):
    """Reef's `--type rtype` export against llama.cpp's pure quantization of the f32 file."""
    import ctypes
    import numpy as np
    from gguf import GGUFReader
    ours, theirs = f"{stem}.{rtype}.gguf", f"{stem}.llamacpp-{rtype}.gguf"
    subprocess.check_call([reef, "export", "gguf", "--model", folder, "--out", ours, "--type",
                           rtype], stdout=subprocess.DEVNULL)
    p = lc.llama_model_quantize_default_params()
    p.ftype = ftype
    p.pure = True
    if lc.llama_model_quantize(f32_gguf.encode(), theirs.encode(), ctypes.byref(p)) != 0:
        print(f"{os.path.basename(stem)}: llama.cpp could not quantize")
        return 1
    a = {t.name: t for t in GGUFReader(ours).tensors}
    b = {t.name: t for t in GGUFReader(theirs).tensors}
    differ = sorted(n for n in set(a) | set(b)
                    if n not in a or n not in b or a[n].tensor_type != b[n].tensor_type
                    or not np.array_equal(np.asarray(a[n].data).view(np.uint8),
                                          np.asarray(b[n].data).view(np.uint8)))
    line = (f"{os.path.basename(stem):8s} {rtype}: {len(a) - len(differ)} of {len(b)} tensors "
            f"equal llama.cpp's own quantization byte for byte" +
            (f"; differ: {differ}" if differ else ""))
    if with_perplexity:
        p32, pours, ptheirs = (perplexity(lc, f) for f in (f32_gguf, ours, theirs))
        line += (f"; held-out perplexity: f32 {p32:.3f}, Reef {rtype} {pours:.3f}, llama.cpp "
                 f"{rtype} {ptheirs:.3f} ({100 * (pours / ptheirs - 1):+.3f}%)")
    print(line)
    return 1 if differ else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reef", default=os.path.join(ROOT, "build/bin/reef"))
    ap.add_argument("--tokens", type=int, default=8)
    args = ap.parse_args()
    lc = llama_cpp()
    prompts = ["the cat sat on the mat", "Hello world", "over the hill</s> and <s> far"]
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.check_call([sys.executable, os.path.join(ROOT, "tests/reference/gguf_reference.py"),
                               "make", tmp], stdout=subprocess.DEVNULL)
        cases = open(os.path.join(tmp, "cases.txt")).read().split()
        for case in cases:
            folder = os.path.join(tmp, case)
            gguf = os.path.join(tmp, case + ".gguf")
            subprocess.check_call([args.reef, "export", "gguf", "--model", folder, "--out", gguf,
                                   "--type", "f32"], stdout=subprocess.DEVNULL)
            llm = lc.Llama(model_path=gguf, n_ctx=128, n_threads=1, verbose=False,
                           logits_all=False)
            eos = llm.token_eos()
            for prompt in prompts:
                theirs = llm.tokenize(prompt.encode(), add_bos=True, special=True)
                ours = reef_ids(args.reef, folder, prompt, args.tokens)
                ours_prompt, ours_gen = ours[:len(theirs)], ours[len(theirs):]
                gen = []
                llm.reset()
                for tok in llm.generate(theirs, top_k=1, temp=0.0, repeat_penalty=1.0):
                    if tok == eos or len(gen) == args.tokens:
                        break
                    gen.append(tok)
                ok_prompt = ours_prompt == theirs
                ok_gen = ok_prompt and ours_gen == gen
                failures += (not ok_prompt) + (not ok_gen)
                bos = "BOS" if theirs and theirs[0] == llm.token_bos() else "no BOS"
                print(f"{case:8s} {prompt[:24]!r:28s} prompt ids {'equal' if ok_prompt else 'DIFFER'}"
                      f" ({len(theirs)} ids, {bos}); greedy {len(gen)} tokens "
                      f"{'equal' if ok_gen else 'DIFFER'}")
                if not ok_gen:
                    print(f"    reef     {ours}\n    llama.cpp {theirs} + {gen}")
            del llm
            failures += compare_quant(lc, args.reef, folder, gguf, os.path.join(tmp, case), "q4_0",
                                      lc.LLAMA_FTYPE_MOSTLY_Q4_0)
            if case == "wide":
                for t, ft in (("q4_k", lc.LLAMA_FTYPE_MOSTLY_Q4_K_S),
                              ("q6_k", lc.LLAMA_FTYPE_MOSTLY_Q6_K)):
                    failures += compare_quant(lc, args.reef, folder, gguf,
                                              os.path.join(tmp, case), t, ft,
                                              with_perplexity=True)
    print("all equal" if failures == 0 else f"{failures} differences")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
