//! The simulator's answers validated against Heroku's published Platform API hyper-schema
//! (`shared/ref/heroku-platform-api-schema.json`, vendored under `tests/fixtures/`), with a
//! small validator for the subset the schema uses. Data API routes, absent from that schema,
//! are checked against the shapes in `heroku-facts.md`.

use crate::common;

use serde_json::{Value, json};

use common::{shop, start};

const SCHEMA: &str = include_str!("../fixtures/heroku-platform-api-schema.json");

/// Resolves `#/definitions/...` pointers.
fn resolve<'a>(root: &'a Value, reference: &str) -> &'a Value {
    let pointer = reference
        .strip_prefix('#')
        .unwrap_or_else(|| panic!("only local refs: {reference}"));
    root.pointer(pointer)
        .unwrap_or_else(|| panic!("unresolvable ref {reference}"))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_ok(allowed: &Value, v: &Value) -> bool {
    let actual = type_name(v);
    let ok = |t: &str| t == actual || (t == "number" && actual == "integer");
    match allowed {
        Value::String(t) => ok(t),
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).any(ok),
        _ => true,
    }
}

fn format_ok(format: &str, s: &str) -> bool {
    match format {
        "uuid" => uuid::Uuid::parse_str(s).is_ok(),
        "date-time" => s.parse::<jiff::Timestamp>().is_ok(),
        "email" => s.contains('@'),
        "uri" => s.contains("://"),
        _ => true,
    }
}

/// Validates `v` against `schema`; pushes `path: problem` lines into `errors`.
fn validate(root: &Value, schema: &Value, v: &Value, path: &str, errors: &mut Vec<String>) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        validate(root, resolve(root, r), v, path, errors);
        return;
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(options) = schema.get(key).and_then(Value::as_array) {
            let matched = options.iter().any(|o| {
                let mut e = Vec::new();
                validate(root, o, v, path, &mut e);
                e.is_empty()
            });
            if !matched {
                errors.push(format!("{path}: matches none of {key} ({v})"));
            }
        }
    }
    if let Some(t) = schema.get("type")
        && !type_ok(t, v)
    {
        errors.push(format!("{path}: {} is not of type {t}", type_name(v)));
        return;
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(v)
    {
        errors.push(format!("{path}: {v} not in enum {options:?}"));
    }
    if let (Some(f), Some(s)) = (schema.get("format").and_then(Value::as_str), v.as_str())
        && !format_ok(f, s)
    {
        errors.push(format!("{path}: {s:?} is not a {f}"));
    }
    if let Some(items) = schema.get("items")
        && let Some(list) = v.as_array()
    {
        for (i, item) in list.iter().enumerate() {
            validate(root, items, item, &format!("{path}[{i}]"), errors);
        }
    }
    let Some(obj) = v.as_object() else {
        return;
    };
    let props = schema.get("properties").and_then(Value::as_object);
    if let Some(props) = props {
        for (name, sub) in props {
            if let Some(value) = obj.get(name) {
                validate(root, sub, value, &format!("{path}.{name}"), errors);
            }
        }
    }
    let strict = schema.get("strictProperties") == Some(&Value::Bool(true));
    let mut required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if strict && let Some(props) = props {
        required.extend(props.keys().map(String::as_str));
    }
    for name in required {
        if !obj.contains_key(name) {
            errors.push(format!("{path}: missing required property {name}"));
        }
    }
    let closed = strict || schema.get("additionalProperties") == Some(&Value::Bool(false));
    if closed && let Some(props) = props {
        for name in obj.keys() {
            if !props.contains_key(name) {
                errors.push(format!("{path}: unexpected property {name}"));
            }
        }
    }
    if let Some(patterns) = schema.get("patternProperties").and_then(Value::as_object) {
        for (name, value) in obj {
            if props.is_some_and(|p| p.contains_key(name)) {
                continue;
            }
            for sub in patterns.values() {
                validate(root, sub, value, &format!("{path}.{name}"), errors);
            }
        }
    }
}

/// The schema link for a method and a concrete path, with the definition holding it.
fn find_link<'a>(root: &'a Value, method: &str, path: &str) -> Option<(&'a str, &'a Value)> {
    let want: Vec<&str> = path.trim_matches('/').split('/').collect();
    for (name, def) in root["definitions"].as_object()? {
        for link in def
            .get("links")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if link["method"].as_str() != Some(method) {
                continue;
            }
            let href: Vec<&str> = link["href"]
                .as_str()
                .unwrap_or("")
                .trim_matches('/')
                .split('/')
                .collect();
            let matches = href.len() == want.len()
                && href
                    .iter()
                    .zip(&want)
                    .all(|(h, w)| h.starts_with("{(") || h == w);
            if matches {
                return Some((name.as_str(), link));
            }
        }
    }
    None
}

#[tokio::test]
async fn every_served_platform_route_matches_heroku_schema() {
    let root: Value = serde_json::from_str(SCHEMA).expect("the schema parses");
    let sim = start(shop(1, "premium-0", 10, 1)).await;
    let http = reqwest::Client::new();
    let addon = "redis-test-11111";
    let calls: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", "/account".into(), None),
        ("GET", "/account/rate-limits".into(), None),
        ("GET", "/apps".into(), None),
        ("GET", "/users/~/apps".into(), None),
        ("GET", "/apps/shop".into(), None),
        (
            "PATCH",
            "/apps/shop".into(),
            Some(json!({"maintenance": false})),
        ),
        ("GET", "/apps/shop/formation".into(), None),
        ("GET", "/apps/shop/formation/web".into(), None),
        (
            "PATCH",
            "/apps/shop/formation/web".into(),
            Some(json!({"quantity": "1"})),
        ),
        (
            "PATCH",
            "/apps/shop/formation".into(),
            Some(json!({"updates": [{"type": "web", "quantity": 1, "size": "standard-1X"}]})),
        ),
        ("GET", "/apps/shop/dynos".into(), None),
        ("GET", "/apps/shop/addons".into(), None),
        ("GET", format!("/apps/shop/addons/{addon}"), None),
        ("GET", "/addons".into(), None),
        ("GET", format!("/addons/{addon}"), None),
        (
            "PATCH",
            format!("/apps/shop/addons/{addon}"),
            Some(json!({"plan": {"name": "heroku-redis:premium-0"}})),
        ),
        (
            "POST",
            "/actions/addons/resolve".into(),
            Some(json!({"addon": "shop_redis", "app": "shop"})),
        ),
        (
            "POST",
            "/actions/addon-attachments/resolve".into(),
            Some(
                json!({"addon_attachment": "shop_redis", "app": "shop", "addon_service": "heroku-redis"}),
            ),
        ),
        ("GET", "/apps/shop/addon-attachments".into(), None),
        ("GET", "/addon-attachments".into(), None),
        ("GET", format!("/addons/{addon}/addon-attachments"), None),
        ("GET", "/addon-services/heroku-redis/plans".into(), None),
        ("GET", "/apps/shop/config-vars".into(), None),
        (
            "POST",
            "/apps/shop/log-sessions".into(),
            Some(json!({"lines": 10})),
        ),
        (
            "POST",
            "/apps/shop/addons".into(),
            Some(json!({"plan": "heroku-redis:premium-1", "attachment": {"name": "schema_new"}})),
        ),
        (
            "POST",
            "/addon-attachments".into(),
            Some(json!({"addon": addon, "app": "shop", "name": "shop_extra"})),
        ),
        // The Heroku CLI's `addons:attach` names the add-on and the app by objects.
        (
            "POST",
            "/addon-attachments".into(),
            Some(json!({"addon": {"name": addon}, "app": {"name": "shop"}, "name": "shop_cli"})),
        ),
        // `addons:detach` reads the attachment by name first.
        ("GET", "/apps/shop/addon-attachments/SHOP_CLI".into(), None),
        ("GET", "/apps/shop/releases".into(), None),
        ("GET", "/apps/shop/releases/1".into(), None),
    ];
    let mut failures = Vec::new();
    for (method, path, body) in calls {
        let (def, link) = find_link(&root, method, &path)
            .unwrap_or_else(|| panic!("{method} {path} is not in Heroku's schema"));
        let mut req = http
            .request(method.parse().unwrap(), sim.api_url().join(&path).unwrap())
            .bearer_auth(sim.api_key())
            .header("Accept", "application/vnd.heroku+json; version=3");
        if let Some(body) = body {
            req = req.json(&body);
        }
        let r = req.send().await.unwrap();
        assert!(r.status().is_success(), "{method} {path}: {}", r.status());
        assert!(r.headers().contains_key("Request-Id"));
        assert!(r.headers().contains_key("RateLimit-Remaining"));
        let value: Value = r.json().await.unwrap();
        let target = link
            .get("targetSchema")
            .cloned()
            .unwrap_or_else(|| json!({"$ref": format!("#/definitions/{def}")}));
        let mut errors = Vec::new();
        validate(&root, &target, &value, "$", &mut errors);
        for e in errors {
            failures.push(format!("{method} {path} ({def}): {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "schema violations:\n{}",
        failures.join("\n")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn errors_have_heroku_bodies() {
    let sim = start(shop(0, "premium-0", 0, 0)).await;
    let http = reqwest::Client::new();
    let r = http
        .get(sim.api_url().join("/apps/shop").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("Request-Id"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["id"], "unauthorized");
    assert!(body["message"].is_string() && body["url"].is_string());
    let r = http
        .get(sim.api_url().join("/apps/none").unwrap())
        .bearer_auth(sim.api_key())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (body["id"].as_str(), body["resource"].as_str()),
        (Some("not_found"), Some("app"))
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn data_api_shapes_match_heroku_facts() {
    let sim = start(shop(0, "premium-0", 10, 0)).await;
    let http = reqwest::Client::new();
    let get = |path: String| {
        let req = http
            .get(sim.data_url().join(&path).unwrap())
            .bearer_auth(sim.api_key());
        async move {
            let r = req.send().await.unwrap();
            assert!(r.status().is_success(), "{path}: {}", r.status());
            r.json::<Value>().await.unwrap()
        }
    };
    let db = get("/redis/v0/databases/redis-test-11111".into()).await;
    for field in [
        "addon_id",
        "created_at",
        "formation",
        "info",
        "name",
        "plan",
        "port",
        "prefer_native_tls",
        "resource_url",
        "version",
    ] {
        assert!(db.get(field).is_some(), "database lacks {field}: {db}");
    }
    assert!(db["formation"]["id"].is_string());
    assert!(db["formation"].get("primary").is_some());
    assert_eq!(db["plan"], "premium-0", "bare plan");
    let rows = db["info"].as_array().unwrap();
    assert!(
        rows.iter()
            .all(|r| r["name"].is_string() && r["values"].is_array())
    );
    assert!(
        rows.iter()
            .any(|r| r["name"] == "Status" && r["values"][0] == "available")
    );

    let wait = get("/redis/v0/databases/redis-test-11111/wait".into()).await;
    assert_eq!(wait, json!({"message": "available", "waiting?": false}));

    let config = get("/redis/v0/databases/redis-test-11111/config".into()).await;
    for setting in ["maxmemory_policy", "timeout", "notify_keyspace_events"] {
        let s = &config[setting];
        assert!(
            s["desc"].is_string() && s.get("value").is_some() && s.get("default").is_some(),
            "{setting}: {s}"
        );
    }
    assert!(config["maxmemory_policy"]["values"].is_object());

    let id = db["addon_id"].as_str().unwrap().to_owned();
    let m = get(format!("/data/maintenances/v1/{id}")).await;
    assert_eq!(m["status"], "none");
    reqwest::Client::new()
        .post(sim.api_url().join("/__sim/maintenance/shop_redis").unwrap())
        .body(r#"{"status": "running"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        get(format!("/data/maintenances/v1/{id}")).await["status"],
        "running"
    );
    sim.shutdown().await;
}

/// `heroku data:maintenances`, `data:maintenances:window` and `…:window:update` read these
/// (shapes from the Heroku CLI's source and fixtures): a list per app, one add-on's
/// maintenance, its window, and a window update that answers the new and the previous window.
#[tokio::test]
async fn data_maintenances_answer_what_the_heroku_cli_reads() {
    let sim = start(shop(1, "premium-0", 10, 1)).await;
    let http = reqwest::Client::new();
    let call = |method: &str, path: String, body: Option<Value>| {
        let mut req = http
            .request(method.parse().unwrap(), sim.api_url().join(&path).unwrap())
            .bearer_auth(sim.api_key());
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (_, app) = call("GET", "/apps/shop".into(), None).await;
    let app_id = app["id"].as_str().unwrap().to_owned();
    let (status, list) = call("GET", format!("/data/maintenances/v1/apps/{app_id}"), None).await;
    assert_eq!(status, 200, "{list}");
    let list = list["maintenances"]
        .as_array()
        .expect("maintenances")
        .clone();
    assert_eq!(list.len(), 1, "one per data add-on of the app: {list:?}");
    let m = &list[0];
    assert_eq!(m["addon"]["name"], "redis-test-11111");
    assert_eq!(m["addon"]["attachments"], json!(["SHOP_REDIS_URL"]));
    assert_eq!(m["addon"]["window"], "Mondays 22:00 to Tuesdays 02:00 UTC");
    assert_eq!(m["status"], "none");
    assert_eq!(m["app"]["name"], "shop");
    let id = m["addon"]["uuid"].as_str().unwrap().to_owned();

    let (_, w) = call("GET", format!("/data/maintenances/v1/{id}/window"), None).await;
    assert_eq!(w, json!({"window": "Mondays 22:00 to Tuesdays 02:00 UTC"}));
    let (status, w) = call(
        "POST",
        format!("/data/maintenances/v1/{id}/window"),
        Some(json!({"day_of_week": "saturday", "time_of_day": "11:30PM"})),
    )
    .await;
    assert_eq!(status, 200, "{w}");
    assert_eq!(
        w,
        json!({"window": "Saturdays 23:30 to Sundays 03:30 UTC",
               "previous_window": "Mondays 22:00 to Tuesdays 02:00 UTC"})
    );
    let (_, info) = call("GET", format!("/data/maintenances/v1/{id}"), None).await;
    assert_eq!(info["window"], "Saturdays 23:30 to Sundays 03:30 UTC");
    let (_, db) = call("GET", "/redis/v0/databases/shop_redis".into(), None).await;
    assert!(
        db["info"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["values"][0] == "Saturdays 23:30 to Sundays 03:30 UTC"),
        "redis:info shows the new window: {db}"
    );

    // A bad day is named, and nothing changes.
    let (status, err) = call(
        "POST",
        format!("/data/maintenances/v1/{id}/window"),
        Some(json!({"day_of_week": "caturday", "time_of_day": "13:30"})),
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        err["message"].as_str().unwrap().contains("caturday"),
        "{err}"
    );
    let (_, w) = call("GET", format!("/data/maintenances/v1/{id}/window"), None).await;
    assert_eq!(w["window"], "Saturdays 23:30 to Sundays 03:30 UTC");
    let (status, _) = call(
        "GET",
        "/data/maintenances/v1/no-such-addon/window".into(),
        None,
    )
    .await;
    assert_eq!(status, 404);
    sim.shutdown().await;
}
