//! `lethe keygen`

use std::path::Path;

pub fn run(output: Option<&Path>) -> anyhow::Result<i32> {
    let path = output.unwrap_or(Path::new("lethe-identity.key"));
    let public = crate::crypto::keygen(path)?;
    eprintln!(
        "wrote age identity to {} (mode 0600): keep it only on hosts that restore",
        path.display()
    );
    eprintln!("add the public key to encryption.recipients:");
    println!("{public}");
    Ok(crate::exit::OK)
}
