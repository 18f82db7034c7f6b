#!/usr/bin/env python3
"""Computes the golden store path asserted in tests/store_path.rs, independently of the Rust
code, from the hash-input text described in the crate docs (src/lib.rs).

Run from this directory: python3 store_path.py  (prints the golden paths, writes closure.txt)
"""
import hashlib

ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz"


def base32(data):
    bits = int.from_bytes(data, "big")
    n = len(data) * 8 // 5
    return "".join(ALPHABET[(bits >> (5 * (n - 1 - i))) & 31] for i in range(n))


def compute(name, content_hex, refs):
    text = "pideploy-store-path-v1\nname %s\ncontent sha256:%s\n" % (name, content_hex)
    for r in sorted(refs):
        text += "ref %s\n" % r
    return base32(hashlib.sha256(text.encode()).digest()[:20]) + "-" + name


content = hashlib.sha256(b"pideploy").hexdigest()
print(compute("hello-1.0", content, []))
print(compute("hello-1.0", content, [
    "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-zlib",
    "00000000000000000000000000000000-libc",
]))


def file_nar(data, exe=False):
    """sha256 hex of the archive of a single file (format in src/archive/mod.rs)."""
    import struct
    blob = b"pideploy-archive-v1\n" + (b"x" if exe else b"f") + struct.pack("<Q", len(data)) + data
    return hashlib.sha256(blob).hexdigest()


def closure_golden():
    """The closure of `app` from `diamond()` in tests/local_store.rs, in the documented order
    (dependencies first, ties by base name). Written to closure.txt."""
    lib = compute("lib", file_nar(b"libc"), [])
    ssl = compute("ssl", file_nar(b"ssl"), [lib])
    zlib = compute("zlib", file_nar(b"zlib"), [lib])
    app = compute("app", file_nar(b"app", exe=True), [ssl, zlib])
    deps = {lib: [], ssl: [lib], zlib: [lib], app: [ssl, zlib]}
    done, order = set(), []
    while len(order) < len(deps):
        ready = sorted(p for p in deps if p not in done and all(d in done for d in deps[p]))
        order.append(ready[0])
        done.add(ready[0])
    return " ".join(order)


if __name__ == "__main__":
    with open("closure.txt", "w") as f:
        f.write(closure_golden() + "\n")
