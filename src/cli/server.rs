//! `medicalpro server ...` (add, list, drain the PostgreSQL servers that
//! hold clinic databases) and `medicalpro clinic move` (see `ops::servers`
//! and `ops::moves`).

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use uuid::Uuid;

use super::output::{human_bytes, print_json, Table};
use super::{with_fleet, Connect};
use crate::config::{DatabaseArgs, Tier};
use crate::ops::moves::{self, MoveOptions, Step};
use crate::ops::servers;
use crate::tenancy::naming::ClinicId;

#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// Register another PostgreSQL server for clinic databases (it must
    /// accept DATABASE_URL's admin user and password).
    Add(AddArgs),
    /// List the servers: clinics, size, sessions in use, room left.
    List(ListArgs),
    /// Place no new clinic on a server (`is_active = false`); lists the
    /// clinics still on it, to move with `clinic move`.
    Drain(DrainArgs),
}

#[derive(Debug, clap::Args)]
pub struct AddArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// A unique name for the server.
    #[arg(long)]
    pub name: String,
    /// Its admin URL: postgres://admin:password@host:port/postgres (only
    /// host and port are stored).
    #[arg(long)]
    pub url: String,
    /// How many clinics it may hold.
    #[arg(long, default_value_t = 10_000)]
    pub max_clinics: i32,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct DrainArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// The server's id or name.
    pub server: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct MoveArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// The clinic's id.
    pub id: Uuid,
    /// The target server's id or name.
    #[arg(long, required_unless_present = "tier")]
    pub server: Option<String>,
    /// The target tier (see `ops::moves::tier`): alone, on the clinic's
    /// server; with --server, the tier it ends on there (by default the
    /// one it is on).
    #[arg(long)]
    pub tier: Option<Tier>,
    /// Drop the source database and roles once moved (default: kept
    /// renamed `<prefix>_moved_<move id>`, its role NOLOGIN).
    #[arg(long)]
    pub drop_source: bool,
    /// How long the initial copy may take, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub sync_timeout_secs: u64,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(command: ServerCommand) -> anyhow::Result<ExitCode> {
    match command {
        ServerCommand::Add(args) => add(args).await,
        ServerCommand::List(args) => list(args).await,
        ServerCommand::Drain(args) => drain(args).await,
    }
}

async fn add(args: AddArgs) -> anyhow::Result<ExitCode> {
    let (name, url, max) = (args.name.clone(), args.url.clone(), args.max_clinics);
    let added = with_fleet(&args.db, Connect::Open, |fleet| async move {
        servers::add(&fleet, &name, &url, max).await
    })
    .await?;
    if args.json {
        print_json(&added)?;
    } else {
        println!(
            "server {} added: {} at {}:{}, up to {} clinics",
            added.id, added.name, added.host, added.port, added.max_clinics
        );
        if added.wal_level != "logical" {
            eprintln!(
                "note: its wal_level is {}; moving clinics to or from it needs wal_level = logical",
                added.wal_level
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let listed = with_fleet(&args.db, Connect::Attach, |fleet| async move {
        servers::list(&fleet).await
    })
    .await?;
    if args.json {
        print_json(&listed)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(&[
        "ID",
        "NAME",
        "ADDRESS",
        "STATUS",
        "CLINICS",
        "ROOM",
        "SIZE",
        "CONNECTIONS",
    ]);
    for server in &listed {
        table.row(vec![
            server.id.to_string(),
            server.name.clone(),
            format!("{}:{}", server.host, server.port),
            if server.is_active {
                "active"
            } else {
                "drained"
            }
            .into(),
            format!("{}/{}", server.clinics, server.max_clinics),
            server.room.to_string(),
            human_bytes(server.size_bytes),
            match (server.connections, server.max_connections) {
                (Some(used), Some(max)) => format!("{used}/{max}"),
                _ => "unreachable".into(),
            },
        ]);
    }
    table.print();
    for server in listed.iter().filter(|s| s.error.is_some()) {
        eprintln!(
            "{}: {}",
            server.name,
            server.error.as_deref().unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn drain(args: DrainArgs) -> anyhow::Result<ExitCode> {
    let server = args.server.clone();
    let drained = with_fleet(&args.db, Connect::Attach, |fleet| async move {
        servers::drain(&fleet, &server).await
    })
    .await?;
    if args.json {
        print_json(&drained)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("server {} drained: no new clinic goes there", drained.name);
    if drained.remaining.is_empty() {
        println!("no clinic remains on it");
    } else {
        println!(
            "{} clinic(s) remain on it (move each with `medicalpro clinic move ID --server S`):",
            drained.remaining.len()
        );
        for clinic in &drained.remaining {
            println!("  {}  {}", clinic.id, clinic.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// For tests only: `MEDICALPRO_MOVE_KILL_AFTER=<step>` (a step of
/// `ops::moves::Step`, such as `frozen`) makes the move send its own
/// process SIGKILL right after that step is recorded, to prove a move
/// killed anywhere is rolled back or finished by the next run.
const KILL_AFTER: &str = "MEDICALPRO_MOVE_KILL_AFTER";

fn kill_after() -> anyhow::Result<Option<Step>> {
    match std::env::var(KILL_AFTER) {
        Ok(name) => Step::parse(&name)
            .map(Some)
            .ok_or_else(|| anyhow::anyhow!("{KILL_AFTER}: no move step is named {name:?}")),
        Err(_) => Ok(None),
    }
}

pub async fn move_clinic(args: MoveArgs) -> anyhow::Result<ExitCode> {
    let server = match (args.server, args.tier) {
        (Some(server), _) => server,
        (None, Some(tier)) => {
            return move_to_tier(&args.db, ClinicId(args.id), tier, args.json).await
        }
        (None, None) => anyhow::bail!("--server or --tier is required"),
    };
    let mut options = MoveOptions::new(ClinicId(args.id), &server);
    options.drop_source = args.drop_source;
    options.sync_timeout = Duration::from_secs(args.sync_timeout_secs);
    options.kill_after = kill_after()?;
    let tier = args.tier;
    let relocation = with_fleet(&args.db, Connect::Attach, |fleet| async move {
        moves::tier::move_across_servers(&fleet, &options, tier).await
    })
    .await?;
    if args.json {
        print_json(&relocation)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(moved) = &relocation.to_dedicated {
        print_tier_move(moved);
    }
    match &relocation.moved {
        Some(moved) => print_server_move(moved),
        None => println!("clinic {} is on server {server}", args.id),
    }
    if let Some(moved) = &relocation.to_tier {
        print_tier_move(moved);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_server_move(moved: &moves::Moved) {
    if moved.rolled_back_earlier {
        println!("an interrupted earlier move was rolled back first");
    }
    if moved.finished_earlier {
        println!(
            "clinic {} was already switched to {} by an interrupted move: finished it",
            moved.clinic_id, moved.to_server
        );
    } else {
        let rows: i64 = moved.rows.values().sum();
        println!(
            "clinic {} moved from {} to {} in {:.1} s: {rows} rows, audit chain head {}, writes frozen {} ms",
            moved.clinic_id,
            moved.from_server.as_deref().unwrap_or("?"),
            moved.to_server,
            moved.seconds,
            moved
                .audit_head
                .map_or_else(|| "none".into(), |id| id.to_string()),
            moved.freeze_ms
        );
    }
    match &moved.source_kept_as {
        Some(kept) => println!("the source database is kept as {kept} (its role cannot log in); drop it when no longer needed"),
        None => println!("the source database and roles were dropped"),
    }
}

async fn move_to_tier(
    db: &DatabaseArgs,
    id: ClinicId,
    tier: Tier,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let moved = with_fleet(db, Connect::Attach, |fleet| async move {
        moves::tier::move_to_tier(&fleet, id, tier).await
    })
    .await?;
    if json {
        print_json(&moved)?;
    } else {
        print_tier_move(&moved);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_tier_move(moved: &moves::tier::TierMoved) {
    if moved.already {
        println!(
            "clinic {} is on the {} tier (what an interrupted move left is cleaned up)",
            moved.clinic_id,
            moved.to.as_str()
        );
    } else {
        let rows: i64 = moved.rows.values().sum();
        println!(
            "clinic {} moved from the {} tier to the {} tier: {rows} rows, audit chain head {}, writes frozen {} ms",
            moved.clinic_id,
            moved.from.as_str(),
            moved.to.as_str(),
            moved
                .audit_head
                .as_ref()
                .map_or_else(|| "none".into(), |(id, _)| id.to_string()),
            moved.freeze_ms
        );
    }
}
