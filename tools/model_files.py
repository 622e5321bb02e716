"""What the converters in tools/ share: SHA-256 of a file, and listing files in assets/models/CHECKSUMS."""
import hashlib, os


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def record_checksums(models_dir, paths):
    """List each of `paths` (files in `models_dir`) in its CHECKSUMS with its new sum, keeping
    the other lines (alignscope writes the trained networks' lines); sorted by name."""
    sums_path = os.path.join(models_dir, "CHECKSUMS")
    sums = {}
    if os.path.exists(sums_path):
        for line in open(sums_path):
            digest, _, name = line.rstrip("\n").partition("  ")
            sums[name] = digest
    for p in paths:
        sums[os.path.basename(p)] = sha256(p)
    with open(sums_path, "w") as f:
        for name in sorted(sums):
            f.write(f"{sums[name]}  {name}\n")
