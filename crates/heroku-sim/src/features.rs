//! App features (`GET /apps/{app}/features/{feature}`): only `preboot` is modelled, the one
//! that decides whether a release (a config var change, such as an attachment) restarts an
//! app with a gap. Dev Center, preboot: "Preboot changes the standard dyno start behavior".

use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::json;

use crate::platform::{NO_APP, ok};
use crate::server::not_found;
use crate::state::Shared;

pub(crate) async fn get_feature(
    State(s): State<std::sync::Arc<Shared>>,
    Path((app, feature)): Path<(String, String)>,
) -> Response {
    let world = s.world();
    let Some(a) = world.app(&app) else {
        return not_found("app", NO_APP);
    };
    if feature != "preboot" {
        return not_found("feature", "Couldn't find that feature.");
    }
    ok(json!({
        "id": crate::state::stable_id(&format!("{}/preboot", a.id)),
        "name": "preboot",
        "display_name": "Preboot",
        "description": "Provide seamless web dyno deploys.",
        "doc_url": "https://devcenter.heroku.com/articles/preboot",
        "enabled": a.preboot,
        "state": "general",
        "created_at": a.created_at,
        "updated_at": a.updated_at,
        "feedback_email": null,
    }))
}
