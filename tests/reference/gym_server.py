"""A test-only NeMo Gym resources server (the protocol of nemo_gym.base_resources_server).

POST /seed_session starts a session kept in a cookie, as Gym's session middleware does; POST
/verify takes a BaseVerifyRequest (responses_create_params, response: an OpenAI Responses-API
response, and the task's fields at the top level), and answers the request body plus "reward":
1.0 when the response's output_text, trimmed, equals the task's expected_answer, trimmed (the
rule of Reef's exact_match reward), else 0.0. A verify without a seeded session's cookie, or with
a body BaseVerifyRequest would refuse, is an error, so a client that drops the cookie or
misspells the protocol fails its test. GET /stats counts the calls.

  python gym_server.py [--mode ok|error|slow|verify_error] [--sleep S]

error answers every POST with HTTP 500, verify_error only /verify, slow sleeps S seconds before
each POST. Listens on a free loopback port and prints "listening on http://127.0.0.1:PORT".
Standard library only.
"""

import argparse
import json
import threading
import time
import uuid
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SESSIONS = {}
COUNTS = {"seed_session": 0, "verify": 0}
LOCK = threading.Lock()
RESPONSE_FIELDS = ["id", "created_at", "model", "object", "output", "parallel_tool_calls",
                   "tool_choice", "tools"]


def output_text(response):
    """The assistant's text: every output_text part of every output message, joined."""
    parts = []
    for item in response["output"]:
        if item.get("type") != "message":
            continue
        for content in item["content"]:
            if content.get("type") == "output_text":
                parts.append(content["text"])
    return "".join(parts)


def check_verify_request(body):
    """What pydantic would refuse in a BaseVerifyRequest, or None."""
    params = body.get("responses_create_params")
    if not isinstance(params, dict) or not isinstance(params.get("input"), (list, str)):
        return "responses_create_params.input is required"
    for message in params["input"] if isinstance(params["input"], list) else []:
        if message.get("role") not in ("user", "assistant", "system", "developer"):
            return f"bad input message {message!r}"
    response = body.get("response")
    if not isinstance(response, dict):
        return "response is required"
    missing = [k for k in RESPONSE_FIELDS if k not in response]
    if missing:
        return f"response lacks {missing}"
    if response["object"] != "response":
        return "response.object must be 'response'"
    for item in response["output"]:
        if item.get("type") == "message":
            if item.get("role") != "assistant" or "id" not in item:
                return "an output message needs id and role assistant"
            for content in item["content"]:
                if content.get("type") == "output_text" and "annotations" not in content:
                    return "output_text needs annotations"
    return None


class Handler(BaseHTTPRequestHandler):
    mode = "ok"
    sleep_s = 0.0

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, body, cookie=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if cookie:
            self.send_header("Set-Cookie", f"session={cookie}; Path=/; HttpOnly; SameSite=lax")
        self.end_headers()
        self.wfile.write(data)

    def session(self):
        cookie = SimpleCookie(self.headers.get("Cookie", ""))
        sid = cookie["session"].value if "session" in cookie else None
        with LOCK:
            return SESSIONS.get(sid)

    def do_GET(self):
        if self.path == "/stats":
            with LOCK:
                self.reply(200, dict(COUNTS))
        else:
            self.reply(404, {"detail": "Not Found"})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        name = self.path.strip("/")
        if name not in COUNTS:
            return self.reply(404, {"detail": "Not Found"})
        with LOCK:
            COUNTS[name] += 1
        if self.mode == "slow":
            time.sleep(self.sleep_s)
        if self.mode == "error" or (self.mode == "verify_error" and name == "verify"):
            return self.reply(500, {"detail": "Internal Server Error"})
        if name == "seed_session":
            sid = uuid.uuid4().hex
            with LOCK:
                SESSIONS[sid] = {"task": body}
            return self.reply(200, {}, cookie=sid)
        session = self.session()
        if session is None:
            return self.reply(400, {"detail": "verify without a seeded session (no session cookie)"})
        problem = check_verify_request(body)
        if problem:
            return self.reply(422, {"detail": problem})
        if "expected_answer" not in body:
            return self.reply(500, {"detail": "the task has no expected_answer"})
        expected = str(body["expected_answer"]).strip()
        reward = 1.0 if output_text(body["response"]).strip() == expected else 0.0
        return self.reply(200, {**body, "reward": reward})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", default="ok", choices=["ok", "error", "slow", "verify_error"])
    ap.add_argument("--sleep", type=float, default=5.0)
    args = ap.parse_args()
    Handler.mode = args.mode
    Handler.sleep_s = args.sleep
    ThreadingHTTPServer.request_queue_size = 128  # the default 5 drops concurrent connects
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
