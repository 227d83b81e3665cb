//! `medicalpro init`: makes the platform `serve` would make on its first
//! start (the embedded cluster and its keys in `DATA_DIR`, unless
//! `DATABASE_URL` is set; the central database, migrated), then exits.
//! With `serve`, the only command that creates anything where nothing is.

use std::process::ExitCode;

use serde::Serialize;

use super::output::print_json;
use crate::app::Environment;
use crate::config::DatabaseArgs;
use crate::migrations;
use crate::ops::Fleet;

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Initialised {
    /// The absolute `DATA_DIR`; `None` with `DATABASE_URL`.
    data_dir: Option<String>,
    central_database: String,
    central_schema_version: i64,
}

pub async fn run(args: InitArgs) -> anyhow::Result<ExitCode> {
    let environment = Environment::initialise(&args.db).await?;
    let settings = environment.settings.clone();
    let migrated = async {
        Fleet::open(&settings).await?.close().await;
        anyhow::Ok(())
    }
    .await;
    environment.stop();
    migrated?;
    let done = Initialised {
        data_dir: args.db.database_url.is_none().then(|| {
            std::path::absolute(&args.db.data_dir)
                .unwrap_or_else(|_| args.db.data_dir.clone())
                .display()
                .to_string()
        }),
        central_database: settings.prefix.central_database(),
        central_schema_version: migrations::latest_version(&migrations::CENTRAL),
    };
    if args.json {
        print_json(&done)?;
    } else {
        if let Some(dir) = &done.data_dir {
            println!("embedded cluster and keys in {dir}");
        }
        println!(
            "central database {} at migration {}",
            done.central_database, done.central_schema_version
        );
    }
    Ok(ExitCode::SUCCESS)
}
