//! Downloads against a local HTTP server on 127.0.0.1 (no internet).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use pideploy_cache::{Cache, CacheError};
use sha2::{Digest, Sha256};

/// What the test server answers for a path.
#[derive(Clone)]
struct Reply {
    status: &'static str,
    body: Vec<u8>,
    content_length: bool,
}

/// A one-request-per-connection HTTP/1.1 server; returns its base URL and a request counter.
fn serve(routes: Vec<(&'static str, Reply)>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            counter.fetch_add(1, Ordering::SeqCst);
            answer(stream, &routes);
        }
    });
    (base, hits)
}

fn answer(mut stream: TcpStream, routes: &[(&'static str, Reply)]) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    reader.read_line(&mut request_line).unwrap();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap() == 0 || header == "\r\n" {
            break;
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let not_found = Reply {
        status: "404 Not Found",
        body: b"not found".to_vec(),
        content_length: true,
    };
    let reply = routes
        .iter()
        .find(|(p, _)| *p == path)
        .map_or(not_found, |(_, r)| r.clone());
    let mut head = format!("HTTP/1.1 {}\r\nConnection: close\r\n", reply.status);
    if reply.content_length {
        head.push_str(&format!("Content-Length: {}\r\n", reply.body.len()));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&reply.body);
}

fn ok(body: &[u8]) -> Reply {
    Reply {
        status: "200 OK",
        body: body.to_vec(),
        content_length: true,
    }
}

fn sha_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn payload() -> Vec<u8> {
    (0..500_000u32).map(|i| (i * 31 % 253) as u8).collect()
}

fn assert_nothing_stored(root: &Path) {
    for dir in ["sha256", "names", "tmp"] {
        let left: Vec<_> = std::fs::read_dir(root.join(dir)).unwrap().collect();
        assert!(left.is_empty(), "{dir} is not empty: {left:?}");
    }
}

#[test]
fn fetch_verifies_stores_reports_progress_and_then_stays_offline() {
    let data = payload();
    let (base, hits) = serve(vec![("/pool/a_1_arm64.deb", ok(&data))]);
    let work = tempfile::tempdir().unwrap();
    let cache = Cache::open(work.path()).unwrap();
    let url = format!("{base}/pool/a_1_arm64.deb");
    let sha = sha_hex(&data);

    let mut seen = Vec::new();
    let path = cache
        .fetch(&url, &sha, Some(data.len() as u64), &mut |done, total| {
            seen.push((done, total))
        })
        .unwrap();
    assert_eq!(path, work.path().join("sha256").join(&sha));
    assert_eq!(std::fs::read(&path).unwrap(), data);
    let total = Some(data.len() as u64);
    assert_eq!(seen.first(), Some(&(0, total)));
    assert_eq!(seen.last(), Some(&(data.len() as u64, total)));
    assert!(
        seen.windows(2).all(|w| w[0].0 <= w[1].0),
        "progress goes forward"
    );
    assert!(seen.len() > 2, "progress is reported while streaming");
    let listed = cache.list().unwrap();
    assert_eq!(listed[0].name.as_deref(), Some("a_1_arm64.deb"));
    assert!(std::fs::read_dir(work.path().join("tmp"))
        .unwrap()
        .next()
        .is_none());
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // Already cached: no request at all.
    let again = cache.fetch(&url, &sha, None, &mut |_, _| {}).unwrap();
    assert_eq!(again, path);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[test]
fn fetch_without_expected_size_uses_content_length_as_total() {
    let data = b"small file".to_vec();
    let (base, _) = serve(vec![("/f", ok(&data))]);
    let work = tempfile::tempdir().unwrap();
    let cache = Cache::open(work.path()).unwrap();
    let mut last = None;
    cache
        .fetch(&format!("{base}/f"), &sha_hex(&data), None, &mut |d, t| {
            last = Some((d, t))
        })
        .unwrap();
    assert_eq!(last, Some((10, Some(10))));
}

#[test]
fn wrong_hash_is_refused_and_nothing_enters_the_cache() {
    let data = payload();
    let (base, _) = serve(vec![("/a.deb", ok(&data))]);
    let work = tempfile::tempdir().unwrap();
    let cache = Cache::open(work.path()).unwrap();
    let url = format!("{base}/a.deb");
    let wrong = "0".repeat(64);

    let err = cache.fetch(&url, &wrong, None, &mut |_, _| {}).unwrap_err();
    match &err {
        CacheError::HashMismatch {
            url: u,
            expected,
            actual,
        } => {
            assert_eq!(
                (u.as_str(), expected.as_str()),
                (url.as_str(), wrong.as_str())
            );
            assert_eq!(actual, &sha_hex(&data));
        }
        other => panic!("expected a hash mismatch, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains(&url) && text.contains(&wrong) && text.contains(&sha_hex(&data)),
        "{text}"
    );
    assert_nothing_stored(work.path());
    assert!(cache.path_of(&sha_hex(&data)).is_none());
}

#[test]
fn not_found_is_an_http_error_and_stores_nothing() {
    let (base, _) = serve(vec![]);
    let work = tempfile::tempdir().unwrap();
    let cache = Cache::open(work.path()).unwrap();
    let url = format!("{base}/missing.deb");
    let err = cache
        .fetch(&url, &"1".repeat(64), None, &mut |_, _| {})
        .unwrap_err();
    assert!(
        matches!(&err, CacheError::HttpStatus { status: 404, url: u } if *u == url),
        "{err:?}"
    );
    assert!(err.to_string().contains("HTTP 404"));
    assert_nothing_stored(work.path());
}

#[test]
fn announced_size_different_from_the_pinned_one_is_refused_before_download() {
    let data = payload();
    let (base, _) = serve(vec![("/a", ok(&data))]);
    let work = tempfile::tempdir().unwrap();
    let cache = Cache::open(work.path()).unwrap();
    let err = cache
        .fetch(
            &format!("{base}/a"),
            &sha_hex(&data),
            Some(1234),
            &mut |_, _| {},
        )
        .unwrap_err();
    assert!(
        matches!(err, CacheError::SizeMismatch { expected: 1234, actual, .. } if actual == data.len() as u64),
        "{err:?}"
    );
    assert_nothing_stored(work.path());
}

#[test]
fn a_body_longer_than_pinned_is_cut_off() {
    let data = payload();
    let (base, _) = serve(vec![(
        "/a",
        Reply {
            status: "200 OK",
            body: data.clone(),
            content_length: false,
        },
    )]);
    let work = tempfile::tempdir().unwrap();
    let cache = Cache::open(work.path()).unwrap();
    let mut max_seen = 0;
    let err = cache
        .fetch(
            &format!("{base}/a"),
            &sha_hex(&data[..1000]),
            Some(1000),
            &mut |d, _| max_seen = max_seen.max(d),
        )
        .unwrap_err();
    assert!(
        matches!(err, CacheError::SizeMismatch { expected: 1000, .. }),
        "{err:?}"
    );
    assert!(max_seen <= 1000);
    assert_nothing_stored(work.path());
}

#[test]
fn connection_refused_is_a_transport_error() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let work = tempfile::tempdir().unwrap();
    let cache = Cache::open(work.path()).unwrap();
    let url = format!("http://127.0.0.1:{port}/a.deb");
    let err = cache
        .fetch(&url, &"2".repeat(64), None, &mut |_, _| {})
        .unwrap_err();
    assert!(
        matches!(&err, CacheError::Transport { url: u, .. } if *u == url),
        "{err:?}"
    );
    assert!(err.to_string().contains("pideploy cache import FILE"));
    assert_nothing_stored(work.path());
}

#[test]
fn unsupported_scheme_and_bad_hash_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let cache = Cache::open(work.path()).unwrap();
    let err = cache
        .fetch("ftp://x/a.deb", &"3".repeat(64), None, &mut |_, _| {})
        .unwrap_err();
    assert!(matches!(err, CacheError::UnsupportedUrl { .. }), "{err:?}");
    let err = cache
        .fetch("http://127.0.0.1:9/a", "abc", None, &mut |_, _| {})
        .unwrap_err();
    assert!(matches!(err, CacheError::InvalidSha256(_)), "{err:?}");
}
