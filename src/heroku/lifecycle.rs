//! Add-on lifecycle calls beyond the plan change: create and destroy an add-on, attach and
//! detach it, list releases. A live swap (provision a second add-on, copy, move the
//! attachment) is built from these.
//!
//! None of these writes is idempotent on Heroku, so none is blindly retried: after a
//! transient failure each re-reads the platform and counts the call as done when its effect
//! is there, as [`Client::change_addon_plan`] does.

use reqwest::Method;
use serde_json::json;

use super::models::{AddOn, AddOnAttachment, Release};
use super::{Api, Client, HerokuError, Idempotency, Written, seg};

impl Client {
    /// `POST /apps/{app}/addons` `{plan, attachment: {name}}`: a new add-on on `plan`
    /// (`heroku-redis:premium-1`), attached to `app` as `attachment`. Heroku answers at once
    /// with the add-on `provisioning`; its config var appears when it is provisioned.
    ///
    /// # Guarantees
    /// After a transient failure the attachment name is resolved: when it already names an
    /// add-on on `plan`, that one is returned instead of creating a second (pick a name no
    /// other attachment has, so the lookup is unambiguous).
    pub async fn create_addon(
        &self,
        app: &str,
        plan: &str,
        attachment: &str,
    ) -> Result<Written<AddOn>, HerokuError> {
        let path = format!("/apps/{}/addons", seg(app));
        let body = json!({ "plan": plan, "attachment": { "name": attachment } });
        self.write_once(Method::POST, &path, &body, || async {
            let existing = self.attached_as(app, attachment).await?;
            let addon = self.addon(app, &existing.addon.id).await.ok()?;
            (crate::plans::bare_name(&addon.plan.name) == crate::plans::bare_name(plan))
                .then_some(addon)
        })
        .await
    }

    /// `DELETE /apps/{app}/addons/{addon}`: destroys the add-on and its data. After a
    /// transient failure, an add-on that is gone (404) or `deprovisioned` counts as destroyed.
    pub async fn destroy_addon(&self, app: &str, addon: &str) -> Result<(), HerokuError> {
        let path = format!("/apps/{}/addons/{}", seg(app), seg(addon));
        let mut attempt = 1;
        loop {
            let result: Result<Written<AddOn>, _> = self
                .send(
                    Method::DELETE,
                    Api::Platform,
                    &path,
                    None::<&()>,
                    None,
                    Idempotency::Unsafe,
                )
                .await
                .map(|(value, request_id, _)| Written { value, request_id });
            match result {
                Ok(_) => return Ok(()),
                Err(e) if e.is_transient() && attempt < self.retry.max_attempts => {
                    self.pause_after(&e, attempt).await;
                    match self.addon(app, addon).await {
                        Err(HerokuError::NotFound { .. }) => return Ok(()),
                        Ok(a) if a.state == super::models::AddOnState::Deprovisioned => {
                            return Ok(());
                        }
                        _ => attempt += 1,
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `GET /addons/{addon}/addon-attachments`: every attachment of an add-on, to this app
    /// and to others (all pages).
    pub async fn addon_attachments(
        &self,
        addon: &str,
    ) -> Result<Vec<AddOnAttachment>, HerokuError> {
        self.list(
            Api::Platform,
            &format!("/addons/{}/addon-attachments", seg(addon)),
        )
        .await
    }

    /// `POST /addon-attachments` `{addon, app, name, confirm?}` (`heroku addons:attach`).
    /// With `confirm` set to the app's name, Heroku may replace another add-on's attachment
    /// of the same name in one release; without it (or where it does not), a taken name is
    /// refused and the caller must detach first.
    ///
    /// # Guarantees
    /// After a transient failure, an attachment `name` on `app` that points at `addon` counts
    /// as done.
    pub async fn attach_addon(
        &self,
        addon_id: &str,
        app: &str,
        name: &str,
        confirm: Option<&str>,
    ) -> Result<Written<AddOnAttachment>, HerokuError> {
        let mut body = json!({ "addon": addon_id, "app": app, "name": name });
        if let Some(confirm) = confirm {
            body["confirm"] = confirm.into();
        }
        self.write_once(Method::POST, "/addon-attachments", &body, || async {
            self.attached_as(app, name)
                .await
                .filter(|existing| existing.addon.id == addon_id)
        })
        .await
    }

    /// `DELETE /addon-attachments/{id}` (`heroku addons:detach`). An attachment already gone
    /// (404) counts as detached, so a retry after a lost response is safe.
    pub async fn detach(&self, attachment_id: &str) -> Result<(), HerokuError> {
        let path = format!("/addon-attachments/{}", seg(attachment_id));
        let result: Result<(AddOnAttachment, String, _), _> = self
            .send(
                Method::DELETE,
                Api::Platform,
                &path,
                None::<&()>,
                None,
                Idempotency::Safe,
            )
            .await;
        match result {
            Ok(_) | Err(HerokuError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `GET /apps/{app}/releases` (all pages), oldest first.
    pub async fn releases(&self, app: &str) -> Result<Vec<Release>, HerokuError> {
        let mut all: Vec<Release> = self
            .list(Api::Platform, &format!("/apps/{}/releases", seg(app)))
            .await?;
        all.sort_by_key(|r| r.version);
        Ok(all)
    }

    /// The attachment called `name` on `app`, if any (a read; errors count as "not found").
    pub async fn attached_as(&self, app: &str, name: &str) -> Option<AddOnAttachment> {
        self.resolve_attachment(app, name, None)
            .await
            .ok()?
            .into_iter()
            .find(|x| x.name.eq_ignore_ascii_case(name))
    }
}
