//! `csfle`: create data keys, encrypt and decrypt values from the command line.
//!
//! Input and output are lines of Extended JSON. Exit status: 0 on success,
//! 1 when a line or an operation fails (`line N: <reason>` on stderr; lines
//! before it stay written), 2 on a usage or configuration error.

// Three libc calls std has no safe API for (`signal` below, `geteuid` and
// `fcntl` in `audit.rs`), each allowed where it is made, with its SAFETY
// note.
#![deny(unsafe_code)]

mod audit;
mod common;
mod csv_values;
mod export;
mod import;
mod keys;
mod migrate;
mod preview;
mod values;

use clap::{Parser, Subcommand};
use common::Failure;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "csfle",
    version,
    about = "MongoDB client-side field level encryption (FLE1 and Queryable Encryption)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Manage data keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Encrypt `{"v": <value>}` lines from stdin into `{"v": <subtype-6 binary>}` lines
    /// (FLE1, or Queryable Encryption; with --query-type range, `v` is a range
    /// query's `$and` expression, replaced by the encrypted expression).
    Encrypt(values::EncryptArgs),
    /// Decrypt every subtype-6 value (FLE1 and Queryable Encryption) in each
    /// Extended JSON document read from stdin.
    Decrypt(values::DecryptArgs),
    /// Print the documents a query finds, decrypted: the filter is
    /// encrypted by automatic encryption, one Extended JSON document per
    /// line (relaxed by default), 20 at most by default.
    Find(export::FindArgs),
    /// Export a query's documents, decrypted (or not: --keep-encrypted), as
    /// mongoexport does: JSON lines, a JSON array or CSV; a summary line on
    /// stderr.
    Export(export::ExportArgs),
    /// Import JSON lines, a JSON array or CSV into a collection, encrypting
    /// what its schema encrypts, as mongoimport does; a summary line on
    /// stderr.
    Import(import::ImportArgs),
    /// Show the command automatic encryption would send: one command per line
    /// in, the rewritten command (compact canonical Extended JSON) out.
    Preview(preview::PreviewArgs),
    /// Encrypt, re-encrypt or decrypt a whole collection to match a schema:
    /// resumable, parallel, verified. Prints one JSON summary line.
    Migrate(migrate::MigrateArgs),
}

fn main() -> ExitCode {
    ignore_sigxfsz();
    let cli = Cli::parse();
    // A migration runs workers in parallel; everything else is sequential.
    let runtime = match &cli.command {
        Command::Migrate(_) => tokio::runtime::Builder::new_multi_thread(),
        _ => tokio::runtime::Builder::new_current_thread(),
    }
    .enable_all()
    .build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async move {
        let command = async move {
            match cli.command {
            Command::Keys(keys) => keys.run().await,
            Command::Encrypt(args) => values::encrypt(args).await,
            Command::Decrypt(args) => values::decrypt(args).await,
            Command::Preview(args) => preview::preview(args).await,
            Command::Migrate(args) => migrate::migrate(args).await,
            Command::Find(args) => export::find(args).await,
            Command::Export(args) => export::export(args).await,
            Command::Import(args) => import::import(args).await,
            }
        };
        // SIGINT or SIGTERM ends the command by dropping it: what it holds
        // is cleaned up as on any error (an export's plaintext temporary
        // file is removed, leases run out), instead of the process dying
        // with it in place.
        let result = tokio::select! {
            result = command => result,
            signal = interrupted() => Err(Failure::Runtime(format!("error: interrupted ({signal})"))),
        };
        common::shut_down_clients().await;
        result
    });
    // Not waiting for a blocking task still running (a read of stdin):
    // the command is over.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(m)) => {
            eprintln!("{m}");
            ExitCode::from(1)
        }
    }
}

/// Resolves when the process receives SIGINT or SIGTERM (never, if the
/// handlers cannot be installed: the default disposition then applies).
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

/// A write past the file size limit (`ulimit -f`) kills the process with
/// `SIGXFSZ` by default, silently, possibly mid-record. Ignored, the write
/// fails with `EFBIG` instead and the command reports it as any write
/// error (the audit log, an export file).
#[allow(unsafe_code)]
fn ignore_sigxfsz() {
    // SAFETY: `signal` with `SIG_IGN` installs no handler code, so nothing
    // runs in signal context; it is called first in `main`, before any
    // other thread exists. The previous disposition is not needed.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}
