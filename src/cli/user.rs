//! `medicalpro user create-super-admin`.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;

use super::output::print_json;
use super::{with_fleet, Connect};
use crate::config::DatabaseArgs;
use crate::platform::{self, PlatformError};

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a platform `super_admin` account (password from standard input, or a prompt).
    CreateSuperAdmin(SuperAdminArgs),
}

#[derive(Debug, clap::Args)]
pub struct SuperAdminArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    #[arg(long)]
    pub email: String,
    /// Print JSON instead of the bare id.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(command: UserCommand) -> anyhow::Result<ExitCode> {
    let UserCommand::CreateSuperAdmin(args) = command;
    let password = read_password()?;
    let email = args.email.clone();
    let user = with_fleet(&args.db, Connect::Open, |fleet| async move {
        platform::create_super_admin(&fleet.databases.central, &email, password)
            .await
            .map_err(|error| match error {
                PlatformError::Database(e) => anyhow::Error::new(e).context("central database"),
                other => anyhow::anyhow!("{other}"),
            })
    })
    .await?;
    if args.json {
        print_json(&json!({"id": user.id, "email": user.email, "role": "super_admin"}))?;
    } else {
        println!("{}", user.id);
    }
    Ok(ExitCode::SUCCESS)
}

/// One line from standard input; on a terminal, asks for it without echo.
fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let on_terminal = stdin.is_terminal();
    if on_terminal {
        eprint!("Password for the new super admin: ");
        std::io::stderr().flush()?;
    }
    let echo = on_terminal.then(EchoOff::new).flatten();
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    drop(echo);
    if on_terminal {
        eprintln!();
    }
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// Turns terminal echo off until dropped.
struct EchoOff(libc::termios);

impl EchoOff {
    fn new() -> Option<Self> {
        // SAFETY: termios is plain data; tcgetattr fills it for fd 0 or fails.
        unsafe {
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut saved) != 0 {
                return None;
            }
            let mut quiet = saved;
            quiet.c_lflag &= !libc::ECHO;
            (libc::tcsetattr(0, libc::TCSANOW, &quiet) == 0).then_some(EchoOff(saved))
        }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        // SAFETY: restores the settings read from the same descriptor.
        unsafe {
            libc::tcsetattr(0, libc::TCSANOW, &self.0);
        }
    }
}
