"""Reference side of bench/train-iteration.ts: one multi-task training iteration.

Builds the original VILBertForVLTasks (bert_base_6layer_6conect, task tokens, random weights
from torch.manual_seed(0), train mode) from the checkout named by VILBERT_REFERENCE_DIR and
runs, per task, the body of train_tasks.py's loop: the reference's own
vilbert/task_utils.py ForwardModelsTrain (input reshaping per `process`, the task token, the
model, the loss and batch score per `type`), loss * loss_scale, backward, optimizer.step(),
model.zero_grad(), float(loss) and float(score) (tbLogger.step_train's reads).

To import task_utils without its data dependencies, pytorch_transformers' tokenizer and
vilbert.datasets are stubbed (never used by ForwardModelsTrain), and Tensor.cuda() returns
the tensor itself (ForwardModelsTrain and compute_score_with_logits move batches to the GPU;
this runs on the CPU). Each task's loader is a stand-in that hands out one fixed synthetic
batch with the task's shapes (argv[3]: JSON from the TypeScript side; argv[4]: base_lr), in the tuple order of
the reference datasets. The optimiser is train_step.py's AdamW (pytorch_transformers 1.0's,
which the reference repository does not ship) with train_tasks.py's parameter groups.

Commands on stdin: "iter" prints the total milliseconds of one iteration, then a JSON list,
per task, of [forward+loss, backward, optimizer step, zero_grad] milliseconds; "rss" prints
the peak resident MiB.
"""
import json
import os
import resource
import sys
import time
import types

import torch

from reference_stubs import stub_modules
from train_step import AdamW, build_model, grouped_parameters


def import_forward_models_train(reference):
    sys.path.insert(0, reference)
    stub_modules()
    tokenization = types.ModuleType("pytorch_transformers.tokenization_bert")
    tokenization.BertTokenizer = object
    sys.modules.setdefault("pytorch_transformers", types.ModuleType("pytorch_transformers"))
    sys.modules.setdefault("pytorch_transformers.tokenization_bert", tokenization)
    import vilbert  # noqa: F401  (the package itself, so that the stubs below sit inside it)

    datasets = types.ModuleType("vilbert.datasets")
    datasets.__path__ = []
    datasets.DatasetMapTrain = {}
    datasets.DatasetMapEval = {}
    reader = types.ModuleType("vilbert.datasets._image_features_reader")
    reader.ImageFeaturesH5Reader = object
    sys.modules["vilbert.datasets"] = datasets
    sys.modules["vilbert.datasets._image_features_reader"] = reader
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    from vilbert.task_utils import ForwardModelsTrain, LossMap

    return ForwardModelsTrain, LossMap


class OneBatch:
    """A task's DataLoader and its iterator (ForwardModelsTrain calls the Python 2 .next())."""

    def __init__(self, batch):
        self.batch = batch

    def __len__(self):
        return 1 << 40

    def __iter__(self):
        return self

    def next(self):
        return self.batch

    __next__ = next


def synthetic_batch(shape, b):
    """The tuple a reference dataset collates to, with the task's shapes."""
    T, R, candidates = shape["T"], shape["R"], shape["candidates"]
    lead = (b, candidates) if shape["process"] == "retrieval" else (b,)
    regions = 2 * R if shape["process"] == "nlvr" else R
    kind = shape["type"]
    if kind in ("VL-classifier", "VL-classifier-GQA", "VL-binary-classifier", "VL-tri-classifier"):
        target = torch.zeros(b, shape["labels"]).scatter_(1, torch.randint(0, shape["labels"], (b, 1)), 1)
    elif kind == "VL-logit":
        target = torch.zeros(b, dtype=torch.long)
    elif kind == "V-logit":
        target = (torch.rand(b, R, 1) > 0.9).float()
    elif kind == "V-logit-mc":
        target = (torch.rand(b, candidates, 1) > 0.75).float()
    else:
        raise ValueError(kind)
    features = torch.randn(*lead, regions, 2048)
    spatials = torch.rand(*lead, regions, 5)
    image_mask = torch.ones(*lead, regions, dtype=torch.long)
    question = torch.randint(4, 30000, (*lead, T))
    input_mask = torch.ones(*lead, T, dtype=torch.long)
    segment_ids = torch.zeros(*lead, T, dtype=torch.long)
    co_attention_mask = torch.zeros(*lead, regions, T)
    question_id = torch.arange(b)
    if kind == "V-logit-mc":
        multiple_choice_ids = torch.randint(0, R - 101, (b, candidates))
        return (features, spatials, image_mask, question, target, input_mask, segment_ids, multiple_choice_ids, co_attention_mask, question_id)
    return (features, spatials, image_mask, question, target, input_mask, segment_ids, co_attention_mask, question_id)


def main():
    threads, b = int(sys.argv[1]), int(sys.argv[2])
    shapes = json.loads(sys.argv[3])
    reference = os.environ["VILBERT_REFERENCE_DIR"]
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    ForwardModelsTrain, LossMap = import_forward_models_train(reference)
    model = build_model(reference)
    model.train()

    task_ids = [shape["key"] for shape in shapes]
    task_cfg = {shape["key"]: {"name": shape["name"], "type": shape["type"], "process": shape["process"]} for shape in shapes}
    task_losses = {shape["key"]: LossMap[shape["loss"]] for shape in shapes}
    loss_scale = {shape["key"]: shape["lossScale"] for shape in shapes}
    base_lr = float(sys.argv[4])  # min of the tasks' lr, as train_tasks.py
    optimizer = AdamW(grouped_parameters(model, base_lr), lr=base_lr, correct_bias=False)
    loaders = {shape["key"]: OneBatch(synthetic_batch(shape, b)) for shape in shapes}
    task_iter_train = {key: None for key in task_ids}
    task_count = {key: 0 for key in task_ids}

    def iteration():
        timings = []
        for task_id in task_ids:
            t0 = time.perf_counter()
            loss, score = ForwardModelsTrain(None, task_cfg, None, task_id, task_count, task_iter_train, loaders, model, task_losses)
            loss = loss * loss_scale[task_id]
            float(loss), float(score)
            t1 = time.perf_counter()
            loss.backward()
            del loss, score
            t2 = time.perf_counter()
            optimizer.step()
            t3 = time.perf_counter()
            model.zero_grad()
            t4 = time.perf_counter()
            timings.append([(y - x) * 1000 for x, y in ((t0, t1), (t1, t2), (t2, t3), (t3, t4))])
        return timings

    print("ready", torch.__version__, torch.get_num_threads(), f"{len(optimizer.param_groups)} groups", flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "iter":
            timings = iteration()
            print(f"{sum(sum(task) for task in timings):.3f}", flush=True)
            print(json.dumps(timings), flush=True)
        elif command == "rss":
            print(f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}", flush=True)
        else:
            break


if __name__ == "__main__":
    main()
