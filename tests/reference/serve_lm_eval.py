"""lm-evaluation-harness's own OpenAI clients against a running `reef serve` (serve_lm_eval_test.cpp).

  serve_lm_eval.py BASE_URL MODEL_NAME TASKS_DIR OUT_JSON

Runs lm_eval.simple_evaluate three times, as a user evaluating a served model would:
  completions: `local-completions` with its default settings (tokenized requests sent as a batch
      of token lists, tokenizer auto-detected: the server's /tokenizer_info and /tokenize) on
      tiny_mc, tiny_mc_self (multiple choice: echo + logprobs) and tiny_gen (generate_until);
  rolling: `local-completions` with max_length=50 on tiny_ppl (loglikelihood_rolling over windows
      of the same size as `reef eval --max-length 48`);
  chat: `local-chat-completions` with apply_chat_template on tiny_gen (messages rendered by the
      server's chat template).
Writes {run: {task: {"metrics": results[task], "samples": [{doc_id, arguments, resps,
filtered_resps}]}}} to OUT_JSON, and the model's tokenizer backend per run.
"""
import json
import os
import sys

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from eval_reference import jsonable  # noqa: E402 - the same sample logging as the local run


def main(base, name, tasks_dir, out_path):
    import lm_eval
    from lm_eval.api.registry import get_model
    from lm_eval.tasks import TaskManager

    os.chdir(tasks_dir)  # the task YAMLs' data paths are relative to it
    tm = TaskManager(include_path=tasks_dir)
    runs = {
        "completions": ("local-completions", {"base_url": f"{base}/v1/completions"},
                        ["tiny_mc", "tiny_mc_self", "tiny_gen"], False),
        "rolling": ("local-completions",
                    {"base_url": f"{base}/v1/completions", "max_length": 50}, ["tiny_ppl"], False),
        "chat": ("local-chat-completions", {"base_url": f"{base}/v1/chat/completions"},
                 ["tiny_gen"], True),
    }
    out = {}
    for run, (model_type, args, tasks, chat) in runs.items():
        lm = get_model(model_type)(model=name, **args)
        res = lm_eval.simple_evaluate(model=lm, tasks=tasks, task_manager=tm, log_samples=True,
                                      apply_chat_template=chat, fewshot_random_seed=1234,
                                      random_seed=0, numpy_random_seed=0, torch_random_seed=0,
                                      bootstrap_iters=0)
        out[run] = {"tokenizer_backend": getattr(lm, "tokenizer_backend", None)}
        for task in tasks:
            samples = sorted(res["samples"][task], key=lambda s: s["doc_id"])
            out[run][task] = {
                "metrics": jsonable(res["results"][task]),
                "samples": [{"doc_id": s["doc_id"], "arguments": jsonable(s["arguments"]),
                             "resps": jsonable(s["resps"]),
                             "filtered_resps": jsonable(s["filtered_resps"])} for s in samples],
            }
        print(f"{run} ({model_type}): " +
              ", ".join(f"{t}: {out[run][t]['metrics']}" for t in tasks))
    with open(out_path, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    main(*sys.argv[1:])
