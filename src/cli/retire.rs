//! `upshift retire`: destroys the old add-ons that live swaps kept for their grace period, once
//! it has passed (or at once with `--now`). An add-on that anything still attaches is left: it
//! may be in use again (someone went back to it).

use crate::printable::text;
use std::sync::Arc;

use clap::Args;

use crate::cli::CliError;
use crate::engine::Outcome;
use crate::exit::ExitCode;
use crate::heroku::HerokuError;
use crate::journal::{self, StateDir};
use crate::runner::Interrupts;
use crate::runner::record::Record;
use crate::ui;

/// `upshift retire`.
#[derive(Debug, Clone, Args)]
#[command(after_help = "\
Examples:
  upshift retire -a enketo-prod --confirm enketo-prod        # those past their grace period
  upshift retire -a enketo-prod --now --confirm enketo-prod  # every kept one")]
pub struct RetireArgs {
    /// The app whose kept add-ons to retire.
    #[arg(short, long, env = "HEROKU_APP", value_name = "APP")]
    pub app: String,
    /// Also retire add-ons whose grace period has not ended, and those kept until destroyed.
    #[arg(long)]
    pub now: bool,
    /// Confirm the app by name (required without a terminal).
    #[arg(long, value_name = "APP")]
    pub confirm: Option<String>,
}

/// One old add-on a live swap kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub run_id: String,
    pub addon: String,
    /// When its grace ends; `None`: kept until a person destroys it.
    pub until: Option<jiff::Timestamp>,
}

/// The old add-ons kept by the successful live swaps of `app`, oldest run first.
pub fn kept(state: &StateDir, app: &str) -> Vec<Kept> {
    let Ok(ids) = state.run_ids() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for id in ids {
        let path = state.run_dir(&id).join(journal::JOURNAL_FILE);
        let (entries, _) = journal::read_prefix::<Record>(&path);
        let ours = entries
            .iter()
            .any(|e| matches!(&e.record, Record::Started { request, .. } if request.app == app));
        let succeeded = entries.iter().any(|e| {
            matches!(
                e.record,
                Record::Finished {
                    outcome: Outcome::Succeeded,
                    ..
                }
            )
        });
        if !(ours && succeeded) {
            continue;
        }
        for e in &entries {
            if let Record::Retained { addon, until } = &e.record {
                out.push(Kept {
                    run_id: id.clone(),
                    addon: addon.clone(),
                    until: until.as_deref().and_then(|u| u.parse().ok()),
                });
            }
        }
    }
    out
}

/// Whether a kept add-on is due at `now`.
pub fn due(k: &Kept, now: jiff::Timestamp, all: bool) -> bool {
    all || k.until.is_some_and(|u| u <= now)
}

/// What `retire` says of a kept add-on whose grace has not ended.
fn waiting_line(k: &Kept) -> String {
    match k.until {
        Some(until) => format!(
            "{}: kept until {} (run {}); --now retires it before then",
            text(&k.addon),
            until.strftime("%Y-%m-%d %H:%M UTC"),
            k.run_id
        ),
        None => format!(
            "{}: kept until destroyed (run {}, --retire-old never); --now retires it",
            text(&k.addon),
            k.run_id
        ),
    }
}

/// `upshift retire`.
///
/// # Errors
/// Bad input or no usable state dir or token (exit 2); a platform error (exit 1).
pub fn retire(args: &RetireArgs) -> Result<ExitCode, CliError> {
    crate::cli::runtime().block_on(async {
        let reporter: Arc<dyn crate::runner::Reporter> = Arc::new(ui::HumanReporter::new(false));
        let ctx = super::run::context(reporter, Interrupts::default())?;
        let state = StateDir::from_env().map_err(CliError::usage)?;
        if args.app.trim().is_empty() {
            return Err(CliError::text(
                ExitCode::Usage,
                "-a/--app is empty: name the app whose kept add-ons to retire, e.g. -a enketo-prod",
            ));
        }
        super::target::check_name(&args.app, "-a/--app", "app (name or id)", "apps")
            .map_err(CliError::usage)?;
        // A typo'd app must not read as "nothing to retire": the platform says whether it is.
        ctx.runner.check_app(&args.app).await?;
        let now = jiff::Timestamp::now();
        let (candidates, waiting): (Vec<Kept>, Vec<Kept>) = kept(&state, &args.app)
            .into_iter()
            .partition(|k| due(k, now, args.now));
        let client = ctx.runner.client();
        let mut todo = Vec::new();
        for k in candidates {
            let addon = match client.addon(&args.app, &k.addon).await {
                Ok(addon) => addon,
                Err(HerokuError::NotFound { .. }) => {
                    outln!("{}: already gone", text(&k.addon));
                    continue;
                }
                // Anything else (network, 5xx, auth) says nothing about the add-on: stop.
                Err(e) => return Err(CliError::new(ExitCode::RolledBack, e)),
            };
            if addon.state.as_str() == "deprovisioned" {
                outln!("{}: already gone", text(&k.addon));
                continue;
            }
            let users = client
                .addon_attachments(&addon.id)
                .await
                .map_err(|e| CliError::new(ExitCode::RolledBack, e))?;
            // Its parking attachment (`UPSHIFT_…_OLD_…`) is the run's own; any other means
            // someone uses it again.
            if let Some(a) = users
                .iter()
                .find(|a| !a.name.to_ascii_uppercase().starts_with("UPSHIFT_"))
            {
                outln!(
                    "{}: left in place, {} attaches it as {} (kept by run {})",
                    text(&k.addon),
                    text(&a.app.name),
                    text(&a.name),
                    k.run_id
                );
                continue;
            }
            todo.push((k, addon.id));
        }
        for k in &waiting {
            outln!("{}", waiting_line(k));
        }
        if todo.is_empty() {
            outln!("nothing to retire for {}", args.app);
            return Ok(ExitCode::Success);
        }
        let names: Vec<&str> = todo.iter().map(|(k, _)| k.addon.as_str()).collect();
        super::run::confirm(
            &args.app,
            args.confirm.as_deref(),
            &format!("destroy {} and its data", names.join(", ")),
        )?;
        for (k, id) in &todo {
            client
                .destroy_addon(&args.app, id)
                .await
                .map_err(|e| CliError::new(ExitCode::RolledBack, e))?;
            outln!("{}: destroyed (kept by run {})", text(&k.addon), k.run_id);
        }
        Ok(ExitCode::Success)
    })
}

#[cfg(test)]
mod tests {
    use super::{Kept, due, waiting_line};

    #[test]
    fn kept_addons_are_due_after_their_grace_or_with_now() {
        let now: jiff::Timestamp = "2026-12-02T12:00:00Z".parse().unwrap();
        let k = |until: Option<&str>| Kept {
            run_id: "r".into(),
            addon: "a".into(),
            until: until.map(|u| u.parse().unwrap()),
        };
        assert!(due(&k(Some("2026-12-02T11:00:00Z")), now, false));
        assert!(!due(&k(Some("2026-12-03T11:00:00Z")), now, false));
        assert!(!due(&k(None), now, false));
        assert!(due(&k(None), now, true));
        assert_eq!(
            waiting_line(&k(Some("2026-12-03T11:00:00Z"))),
            "a: kept until 2026-12-03 11:00 UTC (run r); --now retires it before then"
        );
        assert!(waiting_line(&k(None)).contains("kept until destroyed"));
    }
}
