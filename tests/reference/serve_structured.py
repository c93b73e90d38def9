"""Structured output from `reef serve`, checked with `jsonschema` and the official `openai` client.

  serve_structured.py make OUT_DIR
      OUT_DIR/model/: a small random llama (transformers; context 1024) with a byte-level BPE
      tokenizer trained by `tokenizers` on JSON-like text (so tokens span several characters:
      '{"', '":', ...) and TOOL_TEMPLATE, a ChatML template that renders tools, tool calls and
      tool results the Hermes way (Qwen2.5 and Hermes models write calls as
      <tool_call>{"name": ..., "arguments": ...}</tool_call>).

  serve_structured.py check BASE_URL
      With the openai client against BASE_URL/v1:
      - SCHEMAS (12: nested objects, $defs/$ref, enums, arrays with bounds, numbers, integers,
        booleans, nulls, optional fields as anyOf, string lengths, maps): 20 sampled chat
        completions each (temperature 1, two requests of n=10) with response_format json_schema;
        every output must parse and validate (jsonschema Draft 2020-12) and end by itself
        (finish_reason "stop").
      - json_object: 20 samples, each a JSON object.
      - chat.completions.parse with a pydantic model (nested, optional, enum, list): parsed.
      - a schema with a keyword the server cannot enforce (pattern): 400 naming response_format.
      - tools: tool_choice "required" (n=10, temperature 1) gives tool_calls naming a tool with
        arguments valid under its parameters and finish_reason "tool_calls"; a named tool_choice
        calls only that function; parallel_tool_calls false gives one call; streamed, the calls
        arrive in a delta, and an auto answer that is no call streams delta by delta; a second turn carrying the assistant's tool_calls and a tool result
        is rendered with both (read back through /tokenize and /detokenize) and answered.
      Prints the counts and "all structured-output checks passed"; exits 1 on any failure.
"""
import json
import os
import sys

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SCHEMAS = {
    "person": {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
               "required": ["name", "age"], "additionalProperties": False},
    "flags": {"type": "object", "properties": {
        "color": {"enum": ["red", "green", "blue"]}, "ok": {"type": "boolean"},
        "nothing": {"type": "null"}}, "required": ["color", "ok", "nothing"],
        "additionalProperties": False},
    "order": {"type": "object", "properties": {
        "id": {"type": "integer"}, "customer": {"$ref": "#/$defs/Customer"},
        "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}, "minItems": 1, "maxItems": 3}},
        "required": ["id", "customer", "items"], "additionalProperties": False,
        "$defs": {
            "Customer": {"type": "object", "properties": {"name": {"type": "string"},
                                                           "vip": {"type": "boolean"}},
                         "required": ["name", "vip"], "additionalProperties": False},
            "Item": {"type": "object", "properties": {"sku": {"type": "string", "maxLength": 6},
                                                       "qty": {"type": "integer"},
                                                       "price": {"type": "number"}},
                     "required": ["sku", "qty", "price"], "additionalProperties": False}}},
    "numbers": {"type": "object", "properties": {"values": {"type": "array", "items": {"type": "number"},
                                                            "minItems": 1, "maxItems": 5}},
                "required": ["values"], "additionalProperties": False},
    "optional": {"type": "object", "properties": {
        "title": {"type": "string"}, "subtitle": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "year": {"type": ["integer", "null"]}}, "required": ["title", "subtitle", "year"],
        "additionalProperties": False},
    "lengths": {"type": "object", "properties": {"code": {"type": "string", "minLength": 2, "maxLength": 4},
                                                  "note": {"type": "string", "maxLength": 12}},
                "required": ["code", "note"], "additionalProperties": False},
    "constant": {"type": "object", "properties": {"version": {"const": 2}, "kind": {"const": "event"},
                                                   "value": {"type": "number"}},
                 "required": ["version", "kind", "value"], "additionalProperties": False},
    "tree": {"type": "object", "properties": {"root": {"$ref": "#/$defs/Node"}}, "required": ["root"],
             "additionalProperties": False,
             "$defs": {"Node": {"type": "object", "properties": {
                 "label": {"enum": ["a", "b", "c"]},
                 "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}, "maxItems": 2}},
                 "required": ["label", "children"], "additionalProperties": False}}},
    "matrix": {"type": "object", "properties": {"rows": {"type": "array", "minItems": 2, "maxItems": 2,
                                                         "items": {"type": "array", "items": {"type": "integer"},
                                                                   "minItems": 2, "maxItems": 2}}},
               "required": ["rows"], "additionalProperties": False},
    "map": {"type": "object", "additionalProperties": {"type": "integer"}},
    "some_optional": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"},
                                                        "c": {"type": "boolean"}},
                      "required": ["a"], "additionalProperties": False},
    "tags": {"type": "object", "properties": {"tags": {"type": "array", "items": {"enum": ["x", "y", 1, None]}}},
             "required": ["tags"], "additionalProperties": False},
}


TOOL_TEMPLATE = (
    "{%- if tools %}<|im_start|>system\nFunctions you may call, one <tool_call> block each:\n"
    "{%- for t in tools %}\n{{ t | tojson }}{%- endfor %}<|im_end|>\n{%- endif %}"
    "{%- for m in messages %}"
    "{%- if m.role == 'assistant' and m.tool_calls %}<|im_start|>assistant\n"
    "{%- for c in m.tool_calls %}<tool_call>\n{\"name\": \"{{ c.function.name }}\", "
    "\"arguments\": {{ c.function.arguments | tojson }}}\n</tool_call>{%- endfor %}<|im_end|>\n"
    "{%- elif m.role == 'tool' %}<|im_start|>user\n<tool_response>\n{{ m.content }}\n"
    "</tool_response><|im_end|>\n"
    "{%- else %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{%- endif %}"
    "{%- endfor %}{%- if add_generation_prompt %}<|im_start|>assistant\n{%- endif %}")


def make(out):
    import torch
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    import random
    rng = random.Random(0)
    words = "name age id sku qty price title year code note kind value root label rows tags the a".split()
    corpus = []
    for _ in range(400):
        obj = {rng.choice(words): rng.choice([rng.randint(0, 99), rng.choice(words), True, None,
                                              [1, 2], {"x": "y"}]) for _ in range(3)}
        corpus.append(json.dumps(obj) + " " + json.dumps(obj, separators=(",", ":")))
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    eos = tok.token_to_id("<|endoftext|>")
    cfg = transformers.LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=64,
                                   intermediate_size=128, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2,
                                   max_position_embeddings=1024, bos_token_id=eos,
                                   eos_token_id=eos)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    model.save_pretrained(f"{out}/model")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>",
                                   bos_token="<|endoftext|>")
    fast.chat_template = TOOL_TEMPLATE
    fast.save_pretrained(f"{out}/model")
    print("made", f"{out}/model", "vocab", tok.get_vocab_size())


def check(base):
    import enum
    import typing

    import jsonschema
    import openai
    import pydantic
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused")
    failures = []
    total = 0
    lengths, finishes = [], {}
    messages = [{"role": "user", "content": "Answer in JSON."}]
    for name, schema in SCHEMAS.items():
        jsonschema.Draft202012Validator.check_schema(schema)
        validator = jsonschema.Draft202012Validator(schema)
        for seed in (1, 2):
            r = client.chat.completions.create(
                model="model", messages=messages, n=10, temperature=1.0, max_tokens=400, seed=seed,
                response_format={"type": "json_schema",
                                 "json_schema": {"name": name, "schema": schema, "strict": True}})
            for c in r.choices:
                total += 1
                text = c.message.content
                lengths.append(len(text))
                finishes[c.finish_reason] = finishes.get(c.finish_reason, 0) + 1
                if c.finish_reason != "stop":
                    failures.append(f"{name}: finish_reason {c.finish_reason}: {text!r}")
                try:
                    validator.validate(json.loads(text))
                except Exception as e:  # noqa: BLE001 - any parse or validation error is a failure
                    failures.append(f"{name}: {type(e).__name__}: {str(e)[:120]}: {text!r}")
    r = client.chat.completions.create(model="model", messages=messages, n=10, temperature=1.0,
                                       max_tokens=300, seed=3, response_format={"type": "json_object"})
    objects = 0
    for c in r.choices:
        try:
            if isinstance(json.loads(c.message.content), dict):
                objects += 1
        except ValueError as e:
            failures.append(f"json_object: {e}: {c.message.content!r}")
    if objects != 10:
        failures.append(f"json_object: {objects} of 10 outputs are objects")

    class Color(str, enum.Enum):
        red = "red"
        blue = "blue"

    class Part(pydantic.BaseModel):
        name: str
        count: int

    class Report(pydantic.BaseModel):
        title: str
        color: Color
        parts: typing.List[Part]
        note: typing.Optional[str]
        score: float

    parsed = 0
    for seed in range(5):
        p = client.chat.completions.parse(model="model", messages=messages, response_format=Report,
                                          temperature=1.0, max_tokens=400, seed=seed)
        if isinstance(p.choices[0].message.parsed, Report):
            parsed += 1
    if parsed != 5:
        failures.append(f"parse: {parsed} of 5 parsed into the pydantic model")
    try:
        client.chat.completions.create(
            model="model", messages=messages, max_tokens=20,
            response_format={"type": "json_schema", "json_schema": {
                "name": "zip", "schema": {"type": "object", "properties": {
                    "zip": {"type": "string", "pattern": "^[0-9]{5}$"}}}}})
        failures.append("a pattern schema was accepted")
    except openai.BadRequestError as e:
        if e.body.get("param") != "response_format" or "pattern" not in e.body.get("message", ""):
            failures.append(f"pattern schema: unexpected error {e.body}")
    tool_summary = check_tools(client, base, failures)
    print(tool_summary)
    print(f"{total} schema-constrained samples over {len(SCHEMAS)} schemas, finish reasons "
          f"{finishes}, mean length {sum(lengths) / len(lengths):.0f} characters; json_object "
          f"{objects}/10; pydantic parse {parsed}/5")
    for f in failures[:20]:
        print("FAIL", f)
    if failures:
        sys.exit(1)
    print("all structured-output checks passed")


TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
            "required": ["city", "unit"], "additionalProperties": False}}},
    {"type": "function", "function": {
        "name": "get_time", "parameters": {"type": "object", "properties": {
            "zone": {"type": "string", "maxLength": 6}}, "required": ["zone"],
            "additionalProperties": False}}},
]


def check_tools(client, base, failures):
    import jsonschema
    import requests
    params = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]

    def calls_of(choice, what):
        if choice.finish_reason != "tool_calls" or not choice.message.tool_calls:
            failures.append(f"{what}: no tool call ({choice.finish_reason}): {choice.message}")
            return []
        for call in choice.message.tool_calls:
            try:
                jsonschema.validate(json.loads(call.function.arguments), params[call.function.name])
            except Exception as e:  # noqa: BLE001
                failures.append(f"{what}: {call.function.name} {call.function.arguments!r}: {e}")
        return choice.message.tool_calls

    r = client.chat.completions.create(model="model", messages=messages, tools=TOOLS,
                                       tool_choice="required", n=10, temperature=1.0,
                                       max_tokens=300, seed=5)
    n_calls = sum(len(calls_of(c, "required")) for c in r.choices)
    r = client.chat.completions.create(
        model="model", messages=messages, tools=TOOLS, temperature=1.0, max_tokens=300, n=5,
        seed=6, tool_choice={"type": "function", "function": {"name": "get_time"}})
    for c in r.choices:
        if any(call.function.name != "get_time" for call in calls_of(c, "named")):
            failures.append(f"named: another function was called: {c.message.tool_calls}")
    r = client.chat.completions.create(model="model", messages=messages, tools=TOOLS,
                                       tool_choice="required", parallel_tool_calls=False, n=5,
                                       temperature=1.0, max_tokens=300, seed=7)
    for c in r.choices:
        if len(calls_of(c, "single")) != 1:
            failures.append(f"parallel_tool_calls false: {len(c.message.tool_calls or [])} calls")
    # Streamed: the calls come in a delta, the stream ends with finish_reason tool_calls.
    streamed, finish = [], None
    for chunk in client.chat.completions.create(model="model", messages=messages, tools=TOOLS,
                                                tool_choice="required", temperature=1.0,
                                                max_tokens=300, seed=8, stream=True):
        for ch in chunk.choices:
            streamed += ch.delta.tool_calls or []
            finish = ch.finish_reason or finish
    if not streamed or finish != "tool_calls":
        failures.append(f"stream: {len(streamed)} tool call deltas, finish {finish}")
    # tool_choice auto with an answer that is no call: the text still streams token by token
    # and equals the non-streamed answer.
    kw = dict(model="model", messages=messages, tools=TOOLS, temperature=0, max_tokens=12,
              extra_body={"ignore_eos": True})
    whole = client.chat.completions.create(**kw).choices[0].message
    pieces = [ch.delta.content for chunk in client.chat.completions.create(stream=True, **kw)
              for ch in chunk.choices if ch.delta.content]
    if whole.tool_calls is None and (len(pieces) < 2 or "".join(pieces) != whole.content):
        failures.append(f"auto stream: {len(pieces)} content deltas {pieces!r} for {whole.content!r}")
    # Two turns: the assistant's call and the tool's result go back to the model.
    first = client.chat.completions.create(model="model", messages=messages, tools=TOOLS,
                                           tool_choice="required", parallel_tool_calls=False,
                                           temperature=0, max_tokens=300)
    call = first.choices[0].message.tool_calls[0]
    turn2 = messages + [first.choices[0].message.model_dump(exclude_none=True),
                        {"role": "tool", "tool_call_id": call.id, "content": "21 degrees"}]
    second = client.chat.completions.create(model="model", messages=turn2, tools=TOOLS,
                                            tool_choice="none", max_tokens=8, temperature=0)
    if second.choices[0].message.tool_calls or second.choices[0].message.content is None:
        failures.append(f"second turn: {second.choices[0].message}")
    ids = requests.post(f"{base}/tokenize", json={"messages": turn2, "tools": TOOLS}).json()["tokens"]
    rendered = requests.post(f"{base}/detokenize", json={"tokens": ids}).json()["prompt"]
    want_call = f'<tool_call>\n{{"name": "{call.function.name}", "arguments": '
    for piece in (want_call, "<tool_response>\n21 degrees\n</tool_response>", '"get_time"'):
        if piece not in rendered:
            failures.append(f"second turn: {piece!r} not in the rendered prompt:\n{rendered}")
    if second.usage.prompt_tokens != len(ids):
        failures.append(f"second turn: {second.usage.prompt_tokens} prompt tokens, /tokenize {len(ids)}")
    return (f"tools: {n_calls} calls from 10 required samples; named, single, streamed and "
            f"two-turn checks done; an auto answer without calls streamed in {len(pieces)} deltas")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "make":
        make(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "check":
        check(sys.argv[2])
    else:
        sys.exit(__doc__)
