#!/usr/bin/env python3
"""Would the detector's boxes make the explanations point better? The pointing game on the
committed grounding set, played with SHAN's gradient maps and the SSD detector's objects.

    alignscope -q grounding --method gradient --pairs 0 --maps target/maps.jsonl --json
    for p in $(cut -f1 tests/fixtures/grounding/flickr8k-test.tsv | tail -n +2 | sort -u); do
      alignscope -q features ../shared/data/flickr8k/images/$p --objects --json; done > target/objects.jsonl
    python3 tools/grounding/detector_pointing.py target/maps.jsonl target/objects.jsonl

Rows (a hit: the point lies in the hand-drawn box):
- map peak: the word's 28x28 gradient map's peak (what `grounding` reports);
- any object's centre: some detected object's box centre lies in the target box, whichever
  object it is (an upper bound for pointing at object centres);
- the map's object: the centre of the object whose box holds the highest mean of the word's map
  (the map's peak where the photo has no object);
- the peak's object: the centre of the smallest object containing the map's peak;
- named object: where the word names a COCO class by a small hand-made list (man -> person,
  puppy -> dog...), the centre of that class's object holding most of the map; else the peak.
Standard library only.
"""
import json, os, sys

PERSON = set("man men woman women boy boys girl girls person people child children kid kids lady guy baby "
             "toddler biker skier surfer climber rider snowboarder skateboarder swimmer crowd team couple "
             "adult teenager family cyclist runner hiker bicyclist dancer worker player".split())
NAMED = {**{w: "person" for w in PERSON}, "dog": "dog", "dogs": "dog", "puppy": "dog", "puppies": "dog",
         "cat": "cat", "horse": "horse", "ball": "sports ball", "frisbee": "frisbee", "surfboard": "surfboard",
         "skateboard": "skateboard", "bike": "bicycle", "bicycle": "bicycle", "car": "car", "boat": "boat",
         "kite": "kite", "umbrella": "umbrella", "bench": "bench", "bird": "bird", "chair": "chair",
         "motorcycle": "motorcycle", "truck": "truck", "bus": "bus", "cow": "cow", "sheep": "sheep",
         "snowboard": "snowboard", "skis": "skis", "bat": "baseball bat", "racket": "tennis racket",
         "backpack": "backpack", "cup": "cup", "bottle": "bottle"}


def inside(p, b):
    return b[0] <= p[0] <= b[2] and b[1] <= p[1] <= b[3]


def centre(b):
    return ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)


def main():
    maps = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    objects = {}
    for line in open(sys.argv[2]):
        if line.strip():
            o = json.loads(line)
            objects[os.path.basename(o["photo"])] = o["objects"]
    rows = {k: 0 for k in ("map peak", "any object's centre", "the map's object", "the peak's object",
                           "named object")}
    total = named = with_objects = 0
    for it in maps:
        word_maps = dict((w, m) for w, m in it["words"])
        m = word_maps.get(it["word"])
        if m is None or it["image"] not in objects:
            continue
        total += 1
        n = int(round(len(m) ** 0.5))
        target = it["bbox"]
        top = max(range(len(m)), key=m.__getitem__)
        peak = ((top % n + 0.5) / n, (top // n + 0.5) / n)
        objs = objects[it["image"]]
        with_objects += bool(objs)

        def mean_in(b):
            cells = [m[r * n + c] for r in range(n) for c in range(n)
                     if b[0] <= (c + 0.5) / n <= b[2] and b[1] <= (r + 0.5) / n <= b[3]]
            return sum(cells) / len(cells) if cells else 0.0

        rows["map peak"] += inside(peak, target)
        rows["any object's centre"] += any(inside(centre(o["box"]), target) for o in objs)
        best = max(objs, key=lambda o: mean_in(o["box"]), default=None)
        rows["the map's object"] += inside(centre(best["box"]) if best else peak, target)
        holding = [o for o in objs if inside(peak, o["box"])]
        small = min(holding, key=lambda o: (o["box"][2] - o["box"][0]) * (o["box"][3] - o["box"][1]), default=None)
        rows["the peak's object"] += inside(centre(small["box"]) if small else peak, target)
        cls = NAMED.get(it["word"].lower())
        same = [o for o in objs if o["label"] == cls]
        named += bool(same)
        pick = max(same, key=lambda o: mean_in(o["box"]), default=None)
        rows["named object"] += inside(centre(pick["box"]) if pick else peak, target)
    print(f"{total} items; {with_objects} on photos with at least one object; "
          f"{named} whose word names a detected class")
    for name, hits in rows.items():
        print(f"{name:22s} {hits:4d}/{total}  {100 * hits / max(total, 1):5.1f} %")


if __name__ == "__main__":
    main()
