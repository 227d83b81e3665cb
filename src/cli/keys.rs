//! `medicalpro keys rotate`.

use std::io::Read;
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;

use super::output::print_json;
use super::{with_fleet, Connect};
use crate::config::DatabaseArgs;
use crate::crypto::MasterKey;
use crate::embedded;
use crate::ops::keys::{self, KeyFile};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Re-seal every clinic database password with a new master key (one transaction).
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
    let (new_key, generated) = if args.new_key_stdin {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        (MasterKey::parse_setting(text.trim(), "the new key")?, false)
    } else {
        (MasterKey::generate(), true)
    };
    // The embedded mode keeps its key in DATA_DIR: it is replaced too.
    let key_file = (args.db.database_url.is_none() && args.db.master_key.is_none())
        .then(|| args.db.data_dir.join("master_key"));
    if key_file.is_some() {
        // Nothing is staged beside a key that does not exist.
        embedded::require(&args.db.data_dir, &["master_key"])?;
    }
    let staged = key_file
        .as_deref()
        .map(|path| KeyFile::prepare(path, &new_key))
        .transpose()?;
    let key = new_key.clone();
    let rotated = with_fleet(&args.db, Connect::Attach, |fleet| async move {
        Ok(keys::rotate(&fleet, &key).await?)
    })
    .await;
    let rotation = match (rotated, staged) {
        (Ok(rotation), Some(staged)) => {
            staged.commit()?;
            rotation
        }
        (Ok(rotation), None) => rotation,
        (Err(error), staged) => {
            if let Some(staged) = staged {
                staged.abandon();
            }
            return Err(error);
        }
    };
    let shown_key = generated.then(|| new_key.to_base64());
    if args.json {
        print_json(&json!({"resealed": rotation.resealed, "newKey": shown_key}))?;
    } else {
        if let Some(key) = &shown_key {
            println!("{key}");
        }
        eprintln!(
            "re-sealed {} clinic password(s) with the new key",
            rotation.resealed
        );
    }
    match key_file {
        Some(path) => eprintln!(
            "the new key replaced {}: restart the server so it uses it",
            path.display()
        ),
        None => eprintln!(
            "set MASTER_KEY to the new key on every server{}; then remove MASTER_KEY_PREVIOUS",
            if generated {
                " (printed above, shown only once)"
            } else {
                ""
            }
        ),
    }
    Ok(ExitCode::SUCCESS)
}
