"""Reference reward-model runs for tests/reference/rm_test.cpp, computed with trl and transformers.

  rm_reference.py make OUT_DIR
      dpo_reference.py's tiny random Llama and preference files (OUT_DIR/model, standard.jsonl,
      conversational.jsonl), plus OUT_DIR/rm_model: that model as a LlamaForSequenceClassification
      (num_labels 1, pad token <|endoftext|>) whose new score head is drawn here, and
      margin.jsonl: standard.jsonl with a "margin" per row.

  rm_reference.py suite MAKE_DIR OUT_DIR
      OUT_DIR/train.json: {"NAME": [per-step records]} for the jobs of suite_jobs(): trl's
      RewardTrainer on MAKE_DIR/rm_model for 5 AdamW steps (constant lr 0.01, betas 0.9/0.95,
      eps 1e-8, no weight decay, no clipping, fp32), every pair in each step's batch; a record
      holds loss, accuracy, margin, mean_reward computed on the step's batch before its update.
      OUT_DIR/scores_standard.json and scores_conversational.json: rm_model's scores of every
      pair, as `scores` prints them.

  rm_reference.py scores MODEL DATA
      AutoModelForSequenceClassification(MODEL) scores of each pair of DATA tokenized as
      RewardTrainer does (padded batch, transformers' last non-pad token): prints
      {"chosen": [...], "rejected": [...]} in file order.
"""
import json
import os
import sys
import warnings

os.environ.setdefault("TQDM_DISABLE", "1")
warnings.filterwarnings("ignore")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
import transformers  # noqa: E402
from datasets import Dataset  # noqa: E402
from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: E402

import dpo_reference  # noqa: E402

transformers.utils.logging.disable_progress_bar()
transformers.utils.logging.set_verbosity_error()


def make(out_dir):
    dpo_reference.make(out_dir)
    model_dir = os.path.join(out_dir, "model")
    tok = AutoTokenizer.from_pretrained(model_dir)
    torch.manual_seed(5)
    rm = AutoModelForSequenceClassification.from_pretrained(
        model_dir, num_labels=1, pad_token_id=tok.pad_token_id, torch_dtype=torch.float32)
    with torch.no_grad():
        rm.score.weight.normal_(0, 0.2)
    rm_dir = os.path.join(out_dir, "rm_model")
    rm.save_pretrained(rm_dir, safe_serialization=True)
    tok.save_pretrained(rm_dir)
    with open(os.path.join(out_dir, "standard.jsonl")) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    with open(os.path.join(out_dir, "margin.jsonl"), "w") as f:
        for i, row in enumerate(rows):
            f.write(json.dumps(dict(row, margin=0.25 * (i % 4))) + "\n")


def load_dataset(path):
    with open(path) as f:
        return Dataset.from_list([json.loads(line) for line in f if line.strip()])


def run_rm(job):
    from trl import RewardConfig, RewardTrainer
    records = []

    class Recording(RewardTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            m = self._metrics["train"]
            records.append({"loss": loss.item(), "accuracy": m["accuracy"][-1],
                            "margin": m["margin"][-1], "mean_reward": m["mean_reward"][-1]})
            return loss

    args = RewardConfig(
        output_dir="/tmp/reef-rm-reference", per_device_train_batch_size=8, max_steps=job["steps"],
        learning_rate=job["lr"], lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
        adam_beta1=0.9, adam_beta2=0.95, adam_epsilon=1e-8, max_grad_norm=0.0,
        optim="adamw_torch", bf16=False, fp16=False, use_cpu=True, logging_steps=1,
        report_to="none", save_strategy="no", seed=1, data_seed=1, disable_dropout=True,
        center_rewards_coefficient=job.get("center_rewards_coefficient"), max_length=1024,
        dataloader_drop_last=False)
    tok = AutoTokenizer.from_pretrained(job["model"])
    model = AutoModelForSequenceClassification.from_pretrained(job["model"],
                                                               torch_dtype=torch.float32)
    trainer = Recording(model=model, args=args, processing_class=tok,
                        train_dataset=load_dataset(job["data"]))
    trainer.train()
    return records


def scores(model_dir, data):
    from trl import RewardConfig, RewardTrainer
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir,
                                                               torch_dtype=torch.float32)
    args = RewardConfig(output_dir="/tmp/reef-rm-reference", use_cpu=True, report_to="none",
                        max_length=1024)
    trainer = RewardTrainer(model=model, args=args, processing_class=tok,
                            train_dataset=load_dataset(data))
    ds = trainer.train_dataset
    batch = trainer.data_collator([ds[i] for i in range(len(ds))])
    model.eval()
    with torch.no_grad():
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    s = out.squeeze(-1)
    n = s.size(0) // 2
    return {"chosen": s[:n].tolist(), "rejected": s[n:].tolist()}


def suite_jobs(make_dir):
    base = {"model": os.path.join(make_dir, "rm_model"), "steps": 5, "lr": 0.01}
    return {
        "standard": dict(base, data=os.path.join(make_dir, "standard.jsonl")),
        "conversational": dict(base, data=os.path.join(make_dir, "conversational.jsonl")),
        "margin": dict(base, data=os.path.join(make_dir, "margin.jsonl")),
        "center": dict(base, data=os.path.join(make_dir, "standard.jsonl"),
                       center_rewards_coefficient=0.05),
    }


def suite(make_dir, out_dir):
    results = {name: run_rm(job) for name, job in suite_jobs(make_dir).items()}
    with open(os.path.join(out_dir, "train.json"), "w") as f:
        json.dump(results, f)
    for data in ("standard", "conversational"):
        with open(os.path.join(out_dir, f"scores_{data}.json"), "w") as f:
            json.dump(scores(os.path.join(make_dir, "rm_model"),
                             os.path.join(make_dir, f"{data}.jsonl")), f)


def main():
    cmd = sys.argv[1]
    if cmd == "make":
        make(sys.argv[2])
    elif cmd == "suite":
        suite(sys.argv[2], sys.argv[3])
    elif cmd == "scores":
        print(json.dumps(scores(sys.argv[2], sys.argv[3])))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
