# Learning rates of train_tasks.py's --lr_scheduler cosine and cosine_warm, produced by
# RUNNING the scheduler classes the reference uses, driven at the points where its loop
# steps them. Usage (Debian's python3-torch):
#   /usr/bin/python3 tools/reference/lr_schedule_vectors.py > test/fixtures/train/lr_schedules_reference.json
#
# What is run and what is transcribed:
# * RUN: torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=median_num_iter *
#   num_train_epochs) and CosineAnnealingWarmRestarts(optimizer, T_0=median_num_iter *
#   num_train_epochs), exactly as train_tasks.py (f22b84a, lines 444-451) constructs them,
#   from the installed torch (its version is written into the output).
# * TRANSCRIBED (pytorch_transformers is not installable here): the warm-up scheduler,
#   pytorch_transformers.optimization.WarmupConstantSchedule(optimizer, warmup_steps), is a
#   torch LambdaLR whose lambda is `step / max(1.0, warmup_steps) if step < warmup_steps
#   else 1.0`; it is used as such when pytorch_transformers cannot be imported (the output
#   says which). The LambdaLR machinery itself is torch's, run.
# * TRANSCRIBED: the driving loop (train_tasks.py lines 351-354, 430-451, 545-573): warmpu_steps
#   = warmup_proportion * num_train_optimization_steps; after the first task's optimizer step
#   of an iteration, `if global_step < warmpu_steps: warmup_scheduler.step()`, then
#   global_step += 1; at the end of every iteration `if "cosine" in lr_scheduler and
#   global_step > warmpu_steps: lr_scheduler.step()`. One task, gradient_accumulation_steps 1,
#   two parameter groups as train_tasks.py makes them (lr 2e-5 for BERT weights, 1e-4 for
#   vil_ heads). The optimizer is torch.optim.SGD: schedulers only read and write
#   param_groups' lr / initial_lr, so the optimizer class does not matter (its step() is
#   called where the loop calls it but changes nothing: there are no gradients).
# * "beyond": after a run's last iteration, the same second scheduler keeps being stepped
#   (as the loop would if it went on) for 2.5 periods, to pin the formulas through T_max and
#   cosine_warm's restarts. train_tasks.py itself never gets there: its cosine steps stop
#   about warmpu_steps short of T_max.
import json
import math
import sys

import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, CosineAnnealingWarmRestarts, LambdaLR

try:
    from pytorch_transformers.optimization import WarmupConstantSchedule  # noqa: F401

    WARMUP_SOURCE = "pytorch_transformers.optimization.WarmupConstantSchedule (run)"
except ImportError:
    WarmupConstantSchedule = None
    WARMUP_SOURCE = "transcribed WarmupConstantSchedule lambda in a torch LambdaLR (pytorch_transformers not installed)"

GROUP_LRS = [2e-5, 1e-4]


def warmup_scheduler(optimizer, warmup_steps):
    if WarmupConstantSchedule is not None:
        return WarmupConstantSchedule(optimizer, warmup_steps=warmup_steps)
    return LambdaLR(optimizer, lambda step: step / max(1.0, warmup_steps) if step < warmup_steps else 1.0)


def lrs(optimizer):
    return [group["lr"] for group in optimizer.param_groups]


def scenario(kind, median_num_iter, num_train_epochs, warmup_proportion, beyond_periods=2.5):
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in GROUP_LRS]
    optimizer = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, GROUP_LRS)], lr=GROUP_LRS[0])
    num_train_optimization_steps = median_num_iter * num_train_epochs // 1
    warmpu_steps = warmup_proportion * num_train_optimization_steps
    warmup = warmup_scheduler(optimizer, warmpu_steps)
    after_warmup_constructed = lrs(optimizer)
    period = median_num_iter * num_train_epochs
    if kind == "cosine":
        second = CosineAnnealingLR(optimizer, T_max=period)
    else:
        second = CosineAnnealingWarmRestarts(optimizer, T_0=period)
    out = {
        "kind": kind, "median_num_iter": median_num_iter, "num_train_epochs": num_train_epochs,
        "warmup_proportion": warmup_proportion, "warmup_steps": warmpu_steps, "period": period,
        "after_construction": {"warmup": after_warmup_constructed, "both": lrs(optimizer)},
        "iterations": [],
    }
    global_step = 0
    for _epoch in range(num_train_epochs):
        for _step in range(median_num_iter):
            used = lrs(optimizer)  # what optimizer.step() of the iteration's task uses
            optimizer.step()  # no gradients: changes nothing, but keeps torch's call-order check quiet
            if global_step < warmpu_steps:
                warmup.step()
            global_step += 1
            after_task = lrs(optimizer)
            second_stepped = "cosine" in kind and global_step > warmpu_steps
            if second_stepped:
                second.step()
            out["iterations"].append({"used": used, "after_task": after_task, "second_stepped": second_stepped, "end": lrs(optimizer)})
    out["second_steps_in_run"] = second.last_epoch
    beyond = []
    for _ in range(int(beyond_periods * period) - second.last_epoch):
        second.step()
        beyond.append({"second_steps": second.last_epoch, "lr": lrs(optimizer)})
    out["beyond"] = beyond
    return out


def main():
    scenarios = []
    for kind in ("cosine", "cosine_warm"):
        scenarios.append(scenario(kind, 10, 2, 0.1))  # T = 20, W = 2.0
        scenarios.append(scenario(kind, 7, 3, 0.12))  # T = 21, W = 2.52 (fractional)
        scenarios.append(scenario(kind, 4, 2, 0.0))  # no warm-up
    json.dump({
        "generator": "tools/reference/lr_schedule_vectors.py",
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "warmup_source": WARMUP_SOURCE,
        "group_lrs": GROUP_LRS,
        "scenarios": scenarios,
    }, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
