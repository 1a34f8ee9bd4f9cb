//! `lethe generate-assets --out DIR` (hidden; `scripts/build-deb.sh` runs
//! it): man pages from the command-line definition (`clap_mangen`), one for
//! `lethe` and one per subcommand (`lethe-restore.1`, `lethe-erase-add.1`…),
//! and shell completions for bash, zsh and fish (`clap_complete`), so the
//! documentation shipped is the CLI that ships.

use clap::CommandFactory;
use std::path::Path;

pub fn run(out: &Path) -> anyhow::Result<i32> {
    let man = out.join("man");
    let completions = out.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;
    let mut cmd = crate::cli::Cli::command();
    cmd.build();
    let mut pages = 0;
    write_pages(&cmd, "lethe", &man, &mut pages)?;
    for (shell, name) in [
        (clap_complete::Shell::Bash, "lethe"),
        (clap_complete::Shell::Zsh, "_lethe"),
        (clap_complete::Shell::Fish, "lethe.fish"),
    ] {
        let mut f = std::fs::File::create(completions.join(name))?;
        clap_complete::generate(shell, &mut crate::cli::Cli::command(), "lethe", &mut f);
    }
    println!(
        "wrote {pages} man page(s) to {} and completions for bash, zsh and fish to {}",
        man.display(),
        completions.display()
    );
    Ok(crate::exit::OK)
}

/// `name.1` for `cmd`, then one page per visible subcommand, recursively.
fn write_pages(cmd: &clap::Command, name: &str, dir: &Path, n: &mut usize) -> anyhow::Result<()> {
    let page = cmd.clone().name(name.to_string());
    let mut buf = Vec::new();
    clap_mangen::Man::new(page).render(&mut buf)?;
    std::fs::write(dir.join(format!("{name}.1")), buf)?;
    *n += 1;
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir, n)?;
    }
    Ok(())
}
