use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    return_large_allocations_to_the_system();
    let _ = dotenvy::dotenv();
    let cli = medicalpro::cli::Cli::parse();
    init_logs();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(medicalpro::cli::run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Password hashing (Argon2id) takes 19 MiB per hash. glibc raises its
/// mmap threshold after the first such block is freed, so later ones come
/// from per-thread heaps that keep the memory: the server grew by about
/// 15 MiB per registration. A fixed threshold keeps every block of 1 MiB or
/// more in its own mapping, given back on free.
fn return_large_allocations_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// Logs go to stderr: readable lines on a terminal, one JSON object per
/// line otherwise (with the fields of the enclosing request span, such as
/// `request.id` and `route`). `RUST_LOG` filters; the default is `info` (PostgreSQL notices: `warn`).
fn init_logs() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx::postgres::notice=warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::io::stderr().is_terminal() {
        logs.init();
    } else {
        logs.json()
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true)
            .init();
    }
}
