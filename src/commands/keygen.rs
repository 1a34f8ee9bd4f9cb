//! `lethe keygen`: writes an age identity and prints its public key. On a
//! terminal the key comes with the line saying where it goes, both on
//! stdout, so the two read together; piped, stdout is the key alone
//! (`lethe keygen > recipient.txt`) and the explanation goes to stderr.

use std::io::IsTerminal;
use std::path::Path;

pub fn run(output: Option<&Path>) -> anyhow::Result<i32> {
    let path = output.unwrap_or(Path::new("lethe-identity.key"));
    let public = crate::crypto::keygen(path)?;
    eprintln!(
        "wrote age identity to {} (mode 0600): keep it only on hosts that restore",
        path.display()
    );
    let hint = "public key: add it to encryption.recipients in the config of every host that takes snapshots:";
    if std::io::stdout().is_terminal() {
        println!("{hint}\n\n    {public}\n");
    } else {
        eprintln!("{hint} (on stdout)");
        println!("{public}");
    }
    Ok(crate::exit::OK)
}
