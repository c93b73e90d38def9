"""Reference DPO runs for tests/reference/dpo_test.cpp, computed with trl (and transformers).

  dpo_reference.py make OUT_DIR
      OUT_DIR/model/: a tiny random Llama (fp32) saved by transformers with a byte-level BPE
      tokenizer trained here (eos <|im_end|>, pad <|endoftext|>) and a ChatML chat template.
      Preference files of 8 pairs each, in trl's formats: standard.jsonl (prompt / chosen /
      rejected strings), conversational.jsonl (message lists, one row with a system message),
      implicit.jsonl (conversational chosen / rejected only; the prompt is their shared prefix).

  dpo_reference.py train JOBS_JSON
      JOBS_JSON is a list of {"model", "data", "loss_type", "beta", "label_smoothing",
      "simpo_gamma", "rpo_alpha", "steps", "lr", "max_length"}. Each job trains a fresh copy of the
      model for `steps` AdamW steps (constant lr, betas 0.9/0.95, eps 1e-8, no weight decay, no
      clipping, fp32) with every pair of the file in each step's batch. DPO losses run trl's
      DPOTrainer (reference: a frozen copy of the initial model, computed online each step;
      rpo_alpha as loss_type ["<type>", "sft"] with weights [1, rpo_alpha]); simpo runs trl's
      CPOTrainer.cpo_loss / get_batch_logps (loss_type "simpo", length-normalised log-probs) on
      DPOTrainer's tokenization, with rpo_alpha as CPO's NLL weight. Prints a JSON list (one per
      job) of lists (one per step) of {"loss", "rewards/chosen", ...}: the unrounded values
      computed on the step's batch before its update.

  dpo_reference.py suite MAKE_DIR OUT_DIR
      The jobs of suite_jobs() (what dpo_test.cpp runs in Reef) on MAKE_DIR's model and files:
      OUT_DIR/train.json holds {"NAME": [per-step records]}, OUT_DIR/logps_standard.json and
      OUT_DIR/logps_conversational.json the base model's log-probs as `logps` prints them.

  dpo_reference.py logps MODEL DATA [bf16]
      The summed completion log-probs of every pair of DATA under MODEL, tokenized by
      DPOTrainer (with bf16: the forward under CPU bf16 autocast, as trl runs the reference with
      bf16=True): prints {"chosen": [...], "rejected": [...]} in file order.
"""
import json
import os
import random
import sys
import types
import warnings

os.environ.setdefault("TQDM_DISABLE", "1")
warnings.filterwarnings("ignore")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
from datasets import Dataset  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast  # noqa: E402

transformers.utils.logging.disable_progress_bar()
transformers.utils.logging.set_verbosity_error()

CHATML = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

WORDS = ["apple", "river", "stone", "light", "seven", "green", "quiet", "north", "table", "cloud",
         "small", "red", "blue", "dog", "cat", "runs", "sleeps", "the", "a", "is", "what", "how"]


def sentence(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + rng.choice([".", "?", "!"])


def make(out_dir):
    rng = random.Random(11)
    standard, conversational, implicit = [], [], []
    for i in range(8):
        q = sentence(rng, rng.randint(2, 6))
        c, r = sentence(rng, rng.randint(1, 6)), sentence(rng, rng.randint(1, 6))
        standard.append({"prompt": q + "\nAnswer:", "chosen": " " + c, "rejected": " " + r})
        prompt = [{"role": "user", "content": q}]
        if i == 3:
            prompt.insert(0, {"role": "system", "content": sentence(rng, 3)})
        conversational.append({"prompt": prompt,
                               "chosen": [{"role": "assistant", "content": c}],
                               "rejected": [{"role": "assistant", "content": r}]})
        implicit.append({"chosen": prompt + [{"role": "assistant", "content": c}],
                         "rejected": prompt + [{"role": "assistant", "content": r}]})
    for name, rows in (("standard", standard), ("conversational", conversational),
                       ("implicit", implicit)):
        with open(os.path.join(out_dir, f"{name}.jsonl"), "w") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [" ".join(WORDS)] * 4 + [row["prompt"] + row["chosen"] + row["rejected"]
                                      for row in standard]
    tok.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=300, special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    model_dir = os.path.join(out_dir, "model")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>")
    fast.chat_template = CHATML
    fast.save_pretrained(model_dir)

    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=len(fast), hidden_size=32, intermediate_size=48,
                                   num_hidden_layers=2, num_attention_heads=4,
                                   num_key_value_heads=2, max_position_embeddings=256,
                                   rms_norm_eps=1e-6, tie_word_embeddings=False,
                                   eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id,
                                   bos_token_id=None)
    model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.float32)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)  # larger than the default so the log-probs differ visibly per pair
    model.save_pretrained(model_dir, safe_serialization=True)


def load_dataset(path):
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return Dataset.from_list(rows)


def dpo_args(job, loss_type, weights):
    from trl import DPOConfig
    return DPOConfig(
        output_dir=job.get("out", "/tmp/reef-dpo-reference"), per_device_train_batch_size=8,
        max_steps=job["steps"], learning_rate=job["lr"], lr_scheduler_type="constant",
        warmup_steps=0, weight_decay=0.0, adam_beta1=0.9, adam_beta2=0.95, adam_epsilon=1e-8,
        max_grad_norm=0.0, optim="adamw_torch", bf16=False, fp16=False, use_cpu=True,
        gradient_checkpointing=False, logging_steps=1, report_to="none", save_strategy="no",
        seed=1, data_seed=1, loss_type=loss_type, loss_weights=weights, beta=job["beta"],
        label_smoothing=job.get("label_smoothing", 0.0), max_length=job.get("max_length", 1024),
        dataloader_drop_last=False, disable_dropout=True)


def trainer_for(job, loss_type="sigmoid", weights=None):
    from trl import DPOTrainer
    tok = AutoTokenizer.from_pretrained(job["model"])
    model = AutoModelForCausalLM.from_pretrained(job["model"], torch_dtype=torch.float32)
    return DPOTrainer(model=model, args=dpo_args(job, loss_type, weights), processing_class=tok,
                      train_dataset=load_dataset(job["data"]))


METRICS = ["rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
           "logps/chosen", "logps/rejected"]


def run_dpo(job):
    from trl import DPOTrainer
    loss_type, weights = [job["loss_type"]], None
    if job.get("rpo_alpha", 0) > 0:
        loss_type, weights = [job["loss_type"], "sft"], [1.0, job["rpo_alpha"]]
    records = []

    class Recording(DPOTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            rec = {"loss": loss.item()}
            for k in METRICS:
                rec[k] = self._metrics["train"][k][-1]
            records.append(rec)
            return loss

    tok = AutoTokenizer.from_pretrained(job["model"])
    model = AutoModelForCausalLM.from_pretrained(job["model"], torch_dtype=torch.float32)
    trainer = Recording(model=model, args=dpo_args(job, loss_type, weights), processing_class=tok,
                        train_dataset=load_dataset(job["data"]))
    trainer.train()
    return records


def padded_batch(trainer):
    ds = trainer.train_dataset
    return trainer.data_collator([ds[i] for i in range(len(ds))])


def run_simpo(job):
    from trl.experimental.cpo import CPOTrainer
    trainer = trainer_for(job)
    model = trainer.model
    model.train()
    batch = padded_batch(trainer)
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    n = labels.size(0) // 2
    fake = types.SimpleNamespace(alpha=0.0, beta=job["beta"], simpo_gamma=job["simpo_gamma"],
                                 loss_type="simpo", label_smoothing=job.get("label_smoothing", 0.0),
                                 accelerator=types.SimpleNamespace(device="cpu"))
    opt = torch.optim.AdamW(model.parameters(), lr=job["lr"], betas=(0.9, 0.95), eps=1e-8,
                            weight_decay=0.0)
    records = []
    for _ in range(job["steps"]):
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        logps = CPOTrainer.get_batch_logps(logits, labels, average_log_prob=True)
        chosen, rejected = logps[:n], logps[n:]
        losses, cr, rr = CPOTrainer.cpo_loss(fake, chosen, rejected)
        loss = losses.mean()
        if job.get("rpo_alpha", 0) > 0:  # CPO's NLL term: mean CE over the chosen targets
            nll = F.cross_entropy(logits[:n, :-1].reshape(-1, logits.size(-1)),
                                  labels[:n, 1:].reshape(-1), ignore_index=-100)
            loss = loss + job["rpo_alpha"] * nll
        records.append({"loss": loss.item(), "rewards/chosen": cr.mean().item(),
                        "rewards/rejected": rr.mean().item(),
                        "rewards/accuracies": (cr > rr).float().mean().item(),
                        "rewards/margins": (cr - rr).mean().item(),
                        "logps/chosen": chosen.mean().item(),
                        "logps/rejected": rejected.mean().item()})
        opt.zero_grad()
        loss.backward()
        opt.step()
    return records


def logps(model_dir, data, bf16=False):
    trainer = trainer_for({"model": model_dir, "data": data, "steps": 1, "lr": 1e-3, "beta": 0.1})
    model = trainer.model
    model.eval()
    batch = padded_batch(trainer)
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logits = logits.float()
    from trl.experimental.cpo import CPOTrainer
    sums = CPOTrainer.get_batch_logps(logits, labels, average_log_prob=False)
    n = sums.size(0) // 2
    return {"chosen": sums[:n].tolist(), "rejected": sums[n:].tolist()}


def suite_jobs(make_dir):
    """Name -> job; the names are what dpo_test.cpp asks for."""
    jobs = {}
    for data in ("standard", "conversational"):
        for name, extra in (("sigmoid", {}), ("ipo", {}), ("hinge", {}),
                            ("robust", {"label_smoothing": 0.1}),
                            ("simpo", {"beta": 2.0, "simpo_gamma": 0.5}),
                            ("sigmoid_rpo", {"rpo_alpha": 0.5})):
            job = {"model": os.path.join(make_dir, "model"),
                   "data": os.path.join(make_dir, f"{data}.jsonl"),
                   "loss_type": name.split("_")[0], "beta": 0.1, "steps": 5, "lr": 0.01}
            job.update(extra)
            jobs[f"{data}_{name}"] = job
    jobs["implicit_sigmoid"] = dict(jobs["conversational_sigmoid"],
                                    data=os.path.join(make_dir, "implicit.jsonl"))
    return jobs


def suite(make_dir, out_dir):
    results = {}
    for name, job in suite_jobs(make_dir).items():
        results[name] = run_simpo(job) if job["loss_type"] == "simpo" else run_dpo(job)
    with open(os.path.join(out_dir, "train.json"), "w") as f:
        json.dump(results, f)
    for data in ("standard", "conversational"):
        with open(os.path.join(out_dir, f"logps_{data}.json"), "w") as f:
            json.dump(logps(os.path.join(make_dir, "model"),
                            os.path.join(make_dir, f"{data}.jsonl")), f)


def main():
    cmd = sys.argv[1]
    if cmd == "make":
        make(sys.argv[2])
    elif cmd == "train":
        with open(sys.argv[2]) as f:
            jobs = json.load(f)
        out = [run_simpo(j) if j["loss_type"] == "simpo" else run_dpo(j) for j in jobs]
        print(json.dumps(out))
    elif cmd == "suite":
        suite(sys.argv[2], sys.argv[3])
    elif cmd == "logps":
        print(json.dumps(logps(sys.argv[2], sys.argv[3], bf16=sys.argv[4:] == ["bf16"])))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
