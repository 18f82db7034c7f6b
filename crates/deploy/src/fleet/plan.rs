//! Planning a fleet deploy before anything runs: which hosts share one build, and which two
//! entries would deploy to the same place (they would fight over its deploy lock).

/// Groups items by key, keeping the order in which each key first appears; each group lists the
/// indexes of its items in order. Hosts with the same config and lock build it once.
pub fn group_by<K: PartialEq + Clone>(keys: &[K]) -> Vec<(K, Vec<usize>)> {
    let mut groups: Vec<(K, Vec<usize>)> = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        match groups.iter_mut().find(|(g, _)| g == k) {
            Some((_, members)) => members.push(i),
            None => groups.push((k.clone(), vec![i])),
        }
    }
    groups
}

/// The first pair of indexes whose places are equal, if any (a place is e.g. target and root).
pub fn first_duplicate<P: PartialEq>(places: &[P]) -> Option<(usize, usize)> {
    (0..places.len()).find_map(|j| (0..j).find(|&i| places[i] == places[j]).map(|i| (i, j)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_keep_first_appearance_order() {
        let keys = ["b.toml", "a.toml", "b.toml", "c.toml", "a.toml"];
        assert_eq!(
            group_by(&keys),
            vec![
                ("b.toml", vec![0, 2]),
                ("a.toml", vec![1, 4]),
                ("c.toml", vec![3])
            ]
        );
        assert!(group_by::<u8>(&[]).is_empty());
    }

    #[test]
    fn duplicates_are_found_in_order() {
        let places = [
            ("h1", None),
            ("h2", Some("/r")),
            ("h2", None),
            ("h2", Some("/r")),
        ];
        assert_eq!(first_duplicate(&places), Some((1, 3)));
        assert_eq!(first_duplicate(&places[..3]), None);
        assert_eq!(first_duplicate::<u8>(&[]), None);
    }
}
