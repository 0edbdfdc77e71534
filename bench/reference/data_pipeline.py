"""Reference side of bench/data-pipeline.ts: the original feature reader and VQA dataset.

Loads vilbert/datasets/_image_features_reader.py and vqa_dataset.py from
VILBERT_REFERENCE_DIR (only those two files: the package's __init__ imports
every dataset and their dependencies), on a kit whose VQA token cache exists
(so the tokenizer is never called). Commands on stdin: "reads N" (N feature
reads, cycling over the images), "batches N B" (N batches of B items through
torch's DataLoader, one process); prints the seconds taken.
"""
import importlib
import os
import sys
import time
import types

import torch
from torch.utils.data import DataLoader, Sampler


class Cycle(Sampler):
    def __init__(self, length, total):
        self.length, self.total = length, total

    def __iter__(self):
        return (i % self.length for i in range(self.total))

    def __len__(self):
        return self.total


def main():
    kit, lmdb_path = sys.argv[1:3]
    reference = os.environ["VILBERT_REFERENCE_DIR"]
    # The reader module imports h5py for a code path the LMDB stores never take.
    sys.modules.setdefault("h5py", types.ModuleType("h5py"))
    package = types.ModuleType("vilbert.datasets")
    package.__path__ = [os.path.join(reference, "vilbert", "datasets")]
    sys.modules["vilbert"] = types.ModuleType("vilbert")
    sys.modules["vilbert.datasets"] = package
    reader_module = importlib.import_module("vilbert.datasets._image_features_reader")
    vqa_module = importlib.import_module("vilbert.datasets.vqa_dataset")
    torch.set_num_threads(1)
    os.chdir(kit)
    reader = reader_module.ImageFeaturesH5Reader(lmdb_path, False)
    image_ids = [key.decode() for key in reader._image_ids]
    dataset = vqa_module.VQAClassificationDataset(
        "VQA", "datasets/VQA/", "", "trainval", reader, None, None, "bert-base-uncased", True, 0, 23, 101)
    print("ready", len(image_ids), len(dataset), flush=True)
    for line in sys.stdin:
        words = line.split()
        start = time.perf_counter()
        if words[0] == "reads":
            for i in range(int(words[1])):
                reader[image_ids[i % len(image_ids)]]
        elif words[0] == "batches":
            count, size = int(words[1]), int(words[2])
            for _ in DataLoader(dataset, batch_size=size, sampler=Cycle(len(dataset), count * size), num_workers=0):
                pass
        else:
            break
        print(f"{time.perf_counter() - start:.6f}", flush=True)


if __name__ == "__main__":
    main()
