//! Hostile config and board files: non-regular or huge files, thousands of broken rules, and
//! seeded random edits. Each is one error (or a config), never a hang, a panic or megabytes of
//! message.

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use pideploy_config::{Board, ConfigError, HostConfig, STARTER_TOML};

fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .expect("did not finish in time (reading without end?)")
}

#[test]
fn config_and_board_files_must_be_small_regular_files() {
    let work = tempfile::tempdir().unwrap();
    let fifo = work.path().join("pi.toml");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let big = work.path().join("big.toml");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(pideploy_config::MAX_CONFIG_BYTES + 1)
        .unwrap();
    for path in [
        Path::new("/dev/zero").to_path_buf(),
        fifo.clone(),
        big.clone(),
    ] {
        let shown = path.display().to_string();
        let p = path.clone();
        let err = within(10, move || HostConfig::load(&p)).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{shown}: {err}");
        assert!(err.to_string().contains("regular file"), "{err}");
    }
    let board = big.with_extension("board.toml");
    std::fs::rename(&big, &board).unwrap();
    let err = within(10, move || Board::load(board.to_str().unwrap())).unwrap_err();
    assert!(err.to_string().contains("regular file"), "{err}");
}

#[test]
fn thousands_of_broken_rules_give_a_bounded_message() {
    let bad: Vec<String> = (0..10_000).map(|i| format!("\"Bad_{i}!\"")).collect();
    let text = STARTER_TOML.replacen(
        "packages = []",
        &format!("packages = [{}]", bad.join(", ")),
        1,
    );
    let err = HostConfig::from_toml_str(&text, "pi.toml", Path::new(".")).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("… and 9980 more"), "{msg}");
    assert!(msg.len() < 10_000, "{} bytes", msg.len());
    let long = format!("hostname = \"{}\"\n", "h".repeat(1 << 20));
    let text = STARTER_TOML.replacen("hostname", "#hostname", 1);
    let err = HostConfig::from_toml_str(&format!("{long}{text}"), "pi.toml", Path::new("."))
        .unwrap_err()
        .to_string();
    assert!(err.len() < 2000, "{} bytes", err.len());
}

/// xorshift64*: deterministic, dependency-free randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn mutate(rng: &mut Rng, text: &str) -> String {
    let alphabet = b"\"'=[]{}.,#\n \\0123456789abcxyz-_:/";
    let mut bytes = text.as_bytes().to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(bytes.len());
        let c = alphabet[rng.below(alphabet.len())];
        match rng.below(3) {
            0 => bytes[at] = c,
            1 => bytes.insert(at, c),
            _ => {
                bytes.remove(at);
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn mutated_configs_and_boards_never_panic() {
    HostConfig::from_toml_str(STARTER_TOML, "pi.toml", Path::new(".")).unwrap();
    let board = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../boards/rpi5.toml"),
    )
    .unwrap();
    Board::from_toml_str(&board, "rpi5.toml").unwrap();
    let mut rng = Rng(0xC0F1);
    let (mut ok_host, mut ok_board) = (0, 0);
    for _ in 0..1500 {
        let start = Instant::now();
        let text = mutate(&mut rng, STARTER_TOML);
        ok_host += usize::from(HostConfig::from_toml_str(&text, "pi.toml", Path::new(".")).is_ok());
        let text = mutate(&mut rng, &board);
        ok_board += usize::from(Board::from_toml_str(&text, "rpi5.toml").is_ok());
        assert!(start.elapsed() < Duration::from_secs(1));
    }
    assert!(ok_host > 0 && ok_board > 0);
}
