//! What the live-swap steps share: the temporary attachment name, the new add-on of a target,
//! the URLs of both servers, and the proof that a config var leads to a given server.

use super::{StepCtx, Target};
use crate::runner::StepError;
use crate::runner::capture::verify_options;
use crate::runner::ledger::NewAddon;
use crate::verify::{self, RedisUrl, VerifyOptions};

/// The temporary attachment name of `label`'s new add-on in run `run_id`. Derived, not random,
/// so a run resumed after a crash between the create and its journal record finds the add-on
/// it created by this name instead of creating a second one. Attachment names are upper-case
/// letters, digits and underscores.
pub(super) fn temp_attachment(run_id: &str, label: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect()
    };
    let id = clean(run_id);
    let tail = &id[id.len().saturating_sub(8)..];
    format!("UPSHIFT_{}_{}", tail.trim_matches('_'), clean(label))
}

/// The name the old add-on of `label` keeps on the app during and after the move, so that it is
/// never left without an attachment: Heroku refuses to detach an add-on's last attachment to
/// its billing app ("destroy the add-on instead"), and an add-on kept for going back should
/// stay visible on the app (`heroku addons`) and on its bill.
pub(super) fn park_attachment(run_id: &str, label: &str) -> String {
    temp_attachment(run_id, &format!("OLD_{label}"))
}

/// Whether an attachment name is one this tool gives (temporary or parking).
pub(super) fn ours(name: &str) -> bool {
    name.to_ascii_uppercase().starts_with("UPSHIFT_")
}

/// The new add-on of a target, as the provision step recorded it.
pub(super) fn new_addon<'a>(ctx: &'a StepCtx<'_>, t: &Target) -> Result<&'a NewAddon, StepError> {
    ctx.known.new_addons.get(&t.name).ok_or_else(|| {
        StepError::failed(format!(
            "this run's journal names no new add-on for {}: the provision-new step did not \
             finish",
            t.label
        ))
    })
}

/// The URL in config var `var` of `app` (a secret: it lives only in memory).
pub(super) async fn url_of(ctx: &StepCtx<'_>, app: &str, var: &str) -> Result<RedisUrl, StepError> {
    let vars = ctx.client().config_vars(app).await?;
    let raw = vars
        .get(var)
        .ok_or_else(|| StepError::failed(format!("config var {var} is not set on {app}")))?;
    raw.parse::<RedisUrl>()
        .map_err(|e| StepError::failed(format!("config var {var} of {app}: {e}")))
}

/// The URL of the new add-on, through its temporary attachment's config var.
pub(super) async fn new_url(ctx: &StepCtx<'_>, new: &NewAddon) -> Result<RedisUrl, StepError> {
    url_of(ctx, ctx.app(), &format!("{}_URL", new.attachment)).await
}

/// Verify options for a live-swap connection to a server on `plan`.
pub(super) fn options(ctx: &StepCtx<'_>, plan: &str, role: &str) -> VerifyOptions {
    verify_options(&ctx.config().verify, plan, role)
}

/// The server behind `<name>_URL` on `app` is the one with `run_id`: the proof that a moved
/// attachment leads where the run says it does.
pub(super) async fn leads_to(
    ctx: &StepCtx<'_>,
    app: &str,
    name: &str,
    run_id: &str,
    plan: &str,
) -> Result<(), StepError> {
    let var = format!("{}_URL", name.to_ascii_uppercase());
    let url = url_of(ctx, app, &var).await?;
    let info = verify::server_info(&url, &options(ctx, plan, "check")).await?;
    if info.run_id != run_id {
        return Err(StepError::failed(format!(
            "{var} on {app} leads to a server with run_id {} where {run_id} was expected",
            info.run_id
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::temp_attachment;

    #[test]
    fn temporary_attachment_names_are_derived_and_valid() {
        let a = temp_attachment("20261201-053612-ab12cd", "ENKETO_REDIS_MAIN");
        assert_eq!(
            a,
            temp_attachment("20261201-053612-ab12cd", "ENKETO_REDIS_MAIN")
        );
        assert!(a.starts_with("UPSHIFT_"), "{a}");
        assert!(
            a.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
            "{a}"
        );
        assert_ne!(
            a,
            temp_attachment("20261201-053612-ab12cd", "ENKETO_REDIS_CACHE")
        );
        assert_ne!(
            a,
            temp_attachment("20261201-053613-ff00aa", "ENKETO_REDIS_MAIN")
        );
    }
}
