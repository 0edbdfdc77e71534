# Learning rates of train_tasks.py's --lr_scheduler automatic, produced by RUNNING torch's
# ReduceLROnPlateau built as train_tasks.py (f22b84a, lines 441-443) builds it:
#   ReduceLROnPlateau(optimizer, mode="max", factor=0.2, patience=1, cooldown=1, threshold=0.001)
# and stepped once per epoch with a mean validation score. (The reference itself crashes at
# its first epoch end with this scheduler; the scheduler's own behaviour is what is pinned.)
# Two parameter groups with train_tasks.py's lrs (2e-5 for BERT weights, 1e-4 for vil_
# heads); torch.optim.SGD, whose step() changes no lr. Usage (Debian's python3-torch):
#   /usr/bin/python3 tools/reference/plateau_vectors.py > test/fixtures/train/lr_plateau_reference.json
import json

import torch
from torch.optim.lr_scheduler import ReduceLROnPlateau

GROUP_LRS = [2e-5, 1e-4]
# Rises, a plateau, improvements under the 0.1% threshold, a fall, and a long stagnation that
# reaches torch's eps (1e-8): a reduction smaller than that is not applied.
SCORES = [10.0, 20.0, 20.0, 20.0, 20.01, 20.015, 25.0, 24.0, 24.0, 24.0, 24.0, 30.0, 30.0]
SCORES += [29.0] * 16


def main():
    weights = [torch.nn.Parameter(torch.zeros(1)) for _ in GROUP_LRS]
    optimizer = torch.optim.SGD([{"params": [w], "lr": lr} for w, lr in zip(weights, GROUP_LRS)], lr=GROUP_LRS[0])
    scheduler = ReduceLROnPlateau(optimizer, mode="max", factor=0.2, patience=1, cooldown=1, threshold=0.001)
    epochs = []
    for score in SCORES:
        optimizer.step()
        scheduler.step(score)
        epochs.append({"score": score, "lrs": [group["lr"] for group in optimizer.param_groups]})
    json.dump({"torch": torch.__version__, "group_lrs": GROUP_LRS, "eps": scheduler.eps, "epochs": epochs}, fp=__import__("sys").stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
