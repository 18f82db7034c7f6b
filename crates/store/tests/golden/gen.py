#!/usr/bin/env python3
"""Regenerates the golden archives in this directory from the format description in
src/archive/mod.rs, independently of the Rust code (it never looks at a file system).

Run from this directory:  python3 gen.py
Then check `sha256sum *.bin` against the digests asserted in tests/archive_golden.rs.
The trees described here are the ones tests/archive_golden.rs builds on disk.
"""
import struct

MAGIC = b"pideploy-archive-v1\n"


def u64(n):
    return struct.pack("<Q", n)


def file(data, exe=False):
    return (b"x" if exe else b"f") + u64(len(data)) + data


def link(target):
    return b"l" + u64(len(target)) + target


def dir_(entries):
    out = b"d" + u64(len(entries))
    for name in sorted(entries):  # bytes sort == the format's order
        out += u64(len(name)) + name + entries[name]
    return out


TREE = dir_({
    b"README": file(b"golden tree\n"),
    b"bin": dir_({b"hello": file(b"#!/bin/sh\necho hello\n", exe=True)}),
    b"empty-dir": dir_({}),
    b"empty-file": file(b""),
    b"etc": dir_({
        b"motd": file(b"welcome\n"),
        b"nested": dir_({b"a.conf": file(b"x=1\n"), b"z": file(b"zz")}),
    }),
    b"link": link(b"/pideploy/store/00000000000000000000000000000000-foo/bin/hello"),
    b"rel-link": link(b"bin/hello"),
})

FILE = file(b"#!/bin/sh\nexit 0\n", exe=True)

if __name__ == "__main__":
    for name, node in [("tree.bin", TREE), ("file.bin", FILE)]:
        with open(name, "wb") as f:
            f.write(MAGIC + node)
