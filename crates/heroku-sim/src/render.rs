//! JSON rendering of the simulator's state with the client's own models
//! ([`heroku_model::models`]), plus the fields Heroku's schema requires that upshift does not
//! read, and `Range`/`Next-Range` pagination.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use crate::state::{
    AddonState, AppState, AttachmentState, DynoRec, FormationState, ReleaseState, stable_id,
};
use heroku_model::models::{
    AddOn, AddOnAttachment, App, AttachmentAddOn, BilledPrice, Dyno, DynoState, Formation, NameRef,
    Owner, PlanPrice, ServicePlan,
};
use heroku_model::plans::{self, Plan};

/// Default and largest page sizes, as on Heroku.
const PAGE: usize = 200;
const MAX_PAGE: usize = 1000;

fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn merge(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        for (k, v) in e {
            b.entry(k).or_insert(v);
        }
    }
    base
}

pub(crate) fn app_ref(app: &AppState) -> NameRef {
    NameRef {
        id: app.id.clone(),
        name: app.name.clone(),
    }
}

pub(crate) fn app(app: &AppState) -> Value {
    let model = App {
        id: app.id.clone(),
        name: app.name.clone(),
        maintenance: app.maintenance,
        created_at: Some(app.created_at.clone()),
        updated_at: Some(app.updated_at.clone()),
        web_url: Some(format!("https://{}.herokuapp.com/", app.name)),
        stack: Some(NameRef {
            id: stable_id("stack:heroku-24"),
            name: "heroku-24".into(),
        }),
        region: Some(NameRef {
            id: stable_id("region:us"),
            name: "us".into(),
        }),
        owner: Some(Owner {
            id: stable_id("account:sim"),
            email: "sim@example.com".into(),
        }),
    };
    merge(
        to_value(&model),
        json!({
            "acm": false,
            "archived_at": null,
            "buildpack_provided_description": "Node.js",
            "build_stack": {"id": stable_id("stack:heroku-24"), "name": "heroku-24"},
            "generation": {"id": stable_id("generation:cedar"), "name": "cedar"},
            "git_url": format!("https://git.heroku.com/{}.git", app.name),
            "internal_routing": null,
            "organization": null,
            "team": null,
            "released_at": app.created_at,
            "repo_size": null,
            "slug_size": null,
            "space": null,
        }),
    )
}

pub(crate) fn formation(app: &AppState, f: &FormationState) -> Value {
    to_value(&Formation {
        id: f.id.clone(),
        process_type: f.process_type.clone(),
        quantity: f.quantity,
        size: f.size.clone(),
        dyno_size: Some(NameRef {
            id: stable_id(&format!("dyno-size:{}", f.size)),
            name: f.size.clone(),
        }),
        command: f.command.clone(),
        app: app_ref(app),
        created_at: Some(f.created_at.clone()),
        updated_at: Some(f.updated_at.clone()),
    })
}

pub(crate) fn dyno(app: &AppState, d: &DynoRec) -> Value {
    let model = Dyno {
        id: d.id.clone(),
        name: d.name.clone(),
        process_type: d.process_type.clone(),
        state: if d.up {
            DynoState::Up
        } else {
            DynoState::Starting
        },
        size: d.size.clone(),
        command: d.command.clone(),
        app: app_ref(app),
        created_at: Some(d.created_at.clone()),
        updated_at: Some(d.updated_at.clone()),
    };
    merge(
        to_value(&model),
        json!({
            "attach_url": null,
            "release": {
                "id": app
                    .releases
                    .iter()
                    .find(|r| r.version == d.release)
                    .map_or_else(|| stable_id(&format!("release:{}", app.id)), |r| r.id.clone()),
                "version": d.release,
            },
        }),
    )
}

/// Price of a plan in cents a month (illustrative figures).
fn cents(plan: &Plan) -> u64 {
    match plan.rank {
        0 => 300,
        r => 1500 * u64::from(r) * u64::from(r),
    }
}

pub(crate) fn plan_ref(plan: &Plan) -> NameRef {
    NameRef {
        id: stable_id(&plan.full_name()),
        name: plan.full_name(),
    }
}

pub(crate) fn service_ref() -> NameRef {
    NameRef {
        id: stable_id(plans::HEROKU_REDIS),
        name: plans::HEROKU_REDIS.into(),
    }
}

pub(crate) fn service_plan(plan: &Plan) -> Value {
    let model = ServicePlan {
        id: stable_id(&plan.full_name()),
        name: plan.full_name(),
        human_name: Some(human(plan.name)),
        description: Some(format!("Heroku Redis {}", human(plan.name))),
        state: Some("public".into()),
        price: Some(PlanPrice {
            cents: cents(plan),
            unit: "month".into(),
            contract: false,
            metered: false,
        }),
    };
    let mut v = to_value(&model);
    // Heroku's plan price is exactly {cents, contract, unit}.
    if let Some(price) = v.get_mut("price").and_then(Value::as_object_mut) {
        price.remove("metered");
    }
    merge(
        v,
        json!({
            "addon_service": service_ref(),
            "created_at": "2016-01-01T00:00:00Z",
            "updated_at": "2016-01-01T00:00:00Z",
            "compliance": null,
            "default": plan.name == "mini",
            "installable_inside_private_network": plan.name.starts_with("private"),
            "installable_outside_private_network": !plan.name.starts_with("private"),
            "space_default": false,
            "visible": true,
        }),
    )
}

/// `premium-0` -> `Premium 0`.
fn human(bare: &str) -> String {
    let mut s = bare.replace('-', " ");
    if let Some(first) = s.get(..1) {
        s = first.to_uppercase() + &s[1..];
    }
    s
}

/// An add-on; `expand_plan` answers `Accept-Expansion: plan` with the full plan object.
pub(crate) fn addon(app: &AppState, a: &AddonState, expand_plan: bool) -> Value {
    let model = AddOn {
        id: a.id.clone(),
        name: a.name.clone(),
        addon_service: service_ref(),
        app: app_ref(app),
        plan: plan_ref(&a.plan),
        state: a.state.clone(),
        config_vars: a.config_vars(),
        provider_id: Some(format!("resource{}@heroku.com", &a.id[..8])),
        web_url: Some(format!("https://data.heroku.com/redis/{}", a.id)),
        billed_price: Some(BilledPrice {
            cents: cents(&a.plan),
            contract: false,
            unit: "month".into(),
        }),
        created_at: Some(a.created_at.clone()),
        updated_at: Some(a.updated_at.clone()),
    };
    let mut v = merge(
        to_value(&model),
        json!({
            "actions": [],
            "billing_entity": {"id": app.id, "name": app.name, "type": "app"},
        }),
    );
    if expand_plan && let Some(o) = v.as_object_mut() {
        o.insert("plan".into(), service_plan(&a.plan));
    }
    v
}

/// An attachment: `app` is the app it is attached to, `owner` the add-on's billing app.
pub(crate) fn attachment(
    app: &AppState,
    owner: &AppState,
    a: &AddonState,
    x: &AttachmentState,
) -> Value {
    let model = AddOnAttachment {
        id: x.id.clone(),
        name: x.name.clone(),
        addon: AttachmentAddOn {
            id: a.id.clone(),
            name: a.name.clone(),
            app: app_ref(owner),
        },
        app: app_ref(app),
        namespace: None,
        created_at: Some(x.created_at.clone()),
        updated_at: Some(x.updated_at.clone()),
    };
    merge(
        to_value(&model),
        json!({
            "web_url": format!("https://data.heroku.com/redis/{}", a.id),
            "log_input_url": null,
        }),
    )
}

/// A release, as `GET /apps/{app}/releases` lists them.
pub(crate) fn release(app: &AppState, r: &ReleaseState) -> Value {
    json!({
        "id": r.id,
        "version": r.version,
        "description": r.description,
        "status": "succeeded",
        "current": app.releases.last().is_some_and(|l| l.id == r.id),
        "eligible_for_rollback": true,
        "app": app_ref(app),
        "addon_plan_names": [],
        "artifacts": [],
        "slug": null,
        "user": {"id": stable_id("account:sim"), "email": "sim@example.com"},
        "output_stream_url": null,
        "created_at": r.created_at,
        "updated_at": r.created_at,
    })
}

/// Whether the request asked for the plan to be expanded (`Accept-Expansion: plan`).
pub(crate) fn wants_plan(headers: &HeaderMap) -> bool {
    headers
        .get("Accept-Expansion")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|p| p.trim() == "plan"))
}

/// A parsed `Range` header: `id ]<last>..; max=200, order=desc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Range {
    pub field: String,
    pub start: Option<String>,
    pub exclusive: bool,
    pub max: usize,
    pub desc: bool,
}

impl Default for Range {
    fn default() -> Self {
        Self {
            field: "id".into(),
            start: None,
            exclusive: false,
            max: PAGE,
            desc: false,
        }
    }
}

/// Parses a `Range` header leniently: the field is optional (`]<id>..; max=200` is read as an
/// id range), unknown options are ignored.
pub(crate) fn parse_range(raw: &str) -> Range {
    let mut r = Range::default();
    let (spec, opts) = raw.split_once(';').unwrap_or((raw, ""));
    let spec = spec.trim();
    let bounds = match spec.split_once(' ') {
        Some((field, rest)) if !field.contains("..") => {
            field.trim().clone_into(&mut r.field);
            rest.trim()
        }
        _ => spec,
    };
    let start = bounds.split("..").next().unwrap_or("");
    let start = match start.strip_prefix(']') {
        Some(s) => {
            r.exclusive = true;
            s
        }
        None => start,
    };
    if !start.is_empty() {
        r.start = Some(start.to_owned());
    }
    for opt in opts.split(',') {
        match opt.trim().split_once('=') {
            Some(("max", n)) => {
                r.max = n.trim().parse().unwrap_or(PAGE).clamp(1, MAX_PAGE);
            }
            Some(("order", o)) => r.desc = o.trim() == "desc",
            _ => {}
        }
    }
    r
}

/// Answers a list: 200 when it fits in the page, else 206 with `Next-Range`.
pub(crate) fn paginate(headers: &HeaderMap, mut items: Vec<Value>) -> Response {
    let range = headers
        .get("Range")
        .and_then(|v| v.to_str().ok())
        .map(parse_range)
        .unwrap_or_default();
    let field = if matches!(range.field.as_str(), "id" | "name") {
        range.field.clone()
    } else {
        "id".to_owned()
    };
    let key = |v: &Value| {
        v.get(&field)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    items.sort_by_key(&key);
    if range.desc {
        items.reverse();
    }
    let items: Vec<Value> = match &range.start {
        Some(start) => items
            .into_iter()
            .filter(|v| {
                let k = key(v);
                let after = if range.desc {
                    k.as_str() < start.as_str()
                } else {
                    k.as_str() > start.as_str()
                };
                after || (!range.exclusive && k == *start)
            })
            .collect(),
        None => items,
    };
    let truncated = items.len() > range.max;
    let page: Vec<Value> = items.into_iter().take(range.max).collect();
    let mut headers = HeaderMap::new();
    headers.insert("Accept-Ranges", HeaderValue::from_static("id, name"));
    if let (Some(first), Some(last)) = (page.first(), page.last())
        && let Ok(v) = HeaderValue::from_str(&format!("{field} {}..{}", key(first), key(last)))
    {
        headers.insert("Content-Range", v);
    }
    let status = if truncated {
        let last = page.last().map(&key).unwrap_or_default();
        let order = if range.desc { ", order=desc" } else { "" };
        if let Ok(v) =
            HeaderValue::from_str(&format!("{field} ]{last}..; max={}{order}", range.max))
        {
            headers.insert("Next-Range", v);
        }
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    (status, headers, axum::Json(Value::Array(page))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_with_and_without_field() {
        assert_eq!(parse_range("id ..; max=10").max, 10);
        let r = parse_range("id ]abc..; max=200");
        assert_eq!((r.start.as_deref(), r.exclusive), (Some("abc"), true));
        let r = parse_range("]abc..; max=5");
        assert_eq!(
            (r.field.as_str(), r.start.as_deref(), r.max),
            ("id", Some("abc"), 5)
        );
        let r = parse_range("name a..; max=2000, order=desc");
        assert_eq!(
            (r.field.as_str(), r.max, r.desc, r.exclusive),
            ("name", 1000, true, false)
        );
    }

    #[test]
    fn humanises_plan_names() {
        assert_eq!(human("premium-0"), "Premium 0");
        assert_eq!(human("mini"), "Mini");
    }
}
