"""A small OpenAI-compatible HTTP server for eval_cli_test.cpp: serves a transformers model on
loopback so `reef eval --endpoint` is tested over real HTTP against an independent scorer.

  openai_test_server.py MODEL_DIR PORT_FILE JUDGE_LOG

Listens on 127.0.0.1 on a free port and writes the port to PORT_FILE once ready.
  POST /v1/completions: prompt (a string, or a list of token ids), max_tokens, stop,
      temperature 0 (greedy), echo + logprobs: with max_tokens 0 and echo, the prompt's tokens,
      token_logprobs (the first is null), top_logprobs (the argmax per position) and
      text_offset, computed by transformers in float32.
  POST /v1/chat/completions: a rule-based judge. The user message must hold lines
      "Reference: X" and "Answer: Y"; the score is 10 when X and Y are equal ignoring case and
      surrounding spaces, else 1 + len(Y) % 5. Each verdict is appended to JUDGE_LOG as JSON.
"""
import json
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch
import transformers

transformers.utils.logging.disable_progress_bar()

MODEL_DIR, PORT_FILE, JUDGE_LOG = sys.argv[1:4]
tok = transformers.AutoTokenizer.from_pretrained(MODEL_DIR)
model = transformers.AutoModelForCausalLM.from_pretrained(MODEL_DIR, dtype=torch.float32).eval()
lock = threading.RLock()


def prompt_logprobs(ids):
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), -1)
    token_lp, top = [None], [None]
    for j in range(1, len(ids)):
        token_lp.append(float(logp[j - 1, ids[j]]))
        best = int(logp[j - 1].argmax())
        top.append({tok.convert_ids_to_tokens(best): float(logp[j - 1, best])})
    offsets, text = [], ""
    for j in range(len(ids)):
        offsets.append(len(text))
        text = tok.decode(ids[: j + 1])
    return {"tokens": tok.convert_ids_to_tokens(ids), "token_logprobs": token_lp,
            "top_logprobs": top, "text_offset": offsets}


def greedy(ids, max_tokens, stop):
    out = []
    text = ""
    finish = "length"
    for _ in range(max_tokens):
        if len(ids) + len(out) >= model.config.max_position_embeddings:
            break
        with torch.no_grad():
            logits = model(torch.tensor([ids + out])).logits[0, -1]
        nxt = int(logits.argmax())
        if nxt == tok.eos_token_id:
            finish = "stop"
            break
        out.append(nxt)
        text = tok.decode(out, skip_special_tokens=True)
        cuts = [text.find(s) for s in stop if s and s in text]
        if cuts:
            text = text[: min(cuts)]
            finish = "stop"
            break
    return text, finish


def judge(messages):
    user = next(m["content"] for m in messages if m["role"] == "user")
    ref = re.search(r"^Reference: ?(.*)$", user, re.M).group(1)
    ans = re.search(r"^Answer: ?(.*)$", user, re.M).group(1)
    score = 10 if ref.strip().lower() == ans.strip().lower() else 1 + len(ans) % 5
    with lock, open(JUDGE_LOG, "a") as f:
        f.write(json.dumps({"reference": ref, "answer": ans, "score": score}) + "\n")
    return f"The answer was compared with the reference.\nScore: {score}"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with lock:
            try:
                if self.path == "/v1/completions":
                    self.reply(200, self.completions(req))
                elif self.path == "/v1/chat/completions":
                    content = judge(req["messages"])
                    self.reply(200, {"object": "chat.completion", "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": "stop"}]})
                else:
                    self.reply(404, {"error": {"message": f"no route {self.path}"}})
            except Exception as e:  # the client should see the error, not a dropped connection
                self.reply(400, {"error": {"message": f"{type(e).__name__}: {e}"}})

    def completions(self, req):
        prompt = req["prompt"]
        ids = list(prompt) if isinstance(prompt, list) else tok(prompt).input_ids
        max_tokens = int(req.get("max_tokens", 16))
        stop = req.get("stop") or []
        stop = [stop] if isinstance(stop, str) else stop
        choice = {"index": 0, "text": "", "logprobs": None, "finish_reason": "length"}
        if req.get("echo") and req.get("logprobs") is not None and max_tokens == 0:
            choice["logprobs"] = prompt_logprobs(ids)
            choice["text"] = tok.decode(ids)
        else:
            choice["text"], choice["finish_reason"] = greedy(ids, max_tokens, stop)
        return {"object": "text_completion", "model": "tiny", "choices": [choice]}


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(PORT_FILE + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os  # noqa: E402
os.replace(PORT_FILE + ".tmp", PORT_FILE)
server.serve_forever()
