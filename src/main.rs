//! The `pideploy` binary: all behaviour lives in the library; this only hands over the exit code.

fn main() {
    std::process::exit(pideploy::cli::run());
}
