//! `lethe keygen`: writes an age identity and prints its public key. On a
//! terminal the key comes with the line saying where it goes, both on
//! stdout, so the two read together; piped, stdout is the key alone
//! (`lethe keygen > recipient.txt`) and the explanation goes to stderr.
//! `lethe keygen --pseudonym-key FILE` writes a pseudonym key instead and
//! prints the config line that names it.

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

/// `lethe keygen --pseudonym-key FILE`: writes the key (mode 0600, never
/// over an existing file) and prints, on stdout, the one config line that
/// names it, with the file's absolute path.
pub fn pseudonym_key(path: &Path) -> anyhow::Result<i32> {
    crate::erasure::pseudonym::keygen(path)?;
    let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let quoted = toml::Value::String(absolute.display().to_string()).to_string();
    eprintln!(
        "wrote pseudonym key to {} (mode 0600): keep it secret and back it up; every host that restores with \"pseudonym\" redactions needs the same key for the same pseudonyms. Add to the config (in [erasure], that is pseudonym_key_file = {quoted}):",
        path.display()
    );
    println!("erasure.pseudonym_key_file = {quoted}");
    Ok(crate::exit::OK)
}
