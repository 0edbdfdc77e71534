"""Reference side of bench/train-step.ts: one VQA training step of the original VILBertForVLTasks.

Imports vilbert/vilbert.py from the checkout named by VILBERT_REFERENCE_DIR (modules it
imports but never uses are stubbed), builds bert_base_6layer_6conect with task tokens and
random weights (torch.manual_seed(0)) in train mode, and answers commands on stdin:
"step" runs forward, the VL-classifier loss of vilbert/task_utils.py ForwardModelsTrain
(BCEWithLogitsLoss(reduction="mean") * target.size(1)), backward, one AdamW step and
model.zero_grad(), and prints the total milliseconds, then one line with the milliseconds
of each phase (forward+loss, backward, optimizer step, zero_grad); "rss" prints the peak
resident MiB.

The optimiser is train_tasks.py's: AdamW(optimizer_grouped_parameters, lr=base_lr,
correct_bias=False) with one group per parameter (lr 1e-4 for 'vil_' names, base_lr
otherwise; weight decay 0.01 except bias / LayerNorm). train_tasks.py imports AdamW from
pytorch_transformers 1.0, which the reference repository does not ship; AdamW below is
that class's step() line for line, in today's argument order (add_(t, alpha=...) for the
deprecated add_(alpha, t)).
"""
import math
import os
import resource
import sys
import time

import torch
from torch.optim import Optimizer

from reference_stubs import stub_modules


class AdamW(Optimizer):
    """pytorch_transformers.optimization.AdamW (1.0.0)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0, correct_bias=True):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, correct_bias=correct_bias)
        super().__init__(params, defaults)

    def step(self, closure=None):
        loss = None
        if closure is not None:
            loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.data
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p.data)
                    state["exp_avg_sq"] = torch.zeros_like(p.data)
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                beta1, beta2 = group["betas"]
                state["step"] += 1
                exp_avg.mul_(beta1).add_(grad, alpha=1.0 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
                denom = exp_avg_sq.sqrt().add_(group["eps"])
                step_size = group["lr"]
                if group["correct_bias"]:
                    bias_correction1 = 1.0 - beta1 ** state["step"]
                    bias_correction2 = 1.0 - beta2 ** state["step"]
                    step_size = step_size * math.sqrt(bias_correction2) / bias_correction1
                p.data.addcdiv_(exp_avg, denom, value=-step_size)
                if group["weight_decay"] > 0.0:
                    p.data.add_(p.data, alpha=-group["lr"] * group["weight_decay"])
        return loss


NO_DECAY = ["bias", "LayerNorm.bias", "LayerNorm.weight"]


def grouped_parameters(model, base_lr):
    """train_tasks.py's optimizer_grouped_parameters (no --vision_scratch)."""
    groups = []
    for key, value in dict(model.named_parameters()).items():
        if value.requires_grad:
            lr = 1e-4 if "vil_" in key else base_lr
            decay = 0.0 if any(nd in key for nd in NO_DECAY) else 0.01
            groups.append({"params": [value], "lr": lr, "weight_decay": decay})
    return groups


def build_model(reference):
    sys.path.insert(0, reference)
    stub_modules()
    from vilbert.vilbert import BertConfig, VILBertForVLTasks

    config = BertConfig.from_json_file(os.path.join(reference, "config", "bert_base_6layer_6conect.json"))
    config.v_target_size = 1601
    config.visual_target = 0
    config.task_specific_tokens = True
    return VILBertForVLTasks(config, num_labels=3129, default_gpu=False)


def main():
    threads, batch, text_len, regions = (int(a) for a in sys.argv[1:5])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model(os.environ["VILBERT_REFERENCE_DIR"])
    model.train()
    base_lr = 4e-5
    optimizer = AdamW(grouped_parameters(model, base_lr), lr=base_lr, correct_bias=False)
    loss_fn = torch.nn.BCEWithLogitsLoss(reduction="mean")

    features = torch.randn(batch, regions, 2048)
    spatials = torch.rand(batch, regions, 5)
    image_mask = torch.ones(batch, regions, dtype=torch.long)
    question = torch.randint(4, 30000, (batch, text_len))
    target = (torch.rand(batch, 3129) > 0.999).float()
    input_mask = torch.ones(batch, text_len, dtype=torch.long)
    segment_ids = torch.zeros(batch, text_len, dtype=torch.long)
    co_attention_mask = torch.zeros(batch, regions, text_len)

    def step():
        t0 = time.perf_counter()
        task_tokens = question.new().resize_(question.size(0), 1).fill_(1)
        vil_prediction = model(question, features, spatials, segment_ids, input_mask, image_mask, co_attention_mask, task_tokens)[0]
        loss = loss_fn(vil_prediction, target).mean() * target.size(1)
        float(loss)
        t1 = time.perf_counter()
        loss.backward()
        del loss, vil_prediction
        t2 = time.perf_counter()
        optimizer.step()
        t3 = time.perf_counter()
        model.zero_grad()
        t4 = time.perf_counter()
        return [(b - a) * 1000 for a, b in ((t0, t1), (t1, t2), (t2, t3), (t3, t4))]

    print("ready", torch.__version__, torch.get_num_threads(), f"{len(optimizer.param_groups)} groups", flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "step":
            phases = step()
            print(f"{sum(phases):.3f}", flush=True)
            print(" ".join(f"{p:.3f}" for p in phases), flush=True)
        elif command == "rss":
            print(f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}", flush=True)
        else:
            break


if __name__ == "__main__":
    main()
