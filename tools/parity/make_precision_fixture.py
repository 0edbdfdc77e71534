"""Writes test/fixtures/parity/precision.safetensors: the ORIGINAL VILBertForVLTasks
(vilbert/vilbert.py) on the parity fixtures' task-1 eval batch, run the two ways PyTorch
users run it in lower precision on a CPU:

* bf16.<head>: the forward under torch.autocast('cpu', dtype=torch.bfloat16), each head's
  output cast to float32;
* int8.<head>: torch.ao.quantization.quantize_dynamic(model, {nn.Linear:
  per_channel_dynamic_qconfig}, dtype=torch.qint8) with torch.backends.quantized.engine
  = 'onednn' (Debian's torch has no fbgemm); every nn.Linear, the heads' included;
* fp32.<head>: the plain float32 forward again, as the common baseline.

    VILBERT_REFERENCE_DIR=/path/to/vilbert-multi-task /usr/bin/python3 \
        tools/parity/make_precision_fixture.py test/fixtures/parity

It reads config.json, weights_vltasks.safetensors and inputs.safetensors of that folder.
Nothing of the reference is copied; it is imported (modules it never uses are stubbed) and
run in eval mode under torch.no_grad(), one thread.
"""
import argparse
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_parity_folder import write_safetensors  # noqa: E402  (also puts bench/reference on the path)
from make_visual_target_fixture import read_safetensors  # noqa: E402
from reference_stubs import stub_modules  # noqa: E402

HEADS = ["vil_prediction", "vil_prediction_gqa", "vil_logit", "vil_binary_prediction", "vil_tri_prediction",
         "vision_prediction", "vision_logit", "linguisic_prediction", "linguisic_logit"]
INPUTS = ["question", "features", "spatials", "segment_ids", "input_mask", "image_mask", "co_attention_mask"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("folder")
    parser.add_argument("--out", help="output file (default FOLDER/precision.safetensors)")
    args = parser.parse_args()
    sys.path.insert(0, os.environ["VILBERT_REFERENCE_DIR"])
    stub_modules()
    from vilbert.vilbert import BertConfig, VILBertForVLTasks

    torch.set_num_threads(1)
    folder = args.folder
    weights = read_safetensors(os.path.join(folder, "weights_vltasks.safetensors"))
    raw = read_safetensors(os.path.join(folder, "inputs.safetensors"))
    config = BertConfig.from_json_file(os.path.join(folder, "config.json"))
    config.v_target_size = 1601  # as make_parity_folder.py builds the fixtures' model
    config.visual_target = 0
    config.task_specific_tokens = True
    model = VILBertForVLTasks(config, num_labels=3129, default_gpu=False)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items() if k in model.state_dict()}, strict=True)
    model.eval()
    inputs = [torch.from_numpy(raw[f"base.{name}"]) for name in INPUTS] + [torch.from_numpy(raw["eval.task_ids.t1"])]

    def run(net):
        with torch.no_grad():
            outputs = net(*inputs)
        return {head: value.float().numpy() for head, value in zip(HEADS, outputs)}

    out = {}
    expected = read_safetensors(os.path.join(folder, "forward.safetensors"))
    for head, value in run(model).items():
        assert (value == expected[f"t1.{head}"]).all(), head  # the fixtures' own float32 forward
        out[f"fp32.{head}"] = value
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for head, value in run(model).items():
            out[f"bf16.{head}"] = value
    torch.backends.quantized.engine = "onednn"
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    quantized = quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)
    layers = sum(1 for m in quantized.modules() if type(m).__name__ == "Linear" and "quantized" in type(m).__module__)
    for head, value in run(quantized).items():
        out[f"int8.{head}"] = value
    meta = {"torch": torch.__version__, "engine": "onednn", "quantized_linear_layers": str(layers), "task": "1"}
    path = args.out or os.path.join(folder, "precision.safetensors")
    write_safetensors(path, out, meta)
    print(json.dumps(meta))
    print(f"wrote {path}: {len(out)} tensors")


if __name__ == "__main__":
    main()
