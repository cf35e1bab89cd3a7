//! The `keymgr` command-line tool: secrets in any keymgr backend and LUKS
//! volumes with cryptsetup's options. The library it drives is the `keymgr`
//! facade (backends) and the `luks` crate (volumes); everything that is only
//! the tool's (argument parsing, prompts, progress bars, logging set-up, the
//! default embedded store's location) lives here under `cli/`.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
