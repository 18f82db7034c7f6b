//! Sends MIB mebibytes of zeros to `cat > /dev/null` on a host over pideploy's SSH transport and
//! prints the wall time (benches/transport.sh compares it, and its CPU, with OpenSSH's client).
//!
//!   send USER@HOST PORT IDENTITY KNOWN_HOSTS MIB

use std::io::Read;
use std::time::Instant;

use pideploy_transport::{SshOptions, SshTransport, Transport};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let [target, port, identity, known_hosts, mib] = a.as_slice() else {
        return Err("usage: send USER@HOST PORT IDENTITY KNOWN_HOSTS MIB".into());
    };
    let (user, host) = target.split_once('@').ok_or("USER@HOST")?;
    let mut o = SshOptions::new(host);
    o.user = Some(user.to_string());
    o.port = Some(port.parse()?);
    o.identities = vec![identity.into()];
    o.known_hosts = Some(known_hosts.into());
    let mut t = SshTransport::connect(&o)?;
    let bytes: u64 = mib.parse::<u64>()? << 20;
    let argv = ["sh", "-c", "cat > /dev/null"].map(String::from);
    let t0 = Instant::now();
    let code = t.exec(
        &argv,
        &mut std::io::repeat(0).take(bytes),
        &mut std::io::sink(),
        &mut std::io::stderr(),
    )?;
    if code != 0 {
        return Err(format!("cat exited with {code}").into());
    }
    println!("{:.3}", t0.elapsed().as_secs_f64());
    Ok(())
}
