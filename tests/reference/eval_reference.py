"""Reference side of eval_reference_test.cpp: lm-evaluation-harness on a tiny random llama.

  eval_reference.py make OUT_DIR
      OUT_DIR/model/: a tiny random LlamaForCausalLM (transformers, float32, max_position_embeddings
      128) with a byte-level BPE tokenizer trained by `tokenizers` (bos = eos = <|endoftext|>).
      OUT_DIR/data/*.jsonl: a small multiple-choice task (test + train split), a perplexity task
      whose documents are longer than the 48-token context (several rolling windows each) and a
      generate_until task.
      OUT_DIR/tasks/*.yaml: the task configs, in lm-eval's YAML format with data paths relative
      to the tasks folder (lm-eval runs from there), which `reef eval` reads as they are.
      OUT_DIR/expected.json: {task: {"metrics": lm-eval's results[task], "samples": [{doc_id,
      contexts, resps}]}} from lm_eval.simple_evaluate with HFLM(max_length=48, batch_size=4),
      fewshot_random_seed 1234.
"""
import json
import os
import random
import sys

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

transformers.utils.logging.disable_progress_bar()

WORDS = ("the a cat dog sat ran on under mat hill red blue sun moon big small over and then "
         "home far near tree bird fish sky water").split()
MAX_LENGTH = 48


def sentence(rng, lo, hi):
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


def make_tokenizer(corpus):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    return tok


def make_model(out, corpus):
    tok = make_tokenizer(corpus)
    eos = tok.token_to_id("<|endoftext|>")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>",
                                   bos_token="<|endoftext|>")
    config = transformers.LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=32,
                                      intermediate_size=48, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2,
                                      max_position_embeddings=128, bos_token_id=eos,
                                      eos_token_id=eos, tie_word_embeddings=False)
    torch.manual_seed(7)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            else:
                p.normal_(0.0, 0.2)
    model.eval()
    model.save_pretrained(f"{out}/model")
    fast.save_pretrained(f"{out}/model")


def write_jsonl(path, docs):
    with open(path, "w") as f:
        for d in docs:
            f.write(json.dumps(d) + "\n")


def make_data(out):
    rng = random.Random(5)
    os.makedirs(f"{out}/data", exist_ok=True)

    def mc_doc():
        choices = [sentence(rng, 1, 4) for _ in range(4)]
        return {"question": sentence(rng, 3, 7), "choices": choices, "answer": rng.randint(0, 3)}

    mc_test = [mc_doc() for _ in range(20)]
    mc_train = [mc_doc() for _ in range(8)]
    ppl = [{"text": sentence(rng, 30, 90) + "\n" + sentence(rng, 5, 30)} for _ in range(6)]
    gen = [{"question": sentence(rng, 3, 6), "answer": sentence(rng, 1, 2)} for _ in range(8)]
    write_jsonl(f"{out}/data/mc_test.jsonl", mc_test)
    write_jsonl(f"{out}/data/mc_train.jsonl", mc_train)
    write_jsonl(f"{out}/data/ppl.jsonl", ppl)
    write_jsonl(f"{out}/data/gen.jsonl", gen)
    corpus = [d["question"] + " " + " ".join(d["choices"]) for d in mc_test + mc_train]
    corpus += [d["text"] for d in ppl]
    return corpus


def write_tasks(out):
    # Paths relative to the tasks folder: lm-eval (run from there) resolves them against its
    # working directory, Reef against the YAML's folder; the cache folder may be renamed.
    d = "../data"
    os.makedirs(f"{out}/tasks", exist_ok=True)
    tasks = {
        # Few-shot examples from a separate split, a description, a field-name target.
        "tiny_mc": f"""task: tiny_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {d}/mc_test.jsonl
    train: {d}/mc_train.jsonl
test_split: test
fewshot_split: train
num_fewshot: 2
output_type: multiple_choice
description: "Pick the ending.\\n\\n"
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: answer
doc_to_choice: "{{{{choices}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
""",
        # Few-shot examples from the test split itself (the eval doc is left out), a template
        # target, choices given as a list of templates' values.
        "tiny_mc_self": f"""task: tiny_mc_self
dataset_path: json
dataset_kwargs:
  data_files:
    test: {d}/mc_test.jsonl
test_split: test
fewshot_split: test
num_fewshot: 3
output_type: multiple_choice
doc_to_text: "{{{{question.strip()}}}}?"
doc_to_target: "{{{{answer}}}}"
doc_to_choice: "{{{{choices}}}}"
target_delimiter: " -> "
fewshot_delimiter: "\\n"
metric_list:
  - metric: acc
  - metric: acc_norm
""",
        "tiny_ppl": f"""task: tiny_ppl
dataset_path: json
dataset_kwargs:
  data_files:
    test: {d}/ppl.jsonl
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{{{text}}}}"
metric_list:
  - metric: word_perplexity
  - metric: byte_perplexity
  - metric: bits_per_byte
""",
        "tiny_gen": f"""task: tiny_gen
dataset_path: json
dataset_kwargs:
  data_files:
    test: {d}/gen.jsonl
test_split: test
output_type: generate_until
doc_to_text: "Q: {{{{question}}}}\\nA:"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: ["\\n", "."]
  max_gen_toks: 12
  do_sample: false
  temperature: 0.0
filter_list:
  - name: first_word
    filter:
      - function: regex
        regex_pattern: "([a-z]+)"
        group_select: 0
      - function: take_first
  - name: last_word
    filter:
      - function: regex
        regex_pattern: "([a-z]+)"
        group_select: -1
      - function: take_first
metric_list:
  - metric: exact_match
    ignore_case: true
    regexes_to_ignore: ["^ +"]
""",
    }
    for name, text in tasks.items():
        with open(f"{out}/tasks/{name}.yaml", "w") as f:
            f.write(text)
    return list(tasks)


def jsonable(x):
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    try:
        return float(x)
    except (TypeError, ValueError):
        return str(x)


def answer_some_gen_docs(out):
    # Every other generate_until document gets, as its answer, the upper-cased first word that
    # transformers' greedy decoding produces, so exact_match (ignore_case) scores some hits.
    import re
    tok = transformers.AutoTokenizer.from_pretrained(f"{out}/model")
    model = transformers.AutoModelForCausalLM.from_pretrained(f"{out}/model").eval()
    path = f"{out}/data/gen.jsonl"
    docs = [json.loads(line) for line in open(path)]
    for i, d in enumerate(docs):
        if i % 2:
            continue
        ids = tok(f"Q: {d['question']}\nA:", return_tensors="pt").input_ids
        with torch.no_grad():
            gen = model.generate(ids, max_new_tokens=12, do_sample=False)
        text = tok.decode(gen[0, ids.shape[1]:], skip_special_tokens=True)
        text = text.split("\n")[0].split(".")[0]
        words = re.findall("([a-z]+)", text)
        if words:
            d["answer"] = words[0].upper()
    write_jsonl(path, docs)


def make(out):
    out = os.path.abspath(out)
    corpus = make_data(out)
    make_model(out, corpus)
    answer_some_gen_docs(out)
    names = write_tasks(out)
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    os.chdir(f"{out}/tasks")
    lm = HFLM(pretrained=f"{out}/model", max_length=MAX_LENGTH, batch_size=4, device="cpu",
              dtype="float32")
    tm = TaskManager(include_path=f"{out}/tasks")
    res = lm_eval.simple_evaluate(model=lm, tasks=names, task_manager=tm, log_samples=True,
                                  fewshot_random_seed=1234, random_seed=0, numpy_random_seed=0,
                                  torch_random_seed=0, bootstrap_iters=0)
    expected = {}
    for name in names:
        samples = sorted(res["samples"][name], key=lambda s: s["doc_id"])
        expected[name] = {
            "metrics": jsonable(res["results"][name]),
            "samples": [{"doc_id": s["doc_id"], "arguments": jsonable(s["arguments"]),
                         "resps": jsonable(s["resps"]), "filtered_resps": jsonable(s["filtered_resps"])}
                        for s in samples],
        }
    with open(f"{out}/expected.json", "w") as f:
        json.dump(expected, f, indent=1)
    print(f"lm-eval {lm_eval.__version__ if hasattr(lm_eval, '__version__') else ''}: "
          + ", ".join(f"{n}: {expected[n]['metrics']}" for n in names))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "make":
        make(sys.argv[2])
    else:
        sys.exit(__doc__)
