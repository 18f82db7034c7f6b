//! kmod's binary index files (`modules.dep.bin`, `modules.alias.bin`, …), written without `depmod`.
//!
//! libkmod (udev, systemd-modules-load, `modprobe`) reads only these, never the text files. The
//! format is kmod's (`libkmod-index.c`, index version 2.1): a big-endian header `0xB007F457`,
//! `0x00020001`, root node offset; then a trie whose nodes are laid out as kmod 30's depmod (Debian
//! bookworm) does, each after its children (kmod 34 puts them before; libkmod reads either). A node offset word carries, above a 28-bit file offset, flags saying which
//! parts the node has: a NUL-terminated prefix (path compression), a child table (first byte, last
//! byte, one offset per byte in between, 0 for none), values (count, then priority and
//! NUL-terminated string each). The same entries give the bytes kmod 30's depmod writes.

/// The index file's magic number ("BOOTFAST").
pub const MAGIC: u32 = 0xB007_F457;
/// Index format 2.1 (major in the high half; libkmod checks only the major).
pub const VERSION: u32 = 0x0002_0001;

const NODE_PREFIX: u32 = 0x8000_0000;
const NODE_VALUES: u32 = 0x4000_0000;
const NODE_CHILDS: u32 = 0x2000_0000;
const NODE_MASK: u32 = 0x0FFF_FFFF;
const HEADER_LEN: usize = 12;

/// Longest key or value accepted: depmod's own buffers are `PATH_MAX` (4096 with the NUL). It also
/// bounds the trie's depth, so the recursive writer's stack.
pub const MAX_STRING: usize = 4095;

/// The index of `entries` (key, value, priority). A key may have several values; libkmod returns
/// them by ascending priority, and among equal priorities the entry given later first (as depmod
/// inserts). Keys are stored literally: alias patterns keep their `*`, `?` and `[…]`, and libkmod
/// matches lookups against them. Keys and values must be 7-bit ASCII without NUL and at most
/// [`MAX_STRING`] bytes (libkmod's child tables hold 128 bytes); the error names the bad entry.
pub fn write_index(entries: &[(String, String, u32)]) -> Result<Vec<u8>, String> {
    for (key, value, _) in entries {
        for (what, s) in [("key", key), ("value", value)] {
            if s.len() > MAX_STRING {
                return Err(format!(
                    "kmod index {what} of {} bytes is over {MAX_STRING} (key {:?}…)",
                    s.len(),
                    key.chars().take(40).collect::<String>()
                ));
            }
            if s.bytes().any(|b| b == 0 || b >= 0x80) {
                return Err(format!(
                    "kmod index {what} {s:?} has a NUL or non-ASCII byte (key {key:?}); only 7-bit ASCII can be indexed"
                ));
            }
        }
    }
    // Sorted keys, each with its values in libkmod's order.
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by(|&a, &b| entries[a].0.cmp(&entries[b].0).then(b.cmp(&a)));
    let mut keys: Vec<Key> = Vec::new();
    for i in order {
        let (key, value, priority) = &entries[i];
        match keys.last_mut() {
            Some(k) if k.key == key.as_bytes() => k.values.push((*priority, value)),
            _ => keys.push(Key {
                key: key.as_bytes(),
                values: vec![(*priority, value)],
            }),
        }
    }
    for k in &mut keys {
        // Stable: equal priorities keep the later-entry-first order set above.
        k.values.sort_by_key(|&(p, _)| p);
    }

    let mut out = Vec::with_capacity(HEADER_LEN + 64 * keys.len());
    out.extend_from_slice(&MAGIC.to_be_bytes());
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&[0; 4]); // the root's offset word, known once it is written
    let root = write_trie(&mut out, &keys)?;
    out[8..HEADER_LEN].copy_from_slice(&root.to_be_bytes());
    Ok(out)
}

/// One distinct key and its values (priority, value), in the order they are stored.
struct Key<'a> {
    key: &'a [u8],
    values: Vec<(u32, &'a str)>,
}

/// The shape of the trie node for `keys[..]`, all of which share their first `depth` bytes.
struct Node {
    /// Where this node's prefix starts and ends in every key.
    depth: usize,
    end: usize,
    /// Whether `keys[0]` ends at `end` (its values live here).
    values: bool,
    /// (byte, start, end) ranges of `keys` below each child, in byte order.
    children: Vec<(u8, usize, usize)>,
}

impl Node {
    /// The node for sorted `keys` past `depth`. The root has no prefix (depmod never gives it one);
    /// every other node takes the longest prefix its keys share, which for sorted keys is that of
    /// the first and the last, and stops where the shortest key ends.
    fn of(keys: &[Key], depth: usize, root: bool) -> Node {
        let (Some(first), Some(last)) = (keys.first(), keys.last()) else {
            return Node {
                depth,
                end: depth,
                values: false,
                children: Vec::new(),
            };
        };
        let common = if root {
            0
        } else {
            first.key[depth..]
                .iter()
                .zip(&last.key[depth..])
                .take_while(|(a, b)| a == b)
                .count()
        };
        let end = depth + common;
        let values = first.key.len() == end;
        let mut children: Vec<(u8, usize, usize)> = Vec::new();
        for (i, k) in keys.iter().enumerate().skip(usize::from(values)) {
            let byte = k.key[end];
            match children.last_mut() {
                Some((b, _, stop)) if *b == byte => *stop = i + 1,
                _ => children.push((byte, i, i + 1)),
            }
        }
        Node {
            depth,
            end,
            values,
            children,
        }
    }

    fn flags(&self) -> u32 {
        let mut flags = 0;
        if self.end > self.depth {
            flags |= NODE_PREFIX;
        }
        if self.values {
            flags |= NODE_VALUES;
        }
        if !self.children.is_empty() {
            flags |= NODE_CHILDS;
        }
        flags
    }
}

/// A node being written: its keys, shape, and the offset words of the children placed so far.
struct Pending {
    start: usize,
    stop: usize,
    node: Node,
    offsets: Vec<u32>,
}

/// Appends the trie over `keys` as kmod 30's depmod (Debian bookworm) lays it out: every node after
/// its children, the children in byte order; returns the root's offset word. An explicit stack
/// rather than recursion: a key may be 4095 bytes deep.
fn write_trie(out: &mut Vec<u8>, keys: &[Key]) -> Result<u32, String> {
    let pending = |start: usize, stop: usize, depth: usize, root: bool| Pending {
        start,
        stop,
        node: Node::of(&keys[start..stop], depth, root),
        offsets: Vec::new(),
    };
    let mut stack = vec![pending(0, keys.len(), 0, true)];
    loop {
        let Some(top) = stack.last_mut() else {
            return Err("kmod index: empty trie stack".into());
        };
        if let Some(&(_, s, e)) = top.node.children.get(top.offsets.len()) {
            let (start, depth) = (top.start, top.node.end + 1);
            stack.push(pending(start + s, start + e, depth, false));
            continue;
        }
        let Some(done) = stack.pop() else {
            return Err("kmod index: empty trie stack".into());
        };
        let word = write_node(out, &keys[done.start..done.stop], &done.node, &done.offsets)?;
        match stack.last_mut() {
            Some(parent) => parent.offsets.push(word),
            None => return Ok(word),
        }
    }
}

/// Appends one node whose children are at `offsets` (words, in the order of `node.children`);
/// returns the node's own offset word.
fn write_node(
    out: &mut Vec<u8>,
    keys: &[Key],
    node: &Node,
    offsets: &[u32],
) -> Result<u32, String> {
    let at = u32::try_from(out.len())
        .ok()
        .filter(|&o| o <= NODE_MASK)
        .ok_or_else(|| {
            format!("kmod index over {NODE_MASK} bytes (the format's limit); too many modules or aliases")
        })?;
    if let Some(first) = keys.first() {
        if node.end > node.depth {
            out.extend_from_slice(&first.key[node.depth..node.end]);
            out.push(0);
        }
    }
    if let (Some(&(lo, ..)), Some(&(hi, ..))) = (node.children.first(), node.children.last()) {
        out.push(lo);
        out.push(hi);
        let mut table = vec![0u32; usize::from(hi - lo) + 1];
        for (&(byte, ..), &word) in node.children.iter().zip(offsets) {
            table[usize::from(byte - lo)] = word;
        }
        for word in table {
            out.extend_from_slice(&word.to_be_bytes());
        }
    }
    if let (true, Some(first)) = (node.values, keys.first()) {
        out.extend_from_slice(&(first.values.len() as u32).to_be_bytes());
        for (priority, value) in &first.values {
            out.extend_from_slice(&priority.to_be_bytes());
            out.extend_from_slice(value.as_bytes());
            out.push(0);
        }
    }
    Ok(at | node.flags())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key of an index with its values (priority, value), read back by following the offsets.
    fn read_all(bytes: &[u8]) -> Vec<(String, Vec<(u32, String)>)> {
        let u32_at = |o: usize| u32::from_be_bytes(bytes[o..o + 4].try_into().unwrap());
        assert_eq!(u32_at(0), MAGIC);
        assert_eq!(u32_at(4), VERSION);
        let mut found = Vec::new();
        let mut todo = vec![(u32_at(8), Vec::new())];
        while let Some((word, mut key)) = todo.pop() {
            let mut at = (word & NODE_MASK) as usize;
            let cstr = |at: &mut usize| {
                let len = bytes[*at..].iter().position(|&b| b == 0).unwrap();
                let s = bytes[*at..*at + len].to_vec();
                *at += len + 1;
                s
            };
            if word & NODE_PREFIX != 0 {
                let prefix = cstr(&mut at);
                assert!(!prefix.is_empty());
                key.extend(prefix);
            }
            let mut children = Vec::new();
            if word & NODE_CHILDS != 0 {
                let (lo, hi) = (bytes[at], bytes[at + 1]);
                at += 2;
                for b in lo..=hi {
                    let w = u32_at(at);
                    at += 4;
                    if w & NODE_MASK != 0 {
                        let mut k = key.clone();
                        k.push(b);
                        children.push((w, k));
                    }
                }
            }
            if word & NODE_VALUES != 0 {
                let n = u32_at(at);
                at += 4;
                let mut values = Vec::new();
                for _ in 0..n {
                    let p = u32_at(at);
                    at += 4;
                    values.push((p, String::from_utf8(cstr(&mut at)).unwrap()));
                }
                found.push((String::from_utf8(key).unwrap(), values));
            }
            todo.extend(children.into_iter().rev());
        }
        found.sort();
        found
    }

    fn e(k: &str, v: &str, p: u32) -> (String, String, u32) {
        (k.into(), v.into(), p)
    }

    #[test]
    fn empty_index_is_a_bare_root() {
        let bytes = write_index(&[]).unwrap();
        assert_eq!(
            bytes,
            [0xB0, 0x07, 0xF4, 0x57, 0, 2, 0, 1, 0, 0, 0, 12],
            "header and a root with nothing"
        );
        assert!(read_all(&bytes).is_empty());
    }

    #[test]
    fn layout_of_a_small_trie() {
        // "ab" and "ac" share the root's child 'a' (no prefix), which has children b and c; each
        // node comes after its children.
        let bytes = write_index(&[e("ab", "x", 0), e("ac", "y", 1)]).unwrap();
        let mut want = vec![0xB0, 0x07, 0xF4, 0x57, 0, 2, 0, 1];
        want.extend((42u32 | NODE_CHILDS).to_be_bytes()); // root at 42
        want.extend([0, 0, 0, 1, 0, 0, 0, 0, b'x', 0]); // leaf "ab" at 12
        want.extend([0, 0, 0, 1, 0, 0, 0, 1, b'y', 0]); // leaf "ac" at 22
        want.extend([b'b', b'c']); // node "a" at 32: 'b'..'c'
        want.extend((12u32 | NODE_VALUES).to_be_bytes());
        want.extend((22u32 | NODE_VALUES).to_be_bytes());
        want.extend([b'a', b'a']); // root: 'a'..'a'
        want.extend((32u32 | NODE_CHILDS).to_be_bytes());
        assert_eq!(bytes, want);
    }

    #[test]
    fn round_trips_keys_values_and_priorities() {
        let entries = vec![
            e(
                "virtio_net",
                "kernel/drivers/net/virtio_net.ko: kernel/a.ko",
                3,
            ),
            e(
                "virtio_rng",
                "kernel/drivers/char/hw_random/virtio-rng.ko:",
                1,
            ),
            e("virtio", "kernel/drivers/virtio/virtio.ko:", 0),
            e("pci:v00001AF4d00001005sv*sd*bc*sc*i*", "virtio_rng", 1),
            e("pci:v00001AF4d00001000sv*sd*bc*sc*i*", "virtio_net", 3),
            e("pci:v00001AF4d00001000sv*sd*bc*sc*i*", "other", 2),
            e("same", "first", 5),
            e("same", "second", 5),
            e("", "empty key", 0),
        ];
        let bytes = write_index(&entries).unwrap();
        let mut want: Vec<(String, Vec<(u32, String)>)> = vec![
            ("".into(), vec![(0, "empty key".into())]),
            (
                "pci:v00001AF4d00001000sv*sd*bc*sc*i*".into(),
                vec![(2, "other".into()), (3, "virtio_net".into())],
            ),
            (
                "pci:v00001AF4d00001005sv*sd*bc*sc*i*".into(),
                vec![(1, "virtio_rng".into())],
            ),
            (
                "same".into(),
                vec![(5, "second".into()), (5, "first".into())],
            ),
            (
                "virtio".into(),
                vec![(0, "kernel/drivers/virtio/virtio.ko:".into())],
            ),
            (
                "virtio_net".into(),
                vec![(3, "kernel/drivers/net/virtio_net.ko: kernel/a.ko".into())],
            ),
            (
                "virtio_rng".into(),
                vec![(1, "kernel/drivers/char/hw_random/virtio-rng.ko:".into())],
            ),
        ];
        want.sort();
        assert_eq!(read_all(&bytes), want);
        // Input order of distinct keys does not matter.
        let mut reversed = entries.clone();
        reversed.reverse();
        let swap_ties = |v: &mut Vec<(String, String, u32)>| {
            let a = v.iter().position(|x| x.1 == "first").unwrap();
            let b = v.iter().position(|x| x.1 == "second").unwrap();
            v.swap(a, b);
        };
        swap_ties(&mut reversed);
        assert_eq!(write_index(&reversed).unwrap(), bytes);
    }

    #[test]
    fn rejects_what_kmod_cannot_store() {
        assert!(write_index(&[e("caf\u{e9}", "m", 0)])
            .unwrap_err()
            .contains("non-ASCII"));
        assert!(write_index(&[e("k", "a\0b", 0)])
            .unwrap_err()
            .contains("NUL"));
        let long = "x".repeat(MAX_STRING + 1);
        assert!(write_index(&[e(&long, "m", 0)])
            .unwrap_err()
            .contains("over 4095"));
        // The longest allowed key, as one deep chain of branches, still writes.
        let deep: Vec<_> = (1..=MAX_STRING)
            .map(|n| e(&"y".repeat(n), "m", 0))
            .collect();
        assert_eq!(read_all(&write_index(&deep).unwrap()).len(), MAX_STRING);
    }
}
