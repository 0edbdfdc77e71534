"""Writes test/fixtures/parity/pretrain_visual_targets.safetensors: the ORIGINAL
BertForMultiModalPreTraining (vilbert/vilbert.py) with train_concap.py's --visual_target 1
(MSE regression of the 2048-d region features) and 2 (NCE against sampled negatives), on
the pretraining inputs of the parity fixtures (inputs.safetensors, pretrain.*).

    VILBERT_REFERENCE_DIR=/path/to/vilbert-multi-task /usr/bin/python3 \
        tools/parity/make_visual_target_fixture.py test/fixtures/parity

It reads config.json, weights_vltasks.safetensors and inputs.safetensors of that folder and
writes pretrain_visual_targets.safetensors into it. Nothing of the reference is copied; it
is imported (modules it never uses here are stubbed) and run:

* config = BertConfig.from_json_file(config.json); then, as train_concap.py does for
  --visual_target 1 or 2: config.v_target_size = 2048, config.visual_target = k.
  config.num_negative stays the BertConfig default (128): train_concap's --num_negative
  flag is never copied into the config.
* The folder's weights, restricted to this model's keys, except cls.imagePredictions.decoder
  whose output size is now 2048: its weight ~ 0.05 N(0,1)/sqrt(v_hidden_size) and bias ~
  0.005 N(0,1) are drawn here (seed --seed) and stored in the fixture.
* image_target: what the Conceptual Captions dataset yields for visual_target != 0, i.e. the
  region features copied BEFORE masking, without the global region: [B, R-1, 2048]. The
  parity inputs keep only the masked features (zeroed), so the features of the masked
  regions are drawn here (exponential, mean 0.8, seed --seed); the other regions are
  pretrain.image_feat[:, 1:] (padded ones 0).
* Eval mode (no dropout), so nothing draws random numbers before the NCE sampling:
  torch.manual_seed(--nce-seed) right before each loss forward fixes the negatives. They are
  recorded (observation only: torch.cat is wrapped during that forward to keep its int64
  result) as vt2.neg_index [M, 127] = row * (R-1) + region per masked region, and re-drawn
  here from the same seed to check that they are reproducible.
* Losses as the reference returns them (masked_lm_loss, masked_img_loss,
  next_sentence_loss) and train_concap's total (img_weight 1, objective 0); gradients of a
  few parameters of that total; the same losses re-run in float64 (model.double()) as the
  noise floor, in the file's metadata.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_parity_folder import write_safetensors  # noqa: E402  (also puts bench/reference on the path)
from reference_stubs import stub_modules  # noqa: E402

NUMPY = {"F32": np.float32, "I64": np.int64}
DECODER = ["cls.imagePredictions.decoder.weight", "cls.imagePredictions.decoder.bias"]
# The regressed 2048-d predictions are dotted with 2048-d features for NCE: at the O(1) scale
# of the other weights the logits spread over ~40 and one negative dominates the loss; at
# this scale they are O(1), so every sampled negative (and how often it was drawn) counts.
DECODER_SCALE = 0.05
GRADIENTS = [
    "cls.imagePredictions.decoder.bias",
    "cls.imagePredictions.transform.dense.weight",
    "bert.encoder.c_layer.1.biOutput.dense1.weight",
    "bert.encoder.c_layer.0.biattention.value2.weight",
    "bert.v_embeddings.image_location_embeddings.weight",
]


def read_safetensors(path):
    data = open(path, "rb").read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        out[name] = np.frombuffer(data[8 + length + begin : 8 + length + end], dtype=NUMPY[entry["dtype"]]).reshape(entry["shape"]).copy()
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("folder")
    parser.add_argument("--seed", type=int, default=1236)
    parser.add_argument("--nce-seed", type=int, default=1237)
    parser.add_argument("--out", help="output file (default FOLDER/pretrain_visual_targets.safetensors)")
    args = parser.parse_args()
    sys.path.insert(0, os.environ["VILBERT_REFERENCE_DIR"])
    stub_modules()
    from vilbert.vilbert import BertConfig, BertForMultiModalPreTraining

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    folder = args.folder
    weights = read_safetensors(os.path.join(folder, "weights_vltasks.safetensors"))
    raw = read_safetensors(os.path.join(folder, "inputs.safetensors"))
    pre = {k[len("pretrain."):]: v for k, v in raw.items() if k.startswith("pretrain.")}

    generator = torch.Generator().manual_seed(args.seed)
    config0 = BertConfig.from_json_file(os.path.join(folder, "config.json"))
    hidden = config0.v_hidden_size
    decoder = {
        DECODER[0]: DECODER_SCALE * torch.randn(2048, hidden, generator=generator) / hidden ** 0.5,
        DECODER[1]: DECODER_SCALE * 0.1 * torch.randn(2048, generator=generator),
    }
    rng = np.random.RandomState(args.seed)
    target = pre["image_feat"][:, 1:].copy()
    masked = pre["image_label"] == 1
    assert np.all(pre["image_mask"][:, 1:][masked] == 1) and np.all(target[masked] == 0)
    target[masked] = rng.exponential(0.8, size=(int(masked.sum()), 2048)).astype(np.float32)

    out = {"image_target": target, DECODER[0]: decoder[DECODER[0]].numpy(), DECODER[1]: decoder[DECODER[1]].numpy()}
    meta = {"torch": torch.__version__, "numpy": np.__version__, "seed": str(args.seed), "nce_seed": str(args.nce_seed)}
    scores_by_target = {}
    for visual_target in (1, 2):
        config = BertConfig.from_json_file(os.path.join(folder, "config.json"))
        config.v_target_size = 2048  # train_concap.py, visual_target != 0
        config.visual_target = visual_target
        model = BertForMultiModalPreTraining(config)
        state = {k: torch.from_numpy(weights[k]) for k in model.state_dict() if k not in DECODER}
        state.update(decoder)
        model.load_state_dict(state, strict=True)
        model.eval()
        assert model.num_negative == 128

        def run(dtype, nce_seed=args.nce_seed):
            model.to(dtype)
            inputs = [torch.from_numpy(pre[k]) for k in ["input_ids", "image_feat", "image_loc", "segment_ids", "input_mask", "image_mask"]]
            inputs[1], inputs[2] = inputs[1].to(dtype), inputs[2].to(dtype)
            labels = [torch.from_numpy(pre["lm_label_ids"]), torch.from_numpy(pre["image_label"]),
                      torch.from_numpy(target).to(dtype), torch.from_numpy(pre["is_next"])]
            with torch.no_grad():
                scores = model(*inputs)[:3]
            captured = []
            original_cat = torch.cat

            def observing_cat(tensors, *a, **k):
                result = original_cat(tensors, *a, **k)
                if result.dtype == torch.int64 and result.dim() == 3:
                    captured.append(result.clone())
                return result

            model.zero_grad(set_to_none=True)
            torch.manual_seed(nce_seed)
            torch.cat = observing_cat
            try:
                lm, img, nsp = model(*inputs, *labels)
            finally:
                torch.cat = original_cat
            total = lm + img * 1.0 + nsp  # train_concap.py: img_weight 1, objective 0
            total.backward()
            grads = {name: p.grad.clone() for name, p in model.named_parameters() if name in GRADIENTS}
            return scores, (lm, img, nsp, total), grads, captured

        scores, losses, grads, captured = run(torch.float32)
        scores_by_target[visual_target] = scores
        prefix = f"vt{visual_target}."
        for name, value in zip(["masked_lm_loss", "masked_img_loss", "next_sentence_loss", "loss"], losses):
            out[prefix + name] = value.detach().reshape(1).numpy()
        for name in GRADIENTS:
            out[f"{prefix}grad.{name}"] = grads[name].numpy()
        if visual_target == 2:
            assert len(captured) == 1, captured
            final_index = captured[0]  # [B, R-1, 89 + 38], row * (R-1) + region
            out["vt2.neg_index"] = final_index[torch.from_numpy(masked)].numpy()
        else:
            assert not captured
        _, f64, _, captured64 = run(torch.float64)
        assert len(captured64) == len(captured) and all(torch.equal(a, b) for a, b in zip(captured, captured64))
        for name, value in zip(["masked_lm_loss", "masked_img_loss", "next_sentence_loss", "loss"], f64):
            meta[f"{prefix}{name}.f64"] = repr(float(value))
        for name, value in zip(["masked_lm_loss", "masked_img_loss", "next_sentence_loss", "loss"], losses):
            meta[f"{prefix}{name}.f32"] = repr(float(value))
        model.to(torch.float32)
        if visual_target == 2:
            # How much the draw matters: the same loss with the next seed's negatives.
            meta["vt2.masked_img_loss.f32_with_nce_seed_plus_1"] = repr(float(run(torch.float32, args.nce_seed + 1)[1][1]))
    for a, b in zip(scores_by_target[1], scores_by_target[2]):
        assert torch.equal(a, b)
    for name, value in zip(["prediction_scores_t", "prediction_scores_v", "seq_relationship_score"], scores_by_target[1]):
        out[f"scores.{name}"] = value.numpy()

    path = args.out or os.path.join(folder, "pretrain_visual_targets.safetensors")
    write_safetensors(path, out, meta)
    print(json.dumps(meta, indent=1))
    print(f"wrote {path}: {len(out)} tensors, torch {torch.__version__}")


if __name__ == "__main__":
    main()
