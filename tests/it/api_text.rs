//! Text from the Heroku API on the terminal: add-on, plan, process type and dyno size names
//! and an error's message, made hostile by a proxy between upshift and the simulator (as a
//! compromised proxy or a captive portal could), must show as escapes, never act on the
//! terminal or forge a line. `--json` keeps the exact strings.

use crate::harness;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use harness::{APP, Env, MAIN};

/// What the proxy does: replace text in every answer's body, and answer `canned` (status,
/// body) instead of forwarding when a path ends with its suffix.
#[derive(Clone, Default)]
struct Rules {
    replace: Vec<(String, String)>,
    canned: Option<(&'static str, u16, &'static str)>,
}

/// Starts the proxy in front of `upstream`; returns its base URL.
async fn proxy(upstream: reqwest::Url, rules: Rules) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = Arc::new((reqwest::Client::new(), upstream, rules));
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let state = Arc::clone(&state);
            async move { forward(&state, method, &uri, headers, body).await }
        },
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

async fn forward(
    (client, upstream, rules): &(reqwest::Client, reqwest::Url, Rules),
    method: Method,
    uri: &Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some((suffix, status, canned)) = rules.canned
        && uri.path().ends_with(suffix)
    {
        let mut r = (StatusCode::from_u16(status).unwrap(), canned).into_response();
        r.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        r.headers_mut()
            .insert("request-id", "proxy-1".parse().unwrap());
        return r;
    }
    let url = upstream
        .join(uri.path_and_query().map_or("/", |p| p.as_str()))
        .unwrap();
    let mut req = client.request(method, url).body(body);
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            req = req.header(name, value);
        }
    }
    let answer = req.send().await.unwrap();
    let status = answer.status();
    let mut out = HeaderMap::new();
    for (name, value) in answer.headers() {
        if !matches!(
            name.as_str(),
            "content-length" | "transfer-encoding" | "connection"
        ) {
            out.insert(name, value.clone());
        }
    }
    let mut text = answer.text().await.unwrap();
    for (a, b) in &rules.replace {
        text = text.replace(a.as_str(), b.as_str());
    }
    (status, out, text).into_response()
}

/// Whether people would see a control character or a bidi override act rather than show.
fn raw_controls(text: &str) -> Vec<char> {
    text.chars()
        .filter(|c| {
            (c.is_control() && *c != '\n' && *c != '\t')
                || matches!(u32::from(*c), 0x200B..=0x200F | 0x2028..=0x202E | 0x2066..=0x2069)
        })
        .collect()
}

fn run(env: &Env, api: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = env
        .upshift()
        .args(args)
        .env("HEROKU_API_URL", api)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("upshift runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A JSON string: `s` quoted, its control characters escaped.
fn json(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// The add-on's name as the proxy rewrites it: a title change, a bell, a colour.
const ADDON: &str = "redis-cubed-12345\u{1b}]0;pwned\u{7}\u{1b}[31mFORGED";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_from_the_api_show_as_escapes_in_the_plan() {
    let env = Env::start(Duration::from_millis(300)).await;
    let change = format!("{MAIN}=premium-2");
    let plain = run(
        &env,
        env.sim.api_url().as_str(),
        &["plan", "-a", APP, "--change", &change],
    );
    assert!(plain.1.contains("redis-cubed-12345"), "{plain:?}");
    // Two proxies: a process type that is not `web` any more blocks the plan before the steps
    // that show the dyno size.
    let sets = [
        (
            vec![
                (json("redis-cubed-12345"), json(ADDON)),
                (json("standard-1X"), json("standard-1X\u{1b}[2JFORGED")),
                (
                    json("heroku-redis:premium-0"),
                    json("heroku-redis:premium-0\u{1b}[2JFORGED-PLAN"),
                ),
            ],
            vec![
                "redis-cubed-12345\\x1b]0;pwned\\x07\\x1b[31mFORGED",
                "standard-1X\\x1b[2JFORGED",
                "premium-0\\x1b[2JFORGED-PLAN",
            ],
        ),
        (
            vec![(
                "\"type\":\"web\"".to_owned(),
                format!("\"type\":{}", json("web\u{1b}[2J\nFORGED-TYPE\u{202e}")),
            )],
            vec!["web\\x1b[2J\\x0aFORGED-TYPE\\u{202e}"],
        ),
    ];
    for (replace, shown) in sets {
        let api = proxy(
            env.sim.api_url(),
            Rules {
                replace,
                canned: None,
            },
        )
        .await;
        let (code, stdout, stderr) = run(&env, &api, &["plan", "-a", APP, "--change", &change]);
        let all = format!("{stdout}{stderr}");
        assert!(raw_controls(&all).is_empty(), "{code:?} {all:?}");
        // The names are there, shown for what they are.
        for s in shown {
            assert!(all.contains(s), "{s} missing: {all}");
        }
        // No line of upshift's output starts with the forged text.
        assert!(!all.lines().any(|l| l.starts_with("FORGED")), "{all}");
    }

    // JSON keeps the exact strings (JSON escapes them).
    let api = proxy(
        env.sim.api_url(),
        Rules {
            replace: vec![(json("redis-cubed-12345"), json(ADDON))],
            canned: None,
        },
    )
    .await;
    let (_, out, _) = run(
        &env,
        &api,
        &["plan", "-a", APP, "--change", &change, "--json"],
    );
    assert!(raw_controls(&out).is_empty(), "{out:?}");
    let doc: serde_json::Value = serde_json::from_str(&out).expect("plan --json is JSON");
    assert!(doc.to_string().contains(&json(ADDON)), "{out}");
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_api_error_message_shows_as_escapes() {
    let env = Env::start(Duration::from_millis(300)).await;
    let change = format!("{MAIN}=premium-2");
    for status in [404, 422] {
        let rules = Rules {
            replace: Vec::new(),
            canned: Some((
                "/formation",
                status,
                r#"{"id":"not_found\u001b[2J","message":"\u001b]0;pwned-title\u0007\u001b[2J\u001b[Hupshift: all good\nline2 \u202eevil"}"#,
            )),
        };
        let api = proxy(env.sim.api_url(), rules).await;
        let (code, stdout, stderr) = run(&env, &api, &["plan", "-a", APP, "--change", &change]);
        assert_eq!(code, Some(2), "{stdout}{stderr}");
        assert!(raw_controls(&stderr).is_empty(), "{stderr:?}");
        assert!(
            stderr.contains(
                "\\x1b]0;pwned-title\\x07\\x1b[2J\\x1b[Hupshift: all good\\x0aline2 \\u{202e}evil"
            ),
            "{stderr}"
        );
        assert!(!stderr.lines().any(|l| l.starts_with("line2")), "{stderr}");
        assert!(
            !stderr.lines().any(|l| l.starts_with("upshift:")),
            "{stderr}"
        );
    }
    env.sim.shutdown().await;
}
