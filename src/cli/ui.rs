//! Talking to the person: messages on stderr, progress bars on a terminal, plain lines elsewhere.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Output settings from `-v`/`-q`.
#[derive(Debug, Clone, Copy)]
pub struct Ui {
    /// `-q`: only errors and results.
    pub quiet: bool,
    /// `-v` count.
    pub verbose: u8,
    tty: bool,
}

impl Ui {
    /// Settings for this process.
    pub fn new(quiet: bool, verbose: u8) -> Self {
        Ui {
            quiet,
            verbose,
            tty: std::io::stderr().is_terminal(),
        }
    }

    /// A progress line (suppressed by `-q`).
    pub fn info(&self, msg: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("{}", msg.as_ref());
        }
    }

    /// Detail shown with `-v`.
    pub fn detail(&self, msg: impl AsRef<str>) {
        if self.verbose > 0 && !self.quiet {
            eprintln!("  {}", msg.as_ref());
        }
    }

    /// A byte-counting progress bar; without a terminal it prints a line every few seconds instead.
    pub fn bar(&self, label: &str, total: Option<u64>) -> Bar {
        let pb = if self.tty && !self.quiet {
            let pb = match total {
                Some(t) => ProgressBar::new(t),
                None => ProgressBar::new_spinner(),
            };
            let style = ProgressStyle::with_template(
                "{msg:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            pb.set_style(style);
            pb.set_message(label.to_string());
            Some(pb)
        } else {
            None
        };
        Bar {
            pb,
            label: label.to_string(),
            quiet: self.quiet,
            started: Instant::now(),
            last: Instant::now(),
        }
    }
}

/// One stage's progress.
pub struct Bar {
    pb: Option<ProgressBar>,
    label: String,
    quiet: bool,
    started: Instant,
    last: Instant,
}

impl Bar {
    /// Sets position (and total, when it became known).
    pub fn set(&mut self, done: u64, total: Option<u64>) {
        match &self.pb {
            Some(pb) => {
                if let Some(t) = total {
                    pb.set_length(t);
                }
                pb.set_position(done);
            }
            None if !self.quiet && self.last.elapsed() > Duration::from_secs(5) => {
                self.last = Instant::now();
                match total {
                    Some(t) if t > 0 => {
                        eprintln!("{}: {} / {} MiB", self.label, done >> 20, t >> 20)
                    }
                    _ => eprintln!("{}: {} MiB", self.label, done >> 20),
                }
            }
            None => {}
        }
    }

    /// Ends the bar and returns how long the stage took.
    pub fn finish(self) -> Duration {
        if let Some(pb) = &self.pb {
            pb.finish_and_clear();
        }
        self.started.elapsed()
    }
}
