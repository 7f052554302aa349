//! Heroku Data maintenances (`/data/maintenances/v1/…`), as the Heroku CLI's `data:maintenances`
//! commands read them: `GET /data/maintenances/v1/apps/{app_id}` (`data:maintenances`),
//! `GET /data/maintenances/v1/{addon_id}` (`data:maintenances:info`, and upshift's maintenance
//! guard), `GET|POST /data/maintenances/v1/{addon_id}/window` (`data:maintenances:window`,
//! `data:maintenances:window:update DAY TIME`). Shapes follow the CLI's source and its test
//! fixtures (heroku/cli `packages/cli/src/commands/data/maintenances`): a maintenance carries
//! `status`, `window`, `required_by`, `scheduled_for` and nested `addon` / `app` objects; a
//! window is `{"window": "Mondays 22:00 to Tuesdays 02:00 UTC"}`. Dev Center: "Data
//! Maintenance CLI Commands" (<https://devcenter.heroku.com/articles/data-maintenance-cli-commands>).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::server::{error, not_found};
use crate::state::{AddonState, AppState, Shared, World};
use heroku_model::models::{AddOnState, MaintenanceStatus};

type S = State<Arc<Shared>>;

/// Every add-on's window until changed: Heroku's default for new data add-ons is a 4-hour
/// window starting at a random time; the simulator takes one fixed one.
pub(crate) const DEFAULT_WINDOW: &str = "Mondays 22:00 to Tuesdays 02:00 UTC";

/// How long a maintenance window lasts on Heroku Data (4 hours).
const WINDOW_HOURS: u32 = 4;

const DAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];

/// Why a window update is refused (the Data API answers 422 with this message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WindowError {
    #[error("day_of_week `{0}` is not a day: use sunday, monday, … saturday")]
    Day(String),
    #[error("time_of_day `{0}` is not a time: use HH:MM (24-hour, UTC) or H:MMAM / H:MMPM")]
    Time(String),
}

/// The window label for a start day and time, e.g. `("sunday", "1:30PM")` ->
/// `Sundays 13:30 to Sundays 17:30 UTC`. Pure.
///
/// # Errors
/// [`WindowError`] naming the field that is not a day or a time.
pub(crate) fn window_label(day: &str, time: &str) -> Result<String, WindowError> {
    let d = DAYS
        .iter()
        .position(|x| x.eq_ignore_ascii_case(day.trim()))
        .ok_or_else(|| WindowError::Day(day.to_owned()))?;
    let (h, m) = parse_time(time).ok_or_else(|| WindowError::Time(time.to_owned()))?;
    let end = h + WINDOW_HOURS;
    let (end_day, end_h) = (if end >= 24 { (d + 1) % 7 } else { d }, end % 24);
    Ok(format!(
        "{}s {h:02}:{m:02} to {}s {end_h:02}:{m:02} UTC",
        capitalised(DAYS[d]),
        capitalised(DAYS[end_day])
    ))
}

fn capitalised(day: &str) -> String {
    let mut s = day.to_owned();
    s[..1].make_ascii_uppercase();
    s
}

/// `13:30`, `1:30PM`, `1:30 pm` -> `(13, 30)`.
fn parse_time(text: &str) -> Option<(u32, u32)> {
    let t = text.trim().to_ascii_lowercase();
    let (clock, meridiem) = if let Some(c) = t.strip_suffix("am") {
        (c.trim(), Some(false))
    } else if let Some(c) = t.strip_suffix("pm") {
        (c.trim(), Some(true))
    } else {
        (t.as_str(), None)
    };
    let (h, m) = clock.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    if m >= 60 {
        return None;
    }
    let h = match meridiem {
        None if h < 24 => h,
        Some(pm) if (1..=12).contains(&h) => (h % 12) + if pm { 12 } else { 0 },
        _ => return None,
    };
    Some((h, m))
}

fn status_word(m: MaintenanceStatus) -> Value {
    serde_json::to_value(m).unwrap_or(Value::Null)
}

/// One add-on's maintenance, in the CLI's shape (upshift reads `status` and `message`).
fn maintenance_body(a: &AddonState, app: Option<&AppState>) -> Value {
    let message = match a.maintenance {
        MaintenanceStatus::None => "No maintenance is scheduled.".to_owned(),
        other => format!(
            "Maintenance is {}.",
            status_word(other).as_str().unwrap_or("")
        ),
    };
    json!({
        "status": status_word(a.maintenance),
        "message": message,
        "window": a.window,
        "reason": if a.maintenance == MaintenanceStatus::None { Value::Null } else { json!("routine_maintenance") },
        "method": "changeover",
        "required_by": Value::Null,
        "scheduled_for": Value::Null,
        "previously_scheduled_for": Value::Null,
        "server_created_at": a.created_at,
        "addon": {
            "uuid": a.id,
            "name": a.name,
            "kind": "heroku-redis",
            "plan": a.plan.name,
            "attachments": a.config_vars(),
            "window": a.window,
        },
        "app": app.map_or(Value::Null, |p| json!({ "uuid": p.id, "name": p.name })),
    })
}

fn find<'w>(world: &'w World, id: &str) -> Option<&'w AddonState> {
    world
        .addon(id, None)
        .filter(|a| a.state != AddOnState::Deprovisioned)
}

const NO_ADDON: &str = "Couldn't find that add on.";

/// `GET /data/maintenances/v1/{addon_id}`.
pub(crate) async fn info(State(s): S, Path(id): Path<String>) -> Response {
    let world = s.world();
    match find(&world, &id) {
        Some(a) => ok(&maintenance_body(a, world.app(&a.app_id))),
        None => not_found("add_on", NO_ADDON),
    }
}

/// `GET /data/maintenances/v1/apps/{app_id}`: `{"maintenances": [...]}`, one per data add-on
/// the app owns.
pub(crate) async fn by_app(State(s): S, Path(app): Path<String>) -> Response {
    let world = s.world();
    let Some(app) = world.app(&app) else {
        return not_found("app", "Couldn't find that app.");
    };
    let list: Vec<Value> = world
        .addons
        .iter()
        .filter(|a| a.app_id == app.id && a.state != AddOnState::Deprovisioned)
        .map(|a| maintenance_body(a, Some(app)))
        .collect();
    ok(&json!({ "maintenances": list }))
}

/// `GET /data/maintenances/v1/{addon_id}/window`.
pub(crate) async fn window(State(s): S, Path(id): Path<String>) -> Response {
    match find(&s.world(), &id) {
        Some(a) => ok(&json!({ "window": a.window })),
        None => not_found("add_on", NO_ADDON),
    }
}

/// `POST /data/maintenances/v1/{addon_id}/window` `{"day_of_week": "sunday", "time_of_day":
/// "13:30"}` (the CLI posts; `PUT` is accepted too): `{"window": new, "previous_window": old}`.
pub(crate) async fn set_window(State(s): S, Path(id): Path<String>, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let field = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let label = match window_label(&field("day_of_week"), &field("time_of_day")) {
        Ok(l) => l,
        Err(e) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_params",
                &e.to_string(),
            );
        }
    };
    let mut world = s.world();
    let Some(a) = world
        .addons
        .iter_mut()
        .find(|a| (a.id == id || a.name == id) && a.state != AddOnState::Deprovisioned)
    else {
        return not_found("add_on", NO_ADDON);
    };
    let previous = std::mem::replace(&mut a.window, label.clone());
    ok(&json!({ "window": label, "previous_window": previous }))
}

fn ok(v: &Value) -> Response {
    (StatusCode::OK, axum::Json(v)).into_response()
}

#[cfg(test)]
mod tests {
    use super::{WindowError, window_label};

    #[test]
    fn window_labels_wrap_past_midnight_and_read_12_hour_times() {
        assert_eq!(
            window_label("sunday", "1:30PM").unwrap(),
            "Sundays 13:30 to Sundays 17:30 UTC"
        );
        assert_eq!(
            window_label("Monday", "22:00").unwrap(),
            super::DEFAULT_WINDOW
        );
        assert_eq!(
            window_label("saturday", "23:15").unwrap(),
            "Saturdays 23:15 to Sundays 03:15 UTC"
        );
        assert_eq!(
            window_label("friday", "12:05am").unwrap(),
            "Fridays 00:05 to Fridays 04:05 UTC"
        );
    }

    #[test]
    fn bad_days_and_times_are_named() {
        assert_eq!(
            window_label("someday", "13:30"),
            Err(WindowError::Day("someday".into()))
        );
        for t in ["25:00", "13:60", "13", "0:30PM", "1:300", ""] {
            assert_eq!(
                window_label("sunday", t),
                Err(WindowError::Time(t.into())),
                "{t}"
            );
        }
    }
}
