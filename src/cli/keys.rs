//! `medicalpro keys rotate`.

use std::io::Read;
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;

use super::output::print_json;
use super::{status, with_fleet, Connect};
use crate::config::DatabaseArgs;
use crate::crypto::MasterKey;
use crate::ops::keys;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Give every clinic role a new database password, sealed with a new master key (resumable).
    Rotate(RotateArgs),
}

#[derive(Debug, clap::Args)]
pub struct RotateArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Read the new key (base64 of 32 bytes) from standard input; without
    /// it, a new key is generated and printed once on standard output.
    #[arg(long)]
    pub new_key_stdin: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(command: KeysCommand) -> anyhow::Result<ExitCode> {
    let KeysCommand::Rotate(args) = command;
    let given = if args.new_key_stdin {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        Some(MasterKey::parse_setting(text.trim(), "the new key")?)
    } else {
        None
    };
    let (rotation, key_files, shown_key) =
        with_fleet(&args.db, Connect::Attach, |fleet| async move {
            let files = fleet.settings.keys.files().cloned();
            let (new_key, shown) = match (&files, given) {
                (Some(files), given) => {
                    let unfinished = keys::unfinished(&fleet).await?;
                    if unfinished.is_empty() {
                        let key = given.unwrap_or_else(MasterKey::generate);
                        files.install(&key)?;
                        (key, None)
                    } else if given.is_some() {
                        anyhow::bail!(
                            "the rotation of {} clinic(s) is unfinished: run `medicalpro keys rotate` without a new key to finish it first",
                            unfinished.len()
                        );
                    } else {
                        eprintln!(
                            "finishing the rotation of {} clinic(s) under the current key",
                            unfinished.len()
                        );
                        (fleet.settings.keys.current(), None)
                    }
                }
                (None, Some(key)) => (key, None),
                (None, None) => {
                    let key = MasterKey::generate();
                    let shown = key.to_base64();
                    (key, Some(shown))
                }
            };
            let rotation = keys::rotate(&fleet, &new_key).await?;
            Ok((rotation, files, shown))
        })
        .await?;
    if args.json {
        print_json(&json!({
            "rotated": rotation.rotated,
            "failed": rotation.failed,
            "newKey": shown_key,
        }))?;
    } else {
        if let Some(key) = &shown_key {
            println!("{key}");
        }
        eprintln!(
            "gave {} clinic role(s) a new password, sealed with the new key",
            rotation.rotated
        );
        for failure in &rotation.failed {
            eprintln!("FAILED {}: {}", failure.clinic_id, failure.error);
        }
    }
    match key_files {
        Some(files) => eprintln!(
            "the new key is in {}; the one it replaced is kept in {} (running servers read both)",
            files.current_path().display(),
            files.previous_path().display()
        ),
        None => eprintln!(
            "set MASTER_KEY to the new key on every server{}; then remove MASTER_KEY_PREVIOUS",
            if shown_key.is_some() {
                " (printed above, shown only once)"
            } else {
                ""
            }
        ),
    }
    if !rotation.failed.is_empty() {
        eprintln!("run `medicalpro keys rotate` again to finish the clinics that failed");
    }
    Ok(status(rotation.failed.is_empty()))
}
