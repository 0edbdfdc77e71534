"""Reference side of bench/vilbert-model.ts: the original VILBertForVLTasks.

Imports vilbert/vilbert.py from the checkout named by VILBERT_REFERENCE_DIR
(modules it imports but never uses for a forward pass are stubbed), builds
bert_base_6layer_6conect with task tokens and random weights, then answers
commands on stdin: "fwd" (one timed no-grad forward), "load PATH" (torch.load
plus load_state_dict), "rss" (peak resident MiB). Prints one number per command.
"""
import os
import resource
import sys
import time

import torch

from reference_stubs import stub_modules


def main():
    threads, batch, text_len, regions = (int(a) for a in sys.argv[1:5])
    reference = os.environ["VILBERT_REFERENCE_DIR"]
    sys.path.insert(0, reference)
    stub_modules()
    from vilbert.vilbert import BertConfig, VILBertForVLTasks

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = BertConfig.from_json_file(os.path.join(reference, "config", "bert_base_6layer_6conect.json"))
    config.v_target_size = 1601
    config.visual_target = 0
    config.task_specific_tokens = True
    model = VILBertForVLTasks(config, num_labels=3129, default_gpu=False)
    model.eval()
    question = torch.randint(4, 30000, (batch, text_len))
    features = torch.randn(batch, regions, 2048)
    spatials = torch.rand(batch, regions, 5)
    segment_ids = torch.zeros(batch, text_len, dtype=torch.long)
    input_mask = torch.ones(batch, text_len, dtype=torch.long)
    image_mask = torch.ones(batch, regions, dtype=torch.long)
    co_attention_mask = torch.zeros(batch, regions, text_len)
    task_ids = torch.full((batch, 1), 1, dtype=torch.long)
    print("ready", torch.__version__, torch.get_num_threads(), flush=True)
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        start = time.perf_counter()
        if command == "fwd":
            with torch.no_grad():
                model(question, features, spatials, segment_ids, input_mask, image_mask, co_attention_mask, task_ids)
        elif command == "load":
            state = torch.load(argument, map_location="cpu")
            model.load_state_dict(state)
            del state
        elif command == "rss":
            print(f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}", flush=True)
            continue
        else:
            break
        print(f"{(time.perf_counter() - start) * 1000:.3f}", flush=True)


if __name__ == "__main__":
    main()
