//! The command-line face: argument parsing, messages, progress and exit codes. Only this module prints.

mod cmd_build;
mod cmd_deploy;
mod cmd_doctor;
mod cmd_fleet;
mod cmd_image;
mod cmd_lock;
mod cmd_logs;
mod cmd_qemu;
mod conn;
mod context;
mod ui;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use context::Context;
pub use ui::Ui;

/// Result of a command: `Ok(exit code)` or an error printed as one line.
pub type CmdResult = Result<i32, Box<dyn std::error::Error + Send + Sync>>;

/// Exit code for usage errors.
pub const EXIT_USAGE: i32 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "pideploy",
    version,
    about = "Declarative, reproducible Raspberry Pi 5 images and atomic SSH deploys"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    cmd: Command,
}

/// Options every command takes.
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Artifact cache (kernel, firmware, .deb files by sha256).
    #[arg(long, global = true, env = "PIDEPLOY_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Local store root (store paths and their registrations).
    #[arg(long, global = true, env = "PIDEPLOY_STORE_DIR", value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// More detail.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors and results.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

/// Which config and board a command works on.
#[derive(Args, Debug, Clone)]
pub struct Target {
    /// Host config file; without it the embedded default config is used.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Board name (rpi5, qemu-aarch64) or path to a board .toml; overrides the config's board.
    #[arg(long, short = 'b', value_name = "BOARD")]
    pub board: Option<String>,
    /// Lock file; default: pideploy.lock next to the config (or in the current directory).
    #[arg(long, value_name = "FILE")]
    pub lock: Option<PathBuf>,
    /// With the default config: a public key file to authorize for user `pi` (repeatable).
    #[arg(long, value_name = "FILE")]
    pub authorized_key: Vec<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write a commented pi.toml to start from.
    Init(cmd_build::InitArgs),
    /// Resolve the board's and config's packages from apt indexes and pin them in pideploy.lock.
    Lock(cmd_lock::LockArgs),
    /// Show which locked packages the archives have newer versions of (security ones marked).
    Outdated(cmd_lock::OutdatedArgs),
    /// Download what the lock file pins into the cache (verifying sha256).
    Fetch(cmd_lock::FetchArgs),
    /// Manage the artifact cache.
    #[command(subcommand)]
    Cache(cmd_lock::CacheCmd),
    /// Build the system closure and print its toplevel store path.
    Build(cmd_build::BuildArgs),
    /// Show a store path's references, size and hash.
    PathInfo(cmd_build::PathArgs),
    /// List the closure of a store path (dependencies first).
    Closure(cmd_build::PathArgs),
    /// Build a bootable SD image (.img, .img.xz or .img.zst).
    Image(cmd_image::ImageArgs),
    /// Show what an image holds: partitions, boot files, generations.
    Inspect(cmd_image::InspectArgs),
    /// Write an image to a disk (or file), skipping holes, and verify it.
    Flash(cmd_image::FlashArgs),
    /// Boot an image under QEMU the way the Pi firmware would select its boot entry.
    Qemu(cmd_qemu::QemuArgs),
    /// Build, copy and activate a new generation on a target over SSH.
    Switch(cmd_deploy::DeployArgs),
    /// Like switch, but only make it the default for the next boot.
    Boot(cmd_deploy::DeployArgs),
    /// Activate without making it the default (a reboot returns to the default).
    Test(cmd_deploy::DeployArgs),
    /// Print what a switch would change.
    DryActivate(cmd_deploy::DryActivateArgs),
    /// List a target's generations.
    Generations(cmd_deploy::GenerationsArgs),
    /// Compare two generations on a target, or its running system with the local build.
    Diff(cmd_deploy::DiffArgs),
    /// Return a target to the previous generation (or --to N).
    Rollback(cmd_deploy::RollbackArgs),
    /// Remove old generations and unreferenced store paths (on a target, or the local store).
    Gc(cmd_deploy::GcArgs),
    /// Check this machine, a target (--target) or an image for what pideploy needs; ✗ lines
    /// say how to fix them, and any ✗ makes the exit code 1.
    Doctor(cmd_doctor::DoctorArgs),
    /// Show a target's systemd journal (all of it, or one unit's), optionally following it.
    Logs(cmd_logs::LogsArgs),
}

/// Runs the command line and returns the process exit code.
pub fn run() -> i32 {
    let cli = Cli::parse();
    let ui = Ui::new(cli.global.quiet, cli.global.verbose);
    let result = match cli.cmd {
        Command::Init(a) => cmd_build::init(&ui, a),
        Command::Lock(a) => cmd_lock::lock(&ui, &cli.global, a),
        Command::Outdated(a) => cmd_lock::outdated(&ui, &cli.global, a),
        Command::Fetch(a) => cmd_lock::fetch(&ui, &cli.global, a),
        Command::Cache(c) => cmd_lock::cache(&ui, &cli.global, c),
        Command::Build(a) => cmd_build::build(&ui, &cli.global, a),
        Command::PathInfo(a) => cmd_build::path_info(&ui, &cli.global, a),
        Command::Closure(a) => cmd_build::closure(&ui, &cli.global, a),
        Command::Image(a) => cmd_image::image(&ui, &cli.global, a),
        Command::Inspect(a) => cmd_image::inspect(&ui, a),
        Command::Flash(a) => cmd_image::flash(&ui, a),
        Command::Qemu(a) => cmd_qemu::qemu(&ui, a),
        Command::Switch(a) => {
            cmd_deploy::deploy(&ui, &cli.global, a, pideploy_deploy::Mode::Switch)
        }
        Command::Boot(a) => cmd_deploy::deploy(&ui, &cli.global, a, pideploy_deploy::Mode::Boot),
        Command::Test(a) => cmd_deploy::deploy(&ui, &cli.global, a, pideploy_deploy::Mode::Test),
        Command::DryActivate(a) => cmd_deploy::dry_activate(&ui, &cli.global, a),
        Command::Generations(a) => cmd_deploy::generations(&ui, a),
        Command::Diff(a) => cmd_deploy::diff_cmd(&ui, &cli.global, a),
        Command::Rollback(a) => cmd_deploy::rollback(&ui, a),
        Command::Gc(a) => cmd_deploy::gc(&ui, &cli.global, a),
        Command::Doctor(a) => cmd_doctor::doctor(&ui, &cli.global, a),
        Command::Logs(a) => cmd_logs::logs(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // What the target said (an activation's log) goes above the one error line.
            if let Some(pideploy_deploy::DeployError::Agent { output, .. }) = e.downcast_ref() {
                let lines: Vec<&str> = output.lines().collect();
                if lines.len() > 1 {
                    for l in &lines[..lines.len() - 1] {
                        eprintln!("  | {l}");
                    }
                }
            }
            eprintln!("pideploy: error: {}", error_line(e.as_ref()));
            1
        }
    }
}

/// The error and its causes on one line, without repeating a cause its parent already quotes.
fn error_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut line = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !line.contains(&s) {
            line += &format!(": {s}");
        }
        cur = c.source();
    }
    line
}
