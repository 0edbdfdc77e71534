"""Reference side of bench/precision.ts: the original VILBertForVLTasks in the precisions
PyTorch users run it in on a CPU.

Imports vilbert/vilbert.py from the checkout named by VILBERT_REFERENCE_DIR (modules it
imports but never uses for a forward pass are stubbed), builds bert_base_6layer_6conect
with task tokens and random weights in eval mode, and answers commands on stdin, each
printing one number: "fwd fp32" (a no-grad forward), "fwd bf16" (the same under
torch.autocast('cpu', dtype=torch.bfloat16)), "fwd int8" (the forward of
quantize_dynamic(model, {nn.Linear: per_channel_dynamic_qconfig}, torch.qint8) with the
onednn engine, made once at start), in milliseconds; "mem MODE" (in a fresh process: the
peak resident MiB over two forwards in MODE, measured from after the model is ready).
"""
import os
import sys
import time

import torch

from reference_stubs import stub_modules


def peak_mib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main():
    threads, batch, text_len, regions = (int(a) for a in sys.argv[1:5])
    modes = sys.argv[5].split(",") if len(sys.argv) > 5 else ["fp32", "bf16", "int8"]
    reference = os.environ["VILBERT_REFERENCE_DIR"]
    sys.path.insert(0, reference)
    stub_modules()
    from vilbert.vilbert import BertConfig, VILBertForVLTasks
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    torch.backends.quantized.engine = "onednn"
    config = BertConfig.from_json_file(os.path.join(reference, "config", "bert_base_6layer_6conect.json"))
    config.v_target_size = 1601
    config.visual_target = 0
    config.task_specific_tokens = True
    model = VILBertForVLTasks(config, num_labels=3129, default_gpu=False)
    model.eval()
    quantized = None
    if "int8" in modes:
        quantized = quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)
        if modes == ["int8"]:
            del model  # the memory probe keeps only the quantized copy
            model = None
    inputs = (
        torch.randint(4, 30000, (batch, text_len)),
        torch.randn(batch, regions, 2048),
        torch.rand(batch, regions, 5),
        torch.zeros(batch, text_len, dtype=torch.long),
        torch.ones(batch, text_len, dtype=torch.long),
        torch.ones(batch, regions, dtype=torch.long),
        torch.zeros(batch, regions, text_len),
        torch.full((batch, 1), 1, dtype=torch.long),
    )

    def forward(mode):
        with torch.no_grad():
            if mode == "fp32":
                model(*inputs)
            elif mode == "bf16":
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    model(*inputs)
            elif mode == "int8":
                quantized(*inputs)
            else:
                raise ValueError(mode)

    print("ready", torch.__version__, torch.get_num_threads(), flush=True)
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "fwd":
            start = time.perf_counter()
            forward(argument)
            print(f"{(time.perf_counter() - start) * 1000:.3f}", flush=True)
        elif command == "mem":
            with open("/proc/self/clear_refs", "w") as refs:
                refs.write("5")  # restart VmHWM from the resident size now
            forward(argument)
            forward(argument)
            print(f"{peak_mib():.1f}", flush=True)
        else:
            break


if __name__ == "__main__":
    main()
