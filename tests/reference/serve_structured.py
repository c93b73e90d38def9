"""Structured output from `reef serve`, checked with `jsonschema` and the official `openai` client.

  serve_structured.py make OUT_DIR
      OUT_DIR/model/: a small random llama (transformers; context 1024) with a byte-level BPE
      tokenizer trained by `tokenizers` on JSON-like text (so tokens span several characters:
      '{"', '":', ...), saved without a chat template (the server's ChatML fallback renders).

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
    PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>",
                            bos_token="<|endoftext|>").save_pretrained(f"{out}/model")
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
    print(f"{total} schema-constrained samples over {len(SCHEMAS)} schemas, finish reasons "
          f"{finishes}, mean length {sum(lengths) / len(lengths):.0f} characters; json_object "
          f"{objects}/10; pydantic parse {parsed}/5")
    for f in failures[:20]:
        print("FAIL", f)
    if failures:
        sys.exit(1)
    print("all structured-output checks passed")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "make":
        make(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "check":
        check(sys.argv[2])
    else:
        sys.exit(__doc__)
