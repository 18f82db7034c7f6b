//! How the CLI reaches a target: the connection options every target command shares, and the
//! connector the deployer uses to open each connection it needs (the magic-rollback confirmation
//! and the wait for a reboot each need a new one).

use std::io::{self, BufRead, IsTerminal};
use std::path::PathBuf;

use clap::Args;
use pideploy_transport::{LocalTransport, SshOptions, SshTransport, Transport};

use pideploy_deploy::fleet::run::Reach;
use pideploy_deploy::run::Connect;
use pideploy_deploy::{AgentCall, DeployError};

/// SSH and target-root options (everything but the target itself).
#[derive(Args, Debug, Clone, Default)]
pub struct ConnOpts {
    /// Identity file for SSH (repeatable); default: ssh-agent, then ~/.ssh/id_*.
    #[arg(long, short = 'i', value_name = "FILE")]
    pub identity: Vec<PathBuf>,
    /// known_hosts file (default ~/.ssh/known_hosts).
    #[arg(long, value_name = "FILE")]
    pub known_hosts: Option<PathBuf>,
    /// Trust an unknown host key on first use (a changed key is never accepted).
    #[arg(long)]
    pub accept_new: bool,
    /// Apply to this directory on the target instead of `/` (a mounted card, or a test root).
    #[arg(long, value_name = "DIR")]
    pub root: Option<String>,
    /// Ask once for the target user's sudo password when sudo there wants one, and feed it to
    /// `sudo -S` on stdin (never in a command line or a log). On a terminal it is prompted for
    /// without echo; otherwise the first line of stdin is read as the password (for scripts:
    /// `pass show pi | pideploy switch ... --ask-sudo-password`). Without this flag sudo runs
    /// with `-n`, and a target that wants a password is an error.
    #[arg(long)]
    pub ask_sudo_password: bool,
}

/// Where and how to reach one target.
#[derive(Args, Debug, Clone)]
pub struct Conn {
    /// `user@host[:port]` (ssh), or `local:DIR` to apply to a root directory on this machine.
    #[arg(long, short = 't', value_name = "TARGET")]
    pub target: String,
    #[command(flatten)]
    pub opts: ConnOpts,
}

/// Opens connections to one target, the same way every time.
#[derive(Clone)]
pub struct Connector {
    target: String,
    opts: ConnOpts,
    /// The sudo password, asked for and checked once by [`Connector::new`]; every connection
    /// runs the agent the same way.
    sudo_password: Option<String>,
}

// By hand, so that the password never reaches a `{:?}`.
impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("target", &self.target)
            .field("opts", &self.opts)
            .field(
                "sudo_password",
                &self.sudo_password.as_ref().map(|_| "<hidden>"),
            )
            .finish()
    }
}

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

impl Connector {
    /// Checks the options. Nothing is contacted, except with `--ask-sudo-password` on a target
    /// that uses sudo: then it connects once to learn whether sudo wants a password, asks for it
    /// (only then), and checks it with `sudo -S -- true` before anything else is done.
    pub fn new(target: &str, opts: &ConnOpts) -> Res<Self> {
        let local = target.starts_with("local:");
        if local && opts.root.is_some() {
            return Err(
                "--root is for SSH targets; with local:DIR the directory is the root".into(),
            );
        }
        if local && opts.ask_sudo_password {
            return Err(
                "--ask-sudo-password is for SSH targets; local:DIR is applied without sudo".into(),
            );
        }
        if let Some(r) = &opts.root {
            if !r.starts_with('/') {
                return Err(format!("--root {r}: give an absolute path on the target").into());
            }
        }
        if !local {
            SshOptions::parse_target(target)?;
        }
        let mut c = Connector {
            target: target.to_string(),
            opts: opts.clone(),
            sudo_password: None,
        };
        if opts.ask_sudo_password && c.agent()?.sudo {
            c.sudo_password = c.ask_and_check_sudo_password()?;
        }
        Ok(c)
    }

    fn ssh_options(&self) -> Result<SshOptions, DeployError> {
        let mut o = SshOptions::parse_target(&self.target)?;
        o.identities = self.opts.identity.clone();
        if self.opts.known_hosts.is_some() {
            o.known_hosts = self.opts.known_hosts.clone();
        }
        o.accept_new = self.opts.accept_new;
        Ok(o)
    }

    /// How the agent runs on this target: its root, and sudo unless the login is root.
    pub fn agent(&self) -> Res<AgentCall> {
        if let Some(dir) = self.target.strip_prefix("local:") {
            let root =
                std::fs::canonicalize(dir).map_err(|e| format!("--target {}: {e}", self.target))?;
            return Ok(AgentCall::plain(root.display().to_string()));
        }
        let o = self.ssh_options()?;
        Ok(AgentCall {
            root: self.opts.root.clone().unwrap_or_else(|| "/".into()),
            sudo: o.user.as_deref() != Some("root"),
            sudo_password: self.sudo_password.clone(),
        })
    }

    /// `None` when sudo on the target needs no password (it must then not be fed one: sudo
    /// would leave the line on the command's stdin); otherwise the password, asked for once and
    /// accepted by the target's sudo.
    fn ask_and_check_sudo_password(&self) -> Res<Option<String>> {
        let mut t = self.connect()?;
        let who = t.describe();
        // `sudo -n -- true`, or with the password `sudo -S -p '' -- true`: exactly how the agent runs.
        let probe = |t: &mut dyn Transport, password: Option<&String>| -> Res<(i32, String)> {
            let call = AgentCall {
                root: "/".into(),
                sudo: true,
                sudo_password: password.cloned(),
            };
            let mut argv = call.sudo_prefix();
            argv.push("true".into());
            let mut err = Vec::new();
            let code = t.exec(
                &argv,
                &mut call.stdin(&mut io::empty()),
                &mut io::sink(),
                &mut err,
            )?;
            Ok((code, String::from_utf8_lossy(&err).into_owned()))
        };
        let (code, err) = probe(t.as_mut(), None)?;
        if code == 0 {
            return Ok(None);
        }
        if code == 127 {
            return Err(sudo_refusal(&who, code, &err).into());
        }
        let o = self.ssh_options()?;
        let user = o
            .user
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_default();
        let password = read_password(&format!("[sudo] password for {user}@{}: ", o.host))?;
        let (code, err) = probe(t.as_mut(), Some(&password))?;
        if code == 0 {
            return Ok(Some(password));
        }
        Err(sudo_refusal(&who, code, &err).into())
    }
}

/// One line for a failed `sudo -- true` (exit `code`), from sudo's own error output (which never
/// echoes the password).
fn sudo_refusal(who: &str, code: i32, err: &str) -> String {
    let rejected = [
        "incorrect password",
        "Sorry, try again",
        "no password was provided",
    ];
    if rejected.iter().any(|r| err.contains(r)) {
        return format!(
            "sudo on {who} rejected the password; run again and type the deploy user's password \
             (or give it passwordless sudo with NOPASSWD and drop --ask-sudo-password)"
        );
    }
    let last = err
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no error output");
    if code == 127 {
        return format!("sudo is not installed on {who} ({last}); install it, or deploy as root");
    }
    format!(
        "sudo on {who} refused to run commands for the deploy user ({last}); allow it in /etc/sudoers.d, or deploy as root"
    )
}

/// The password: prompted for without echo on the terminal, else the first line of stdin.
fn read_password(prompt: &str) -> Res<String> {
    let line = if io::stdin().is_terminal() {
        rpassword::prompt_password(prompt)
            .map_err(|e| format!("reading the sudo password from the terminal: {e}"))?
    } else {
        let mut line = String::new();
        io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("reading the sudo password from stdin: {e}"))?;
        line
    };
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        return Err("--ask-sudo-password: no password given (stdin is not a terminal, so its first line is read; pipe the password in)".into());
    }
    Ok(password)
}

impl Connect for Connector {
    fn connect(&self) -> Result<Box<dyn Transport>, DeployError> {
        if self.target.starts_with("local:") {
            return Ok(Box::new(LocalTransport::new()));
        }
        Ok(Box::new(SshTransport::connect(&self.ssh_options()?)?))
    }

    fn describe(&self) -> String {
        self.target.clone()
    }
}

impl Reach for Connector {
    fn agent(&self) -> Res<AgentCall> {
        Connector::agent(self)
    }
}

/// Connects once: the transport and the agent call for it.
pub fn connect(target: &str, opts: &ConnOpts) -> Res<(Box<dyn Transport>, AgentCall)> {
    let c = Connector::new(target, opts)?;
    let call = c.agent()?;
    Ok((c.connect()?, call))
}
