"""The official `openai` Python client against `reef serve` (tests/reference/serve_openai_test.cpp).

  serve_openai_client.py BASE_URL API_KEY MODEL_DIR

Drives completions, chat completions and streaming of both through openai.OpenAI, and checks
them against transformers on the same model folder: greedy text equals transformers' greedy
generate (compared on its ASCII characters: a random model emits stray UTF-8 bytes, which the
server and Python replace differently), the reported log-probs equal transformers' log-softmax,
and the chat prompt is the documented ChatML layout. Errors come back as the client's typed
exceptions. Prints one line per check; exits non-zero on the first failure.
"""
import sys

import openai
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

transformers.utils.logging.disable_progress_bar()


def ascii_only(s):
    return "".join(c for c in s if ord(c) < 128)


def check(cond, what):
    if not cond:
        print(f"FAIL: {what}")
        sys.exit(1)
    print(f"ok: {what.splitlines()[0][:100]}")


def greedy(model, tok, prompt, max_new, stop=None):
    ids = tok(prompt, return_tensors="pt").input_ids
    eos = tok.eos_token_id
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=max_new, do_sample=False, eos_token_id=eos,
                             pad_token_id=eos)
        new = out[0, ids.shape[1]:].tolist()
        if eos in new:
            new = new[:new.index(eos)]
        logp = torch.log_softmax(model(out).logits[0].float(), -1)
    text = tok.decode(new)
    if stop and stop in text:
        text = text[:text.index(stop)]
    # The log-prob of each greedy token: the row's maximum.
    maxes = [logp[ids.shape[1] - 1 + i].max().item() for i in range(len(new))]
    return text, new, maxes


def main(base_url, key, model_dir):
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    client = openai.OpenAI(base_url=base_url + "/v1", api_key=key, max_retries=0)

    models = client.models.list()
    name = models.data[0].id
    check(len(models.data) == 1 and name == "llama", f"models.list -> {name}")

    prompt = "the cat sat on"
    want, want_ids, want_logp = greedy(model, tok, prompt, 16)
    c = client.completions.create(model=name, prompt=prompt, max_tokens=16, temperature=0,
                                  logprobs=2)
    got = c.choices[0].text
    check(ascii_only(got) == ascii_only(want), f"completion {got!r} == transformers {want!r}")
    check(c.usage.completion_tokens == len(want_ids), "completion usage counts the tokens")
    lp = c.choices[0].logprobs
    check(len(lp.token_logprobs) == len(want_logp), "one log-prob per token")
    for i, (a, b) in enumerate(zip(lp.token_logprobs, want_logp)):
        check(abs(a - b) < 1e-4, f"token {i} log-prob {a} == transformers {b}")
        check(len(lp.top_logprobs[i]) >= 1 and abs(max(lp.top_logprobs[i].values()) - b) < 1e-4,
              f"token {i} top log-prob")

    pieces, finish = [], None
    for chunk in client.completions.create(model=name, prompt=prompt, max_tokens=16,
                                           temperature=0, stream=True):
        pieces.append(chunk.choices[0].text)
        finish = chunk.choices[0].finish_reason or finish
    check(ascii_only("".join(pieces)) == ascii_only(want), "streamed completion == transformers")
    check(finish == c.choices[0].finish_reason, f"stream finish_reason {finish}")

    # Chat: the built-in ChatML template, then transformers' greedy continuation of that text.
    messages = [{"role": "user", "content": "the dog"}]
    chatml = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    chatml += "<|im_start|>assistant\n"
    want_chat, want_chat_ids, _ = greedy(model, tok, chatml, 10, stop="<|im_end|>")
    r = client.chat.completions.create(model=name, messages=messages, max_tokens=10,
                                       temperature=0)
    got_chat = r.choices[0].message.content
    check(r.choices[0].message.role == "assistant", "chat reply role")
    check(ascii_only(got_chat) == ascii_only(want_chat),
          f"chat {got_chat!r} == transformers on ChatML {want_chat!r}")
    check(r.usage.prompt_tokens == len(tok(chatml).input_ids), "chat prompt tokens = ChatML's")

    deltas, roles = [], []
    stream = client.chat.completions.create(model=name, messages=messages, max_tokens=10,
                                            temperature=0, stream=True,
                                            stream_options={"include_usage": True})
    usage = None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for ch in chunk.choices:
            if ch.delta.role:
                roles.append(ch.delta.role)
            if ch.delta.content:
                deltas.append(ch.delta.content)
    check(roles == ["assistant"], "streamed chat sends the role once")
    check(ascii_only("".join(deltas)) == ascii_only(want_chat), "streamed chat == transformers")
    check(usage is not None and usage.completion_tokens == r.usage.completion_tokens,
          "streamed chat usage")

    # Seeded sampling is reproducible; n gives n choices.
    a = client.completions.create(model=name, prompt=prompt, max_tokens=8, temperature=1.0,
                                  seed=5, n=2)
    b = client.completions.create(model=name, prompt=prompt, max_tokens=8, temperature=1.0,
                                  seed=5, n=2)
    check(len(a.choices) == 2 and [x.text for x in a.choices] == [x.text for x in b.choices],
          "seeded sampling repeats, n=2")

    try:
        client.completions.create(model=name, prompt=prompt, max_tokens=1000)
        check(False, "max_tokens beyond the context is refused")
    except openai.BadRequestError as e:
        check(e.status_code == 400 and "context" in str(e), "max_tokens beyond the context -> 400")
    bad = openai.OpenAI(base_url=base_url + "/v1", api_key="wrong", max_retries=0)
    try:
        bad.models.list()
        check(False, "a wrong key is refused")
    except openai.AuthenticationError as e:
        check(e.status_code == 401, "wrong API key -> AuthenticationError")
    print("all openai client checks passed")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
