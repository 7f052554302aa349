//! `upshift digest | snapshot | restore | diff`: the verifier on its own.
//!
//! Exit status of these commands: 0 success (diff: the data is equal); 1 differences found
//! (diff, and restore when differences remain); 2 bad input (URL, unreadable or damaged
//! snapshot); 3 blocked before reading (writers still active, not enough disk); 4 any other
//! failure (connection, command, local file).

use std::path::PathBuf;

use clap::Args;

use crate::cli::{CliError, runtime};
use crate::exit::ExitCode;
use crate::verify::{
    self, DiffReport, Progress, RedisUrl, RestoreSelection, UrlError, VerifyError, VerifyOptions,
};

const EXIT_HELP: &str = "Exit status: 0 equal/success, 1 differences found, 2 bad input (url, snapshot file), 3 blocked (writers still active, disk space), 4 other failure.";

/// Where and how to connect (shared by the four commands).
#[derive(Debug, Clone, Args)]
pub struct ConnectionArgs {
    /// Redis URL: redis://[:PASSWORD@]HOST[:PORT][/DB] or rediss://… (TLS). The password is
    /// never printed.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub url: String,
    /// Verify the server's TLS certificate (off by default: heroku-redis certificates are
    /// self-signed, and Heroku's own CLI does not verify them).
    #[arg(long)]
    pub tls_verify: bool,
    /// Connections to open (leave headroom under the plan's connection limit).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub max_connections: u16,
    /// Megabytes of per-key records kept in memory; beyond it sorted runs spill to disk.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    pub memory_budget_mb: u32,
    /// Directory for spilled runs (default: the system temporary directory).
    #[arg(long)]
    pub spill_dir: Option<PathBuf>,
}

/// The connection arguments as the library takes them.
#[derive(Debug, Clone)]
pub struct VerifyConfig {
    /// The parsed URL.
    pub url: RedisUrl,
    /// Options.
    pub options: VerifyOptions,
}

impl TryFrom<&ConnectionArgs> for VerifyConfig {
    type Error = UrlError;

    fn try_from(args: &ConnectionArgs) -> Result<Self, Self::Error> {
        let defaults = VerifyOptions::default();
        Ok(Self {
            url: args.url.parse()?,
            options: VerifyOptions {
                max_connections: usize::from(args.max_connections),
                tls_verify: args.tls_verify,
                memory_budget: usize::try_from(args.memory_budget_mb)
                    .unwrap_or(usize::MAX)
                    .saturating_mul(1 << 20),
                spill_dir: args.spill_dir.clone().unwrap_or(defaults.spill_dir.clone()),
                ..defaults
            },
        })
    }
}

/// `upshift digest`.
#[derive(Debug, Clone, Args)]
#[command(after_help = EXIT_HELP)]
pub struct DigestArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Compare with a second live server instead: both are read at once and every key that
    /// differs is named (exit 1 when any does). Same URL forms as --url; never printed.
    #[arg(long, value_name = "URL")]
    pub against_url: Option<String>,
    /// One JSON object on stdout (`keys`, `per_type`, `bytes`, `elapsed_ms`, `digest`, …).
    #[arg(long)]
    pub json: bool,
}

/// `upshift snapshot`.
#[derive(Debug, Clone, Args)]
#[command(after_help = EXIT_HELP)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// The snapshot file to write (mode 0600; replaced atomically when complete). A device, a
    /// FIFO, a directory or a symbolic link at FILE is refused (exit 2).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// One JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `upshift restore`.
#[derive(Debug, Clone, Args)]
#[command(after_help = EXIT_HELP)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// The snapshot file to restore from.
    #[arg(long, value_name = "FILE")]
    pub from: PathBuf,
    /// Restore only keys absent from the server; leave existing keys as they are.
    #[arg(long, conflicts_with = "keys")]
    pub only_missing: bool,
    /// Restore only this key (repeatable); a named key absent from the snapshot is deleted.
    #[arg(long = "key", value_name = "KEY")]
    pub keys: Vec<String>,
    /// One JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `upshift diff`.
#[derive(Debug, Clone, Args)]
#[command(after_help = EXIT_HELP)]
pub struct DiffArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// The snapshot to compare the live database with.
    #[arg(long, value_name = "FILE")]
    pub against: PathBuf,
    /// One JSON object on stdout (`counts`, `differences`, `equal`, …).
    #[arg(long)]
    pub json: bool,
}

/// The exit code for a verifier failure.
pub fn exit_code(err: &VerifyError) -> ExitCode {
    match err {
        VerifyError::Url(_) | VerifyError::Snapshot { .. } => ExitCode::Usage,
        e if e.is_bad_input() => ExitCode::Usage,
        VerifyError::WritersActive { .. }
        | VerifyError::WrittenDuringScan { .. }
        | VerifyError::ExpiriesAppeared { .. }
        | VerifyError::DiskSpace { .. } => ExitCode::Blocked,
        _ => ExitCode::NeedsAttention,
    }
}

/// `--out PATH` refused before anything is read when something other than a regular file is
/// there (exit 2): renaming the new file over it would replace a device, a FIFO or a link.
///
/// # Errors
/// The path holds a device, a FIFO, a socket, a directory or a symbolic link.
pub fn check_out(path: &std::path::Path) -> Result<(), CliError> {
    crate::files::check_output(path)
        .map_err(|e| CliError::text(ExitCode::Usage, format!("--out {e}")))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    check_dir("--out", dir)
}

/// A directory a command will write in, refused as bad input (exit 2) when no file can be
/// created there, before anything is read.
fn check_dir(flag: &str, dir: &std::path::Path) -> Result<(), CliError> {
    crate::files::check_writable_dir(dir).map_err(|e| {
        CliError::text(
            ExitCode::Usage,
            format!(
                "{flag}: cannot create files in {} ({}): choose another directory",
                crate::printable::text(&dir.display().to_string()),
                e
            ),
        )
    })
}

/// A progress bar on stderr, hidden when stderr is not a terminal.
struct Bar(indicatif::ProgressBar);

impl Bar {
    fn new() -> Self {
        let bar = if crate::ui::can_redraw() {
            indicatif::ProgressBar::new(0)
        } else {
            indicatif::ProgressBar::hidden()
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {pos}/{len} keys  {per_sec}  eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Self(bar)
    }
}

impl Progress for Bar {
    fn total(&self, keys: u64) {
        self.0.set_length(keys);
    }
    fn advance(&self, keys: u64, _bytes: u64) {
        self.0.inc(keys);
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// What an interrupt leaves behind, said on stderr as the command ends (exit 130).
#[derive(Debug, Clone, Copy)]
enum Leaves<'a> {
    /// A read-only command: nothing was written anywhere.
    Nothing,
    /// `snapshot`: its partial file is removed, the output untouched.
    NoSnapshot(&'a std::path::Path),
    /// `restore`: the target holds part of the snapshot.
    PartRestored,
}

impl Leaves<'_> {
    fn line(self, command: &str) -> String {
        match self {
            Self::Nothing => format!("interrupted: {command} stopped; nothing was written"),
            Self::NoSnapshot(out) => format!(
                "interrupted: snapshot stopped; nothing written to {} (the partial file is removed)",
                crate::printable::text(&out.display().to_string())
            ),
            Self::PartRestored => {
                "interrupted: restore stopped; the target may now hold part of the \
                 snapshot (keys restored so far, the rest as they were): run the same `upshift \
                 restore` again to finish it"
                    .to_owned()
            }
        }
    }
}

/// Runs a verifier command until it ends or Ctrl-C, SIGTERM, SIGHUP or SIGQUIT arrives
/// (handled as a run handles them, [`crate::cli::signals`]). On a signal the command's future
/// is dropped where it stands, not the process killed by the signal's default action: what the
/// future holds cleans up as on an error (a snapshot's partial file is removed), and one line
/// says what was interrupted and what is left, exit 130.
fn interruptible<T>(
    command: &str,
    leaves: Leaves<'_>,
    work: impl std::future::Future<Output = Result<T, VerifyError>>,
) -> Result<T, CliError> {
    let rt = runtime();
    let ended = rt.block_on(async {
        let mut signals = crate::cli::signals::Signals::register();
        tokio::select! {
            result = work => Some(result),
            Some(_) = signals.next() => None,
        }
    });
    let Some(result) = ended else {
        // The record consumer's thread notices its closed channel within one record; the
        // process need not wait longer for it.
        rt.shutdown_timeout(std::time::Duration::from_secs(2));
        return Err(CliError::line(ExitCode::Interrupted, leaves.line(command)));
    };
    result.map_err(CliError::from)
}

fn config(args: &ConnectionArgs) -> Result<VerifyConfig, CliError> {
    let cfg = VerifyConfig::try_from(args).map_err(CliError::usage)?;
    check_dir("--spill-dir", &cfg.options.spill_dir)?;
    Ok(cfg)
}

fn print_json<T: serde::Serialize + schemars::JsonSchema>(value: &T) {
    if let Err(e) = crate::ui::print_document_line(value) {
        errln!("error: cannot write json: {e}");
    }
}

/// One line naming how many keys were read with commands instead of a decoded DUMP, and why.
fn print_fallbacks(f: &verify::Fallbacks, side: &str) {
    if f.total() == 0 {
        return;
    }
    let reasons: Vec<String> = [
        (
            f.unknown_type,
            "type not decoded (module types, hash field ttls)",
        ),
        (f.unknown_version, "unknown rdb version"),
        (f.bad_crc, "bad crc"),
        (f.decode_error, "decode error"),
        (f.dump_refused, "dump refused"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, why)| format!("{n} {why}"))
    .collect();
    outln!(
        "fallbacks   {}{} keys read with commands: {}",
        side,
        f.total(),
        reasons.join(", ")
    );
}

/// Runs `upshift digest`.
///
/// # Errors
/// Bad flags (exit 2) and verifier failures (see [`exit_code`]).
pub fn run_digest(args: &DigestArgs) -> Result<ExitCode, CliError> {
    let cfg = config(&args.connection)?;
    if let Some(against) = &args.against_url {
        let other: RedisUrl = against.parse().map_err(CliError::usage)?;
        runtime().block_on(refuse_same_database(&cfg, &other))?;
        return run_compare(&cfg, &other, args.json);
    }
    let result = interruptible("digest", Leaves::Nothing, async {
        let bar = Bar::new();
        verify::digest(&cfg.url, &cfg.options, &bar).await
    });
    match result {
        Ok(report) => {
            if args.json {
                print_json(&report);
            } else {
                outln!("keys        {}", crate::units::count(report.keys));
                for (kind, n) in &report.per_type {
                    outln!("  {:<9} {n}", kind.name());
                }
                outln!("bytes read  {}", crate::units::bytes(report.bytes));
                outln!(
                    "rate        {} ({})",
                    crate::units::rate(report.keys_per_sec(), "keys"),
                    crate::units::duration(report.elapsed)
                );
                outln!("digest      {}", report.digest);
                print_fallbacks(&report.fallbacks, "");
            }
            Ok(ExitCode::Success)
        }
        Err(e) => Err(e),
    }
}

/// Two URLs that reach one database (the same server process, by its `run_id`, and the same
/// database number) compare equal whatever the data: such a comparison proves nothing, so it
/// is refused as bad input (exit 2) before any key is read.
async fn refuse_same_database(cfg: &VerifyConfig, other: &RedisUrl) -> Result<(), CliError> {
    let (a, b) = tokio::try_join!(
        verify::server_info(&cfg.url, &cfg.options),
        verify::server_info(other, &cfg.options),
    )?;
    if a.run_id.is_empty() || a.run_id != b.run_id || cfg.url.db() != other.db() {
        return Ok(());
    }
    Err(CliError::text(
        ExitCode::Usage,
        format!(
            "both URLs reach the same database (run_id {}, db {}): the comparison proves nothing; give --against-url the other server",
            crate::printable::key_str(&a.run_id),
            cfg.url.db()
        ),
    ))
}

/// `upshift digest --against-url`: two live servers compared key by key.
fn run_compare(cfg: &VerifyConfig, other: &RedisUrl, json: bool) -> Result<ExitCode, CliError> {
    let result = interruptible("digest", Leaves::Nothing, async {
        let bar = Bar::new();
        verify::compare(&cfg.url, other, &cfg.options, &bar).await
    });
    let report = result?;
    if json {
        print_json(&DiffJson {
            equal: report.is_equal(),
            report: &report.diff,
        });
    } else {
        print_diff(&report.diff);
        print_fallbacks(&report.fallbacks_a, "--url: ");
        print_fallbacks(&report.fallbacks_b, "--against-url: ");
    }
    // 1 = differences found (documented in the help).
    Ok(if report.is_equal() {
        ExitCode::Success
    } else {
        ExitCode::RolledBack
    })
}

/// Runs `upshift snapshot`.
///
/// # Errors
/// Bad flags (exit 2) and verifier failures (see [`exit_code`]).
pub fn run_snapshot(args: &SnapshotArgs) -> Result<ExitCode, CliError> {
    let cfg = config(&args.connection)?;
    check_out(&args.out)?;
    let result = interruptible("snapshot", Leaves::NoSnapshot(&args.out), async {
        let bar = Bar::new();
        verify::snapshot(&cfg.url, &args.out, &cfg.options, &bar).await
    });
    match result {
        Ok(s) => {
            if args.json {
                print_json(&s);
            } else {
                outln!(
                    "wrote {} ({} keys, {}) in {}",
                    s.path.display(),
                    crate::units::count(s.keys),
                    crate::units::bytes(s.file_bytes),
                    crate::units::duration(s.elapsed)
                );
                outln!("digest {}", s.digest);
                print_fallbacks(&s.fallbacks, "");
            }
            Ok(ExitCode::Success)
        }
        Err(e) => Err(e),
    }
}

fn print_diff(report: &DiffReport) {
    let mut out = std::io::stdout().lock();
    if verify::write_differences(&mut out, report).is_err() {
        return;
    }
    let c = &report.counts;
    if report.is_equal() {
        outln!(
            "equal: {} keys ({} expired in the window)",
            crate::units::count(report.after_keys),
            crate::units::count(c.expired_in_window)
        );
    } else {
        outln!(
            "{} differences: {} missing, {} extra, {} type changed, {} value changed, {} ttl changed ({} expired in the window)",
            c.failures(),
            c.missing,
            c.extra,
            c.type_changed,
            c.value_changed,
            c.ttl_changed,
            c.expired_in_window
        );
    }
}

/// `diff --json` and `digest --against-url --json`: the differences and whether the data is
/// equal (expiries in the scan window aside).
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct DiffJson<'a> {
    pub equal: bool,
    #[serde(flatten)]
    pub report: &'a DiffReport,
}

/// Runs `upshift diff`.
///
/// # Errors
/// Bad flags (exit 2) and verifier failures (see [`exit_code`]).
pub fn run_diff(args: &DiffArgs) -> Result<ExitCode, CliError> {
    let cfg = config(&args.connection)?;
    let result = interruptible("diff", Leaves::Nothing, async {
        let bar = Bar::new();
        verify::diff(&cfg.url, &args.against, &cfg.options, &bar).await
    });
    match result {
        Ok(report) => {
            if args.json {
                print_json(&DiffJson {
                    equal: report.is_equal(),
                    report: &report,
                });
            } else {
                print_diff(&report);
            }
            if report.is_equal() {
                Ok(ExitCode::Success)
            } else {
                // 1 = differences found (documented in the help).
                Ok(ExitCode::RolledBack)
            }
        }
        Err(e) => Err(e),
    }
}

/// Runs `upshift restore`.
///
/// # Errors
/// Bad flags (exit 2) and verifier failures (see [`exit_code`]).
pub fn run_restore(args: &RestoreArgs) -> Result<ExitCode, CliError> {
    let cfg = config(&args.connection)?;
    let selection = if args.only_missing {
        RestoreSelection::OnlyMissing
    } else if args.keys.is_empty() {
        RestoreSelection::All
    } else {
        RestoreSelection::Keys(args.keys.iter().map(|k| k.as_bytes().to_vec()).collect())
    };
    let result = interruptible("restore", Leaves::PartRestored, async {
        let bar = Bar::new();
        let summary = verify::restore(&cfg.url, &args.from, selection, &cfg.options, &bar).await;
        drop(bar);
        summary
    });
    match result {
        Ok(s) => {
            if args.json {
                print_json(&s);
            } else {
                outln!(
                    "restored {} keys ({} existing left alone, {} expired skipped, {} deleted)",
                    crate::units::count(s.restored),
                    crate::units::count(s.skipped_existing),
                    crate::units::count(s.expired),
                    crate::units::count(s.deleted)
                );
                print_diff(&s.remaining);
            }
            if s.remaining.is_equal() {
                Ok(ExitCode::Success)
            } else {
                Ok(ExitCode::RolledBack)
            }
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::{ConnectionArgs, VerifyConfig};

    fn args(url: &str) -> ConnectionArgs {
        ConnectionArgs {
            url: url.into(),
            tls_verify: false,
            max_connections: 3,
            memory_budget_mb: 8,
            spill_dir: None,
        }
    }

    #[test]
    fn help_of_the_verifier_commands() {
        use clap::CommandFactory;
        let mut cli = crate::cli::Cli::command().term_width(100);
        for name in ["digest", "snapshot", "restore", "diff"] {
            let help = cli
                .find_subcommand_mut(name)
                .expect("subcommand exists")
                .render_long_help()
                .to_string();
            insta::assert_snapshot!(format!("{name}_help"), help);
        }
    }

    #[test]
    fn arguments_convert_into_options() {
        let cfg = VerifyConfig::try_from(&args("rediss://:pw@host:1234")).unwrap();
        assert_eq!(cfg.options.max_connections, 3);
        assert_eq!(cfg.options.memory_budget, 8 << 20);
        assert!(!cfg.options.tls_verify);
        assert_eq!(cfg.url.to_string(), "rediss://:***@host:1234/0");
        let err = VerifyConfig::try_from(&args("http://:pw@host")).unwrap_err();
        assert!(!err.to_string().contains("pw"));
    }
}
