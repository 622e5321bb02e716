#!/usr/bin/env python3
"""Would SHAN's word attention add to its gradient maps? The pointing game on the committed
grounding set, played with the two maps of the same weights combined.

    W=target/runs/shan-ground10.safetensors
    alignscope -q grounding --method gradient --pairs 0 --weights $W --maps target/gradient.jsonl --json
    alignscope -q grounding --method attention --pairs 0 --weights $W --maps target/attention.jsonl --json
    python3 tools/grounding/combine_maps.py target/gradient.jsonl target/attention.jsonl

Rows (a hit: the peak's cell centre lies in the hand-drawn box): each map alone; the gradient map
(28x28, as shares) times the 7x7 attention map (as shares, each cell repeated 4x4) to a power;
the gradient map plus a weight times the attention map. A and B: the set split in two halves
by a hash of the photo's name, so a choice made on one can be checked on the other. Needs numpy.
"""
import json, sys, hashlib
import numpy as np
def load(p):
    out = {}
    for l in open(p):
        if not l.strip(): continue
        it = json.loads(l)
        out[(it["image"], it["caption"], it["word"])] = it
    return out
G = load(sys.argv[1]); A = load(sys.argv[2])
def clean(w): return ''.join(c for c in w if c.isalnum()).lower()
def word_map(it):
    key = clean(it["word"])
    for w, m in it["words"]:
        if clean(w) == key:
            m = np.array(m, dtype=np.float64); n = int(round(len(m) ** 0.5)); return m.reshape(n, n)
    return None
def hit(m, b):
    n = m.shape[0]; i = int(np.argmax(m)); r, c = divmod(i, n)
    x, y = (c + 0.5) / n, (r + 0.5) / n
    return b[0] <= x <= b[2] and b[1] <= y <= b[3]
half = lambda name: int(hashlib.md5(name.encode()).hexdigest(), 16) % 2
def up(a, n):
    k = n // a.shape[0]; return np.kron(a, np.ones((k, k)))
def run(f):
    res = [0, 0, 0]; tot = [0, 0, 0]
    for key, g in G.items():
        a = A.get(key)
        if a is None: continue
        mg, ma = word_map(g), word_map(a)
        if mg is None or ma is None: continue
        m = f(mg, ma)
        h = hit(m, g["bbox"]); s = half(g["image"])
        res[s] += h; tot[s] += 1; res[2] += h; tot[2] += 1
    return res, tot
def norm(m): m = np.clip(m, 0, None); return m / (m.sum() + 1e-12)
vs = [("gradient", lambda g, a: g), ("attention", lambda g, a: a)]
for p in [0.25, 0.5, 1, 2]:
    vs.append((f"g*a^{p}", lambda g, a, p=p: norm(g) * up(norm(a), g.shape[0]) ** p))
for w in [0.25, 0.5, 1, 2]:
    vs.append((f"g+{w}a", lambda g, a, w=w: norm(g) + w * up(norm(a), g.shape[0]) / (g.shape[0] // a.shape[0]) ** 2))
for name, f in vs:
    (r, t) = run(f)
    print(f"{name:12s} A {100*r[0]/max(t[0],1):5.1f}  B {100*r[1]/max(t[1],1):5.1f}  all {r[2]}/{t[2]} {100*r[2]/max(t[2],1):5.1f}")
