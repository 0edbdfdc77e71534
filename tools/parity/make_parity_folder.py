"""Writes a folder laid out like fixtures/parity (config.json, weights in three formats,
inputs.safetensors, forward.safetensors) from the ORIGINAL implementation, for any config.

    VILBERT_REFERENCE_DIR=/path/to/vilbert-multi-task /usr/bin/python3 tools/parity/make_parity_folder.py CONFIG.json OUT_DIR [--batch 4] [--tasks 2,9]

It imports vilbert/vilbert.py from the reference checkout (modules it imports but never
uses for a forward pass are stubbed), builds VILBertForVLTasks with task tokens exactly as
train_tasks.py does, gives every parameter O(1)-scale random values (so biases, LayerNorm
affines and attention patterns are non-trivial), and records the eval-mode outputs of every
head for each task id. `vilbert verify-parity OUT_DIR --skip pretrain,train_step,optimizer`
then compares them. Nothing of the reference is copied; it is only run.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'bench', 'reference'))
from reference_stubs import stub_modules  # noqa: E402


DTYPES = {np.dtype("float32"): "F32", np.dtype("int64"): "I64"}


def write_safetensors(path, tensors, metadata=None):
    """The safetensors layout: 8-byte header length, JSON header, then raw little-endian data."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors, key=lambda n: (-tensors[n].dtype.itemsize, n)):
        array = np.ascontiguousarray(tensors[name])
        data = array.tobytes()
        header[name] = {"dtype": DTYPES[array.dtype], "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(text)))
        out.write(text)
        for blob in blobs:
            out.write(blob)


def randomize(model, generator):
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if ("LayerNorm" in name or "logit_fc.2" in name) and name.endswith("weight"):
                parameter.copy_(1 + 0.1 * torch.randn(parameter.shape, generator=generator))
            elif parameter.dim() == 1:
                parameter.copy_(0.1 * torch.randn(parameter.shape, generator=generator))
            elif "embeddings.weight" in name and "image" not in name:
                parameter.copy_(0.5 * torch.randn(parameter.shape, generator=generator))
            else:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) / parameter.shape[1] ** 0.5)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("out")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=7)
    parser.add_argument("--regions", type=int, default=5)
    parser.add_argument("--tasks", default="2,9")
    parser.add_argument("--seed", type=int, default=4321)
    args = parser.parse_args()
    reference = os.environ["VILBERT_REFERENCE_DIR"]
    sys.path.insert(0, reference)
    stub_modules()
    from vilbert.vilbert import BertConfig, VILBertForVLTasks

    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    config = BertConfig.from_json_file(args.config)
    config.v_target_size = 1601
    config.visual_target = 0
    config.task_specific_tokens = True
    model = VILBertForVLTasks(config, num_labels=3129, default_gpu=False)
    generator = torch.Generator().manual_seed(args.seed)
    randomize(model, generator)
    model.eval()

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "config.json"), "w") as out:
        out.write(open(args.config).read())
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    write_safetensors(os.path.join(args.out, "weights_vltasks.safetensors"), {k: v.numpy() for k, v in state.items()}, {"format": "pt"})
    torch.save(state, os.path.join(args.out, "weights_vltasks.torch_zip.bin"))
    torch.save(state, os.path.join(args.out, "weights_vltasks.torch_legacy.bin"), _use_new_zipfile_serialization=False)

    B, T, R = args.batch, args.tokens, args.regions
    rng = np.random.RandomState(args.seed + 1)
    text_lengths = [T - (i % 3) for i in range(B)]
    region_counts = [R - (i % 2) for i in range(B)]
    question = np.zeros((B, T), dtype=np.int64)
    input_mask = np.zeros((B, T), dtype=np.int64)
    segment_ids = np.zeros((B, T), dtype=np.int64)
    features = np.zeros((B, R, 2048), dtype=np.float32)
    spatials = np.zeros((B, R, 5), dtype=np.float32)
    image_mask = np.zeros((B, R), dtype=np.int64)
    vocab = config.vocab_size
    for b in range(B):
        n = text_lengths[b]
        question[b, :n] = np.concatenate([[1], rng.randint(4, vocab, n - 2), [2]])
        input_mask[b, :n] = 1
        segment_ids[b, n // 2 : n] = b % 2
        boxes = region_counts[b] - 1
        real = rng.rand(boxes, 2048).astype(np.float32) * 2
        features[b, 0] = real.mean(0)
        features[b, 1 : boxes + 1] = real
        x1, y1 = rng.rand(boxes) * 0.5, rng.rand(boxes) * 0.5
        x2, y2 = x1 + rng.rand(boxes) * 0.5, y1 + rng.rand(boxes) * 0.5
        spatials[b, 0] = [0, 0, 1, 1, 1]
        spatials[b, 1 : boxes + 1] = np.stack([x1, y1, x2, y2, (x2 - x1) * (y2 - y1)], 1)
        image_mask[b, : boxes + 1] = 1
    inputs = {
        "base.question": question, "base.input_mask": input_mask, "base.segment_ids": segment_ids,
        "base.features": features, "base.spatials": spatials, "base.image_mask": image_mask,
        "base.co_attention_mask": np.zeros((B, R, T), dtype=np.float32),
        "base.question_id": np.arange(B, dtype=np.int64),
    }
    heads = ["vil_prediction", "vil_prediction_gqa", "vil_logit", "vil_binary_prediction", "vil_tri_prediction",
             "vision_prediction", "vision_logit", "linguisic_prediction", "linguisic_logit"]
    forward = {}
    captured = {}
    model.bert.register_forward_hook(lambda m, i, o: captured.__setitem__("bert", o))
    model.vil_logit.register_forward_hook(lambda m, i, o: captured.__setitem__("fused", i[0]))
    for task in (int(t) for t in args.tasks.split(",")):
        task_ids = np.full((B, 1), task, dtype=np.int64)
        inputs[f"eval.task_ids.t{task}"] = task_ids
        with torch.no_grad():
            outputs = model(*(torch.from_numpy(inputs[f"base.{k}"]) for k in
                              ["question", "features", "spatials", "segment_ids", "input_mask", "image_mask", "co_attention_mask"]),
                            torch.from_numpy(task_ids))
        for name, value in zip(heads, outputs[:9]):
            forward[f"t{task}.{name}"] = value.numpy()
        seq_t, seq_v, pooled_t, pooled_v = captured["bert"][:4]
        forward[f"t{task}.sequence_output_t"] = seq_t.numpy()
        forward[f"t{task}.sequence_output_v"] = seq_v.numpy()
        forward[f"t{task}.pooled_output_t"] = pooled_t.numpy()
        forward[f"t{task}.pooled_output_v"] = pooled_v.numpy()
        forward[f"t{task}.pooled_output_fused"] = captured["fused"].numpy()
    write_safetensors(os.path.join(args.out, "inputs.safetensors"), inputs)
    write_safetensors(os.path.join(args.out, "forward.safetensors"), forward)
    print(f"wrote {args.out}: {len(state)} weights, {len(forward)} reference outputs, torch {torch.__version__}")


if __name__ == "__main__":
    main()
