//! A hostile or broken Heroku API (or something in between): bodies that never end, lists that
//! never end, redirects to other hosts, an ambiguous attachment resolve, another service's
//! plan. Each case through the `upshift` binary against the simulator's faults (or a tiny
//! server of the test's own), judged by exit code, peak memory, time, the platform's state
//! and the journal.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use upshift::engine::Outcome;
use upshift::sim::Fault;

use crate::harness::{APP, CACHE, Env, MAIN, run_args};
use crate::run::assert_formation_restored;

/// What one binary run did: exit code, stdout, stderr, peak RSS (kB, from `VmHWM`), time.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    peak_kb: u64,
    took: Duration,
}

/// Runs the binary with `args`, sampling its peak RSS every 5 ms; kills it after 60 s (a
/// test that would otherwise hang says so instead). The sampled peak is a lower bound: the
/// error message proves the cap fired, the peak and the time that nothing grew meanwhile.
async fn run_measured(env: &Env, args: &[String]) -> Ran {
    let started = Instant::now();
    let mut child = env
        .upshift_piped()
        .args(args)
        .spawn()
        .expect("upshift starts");
    let status = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status)
            && let Some(kb) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak_kb = peak_kb.max(kb);
        }
        if child.try_wait().expect("try_wait").is_some() {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            child.kill().expect("kill");
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = started.elapsed();
    let out = child.wait_with_output().expect("output");
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        peak_kb,
        took,
    }
}

fn plan_args(target: &str) -> Vec<String> {
    ["plan", "-a", APP, "--change", &format!("{MAIN}={target}")]
        .map(str::to_owned)
        .to_vec()
}

fn requests_to(env: &Env, method: &str, suffix: &str) -> usize {
    env.sim
        .request_log()
        .into_iter()
        .filter(|r| r.method == method && r.path.ends_with(suffix))
        .count()
}

/// Peak RSS allowed for a plan or a run that meets an endless body: the 16 MiB cap plus the
/// process's ordinary footprint (a debug build with Tokio and rustls), far below the
/// gigabytes an unbounded read reaches in a few seconds.
const PEAK_KB: u64 = 200 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_body_fails_plan_at_once_with_bounded_memory() {
    let env = Env::start(Duration::from_millis(300)).await;
    for chunked in [false, true] {
        env.inject(Fault::EndlessBody {
            method: Some("GET".into()),
            path: "/apps/*/formation".into(),
            chunked,
            nth: 1,
            times: 1,
        });
        let ran = run_measured(&env, &plan_args("premium-2")).await;
        let case = format!("chunked={chunked}: {}", ran.stderr);
        assert_eq!(ran.code, Some(1), "{case}");
        assert!(
            ran.stderr.contains(
                "answer to GET /apps/enketo-demo/formation is larger than upshift accepts"
            ) && ran.stderr.contains("16 MiB at most"),
            "{case}"
        );
        assert_eq!(
            ran.stderr.contains("Content-Length 1000000000000"),
            !chunked,
            "{case}"
        );
        assert!(!ran.stderr.contains(&env.sim.api_key()), "{case}");
        assert!(ran.peak_kb < PEAK_KB, "peak {} kB; {case}", ran.peak_kb);
        assert!(ran.took < Duration::from_secs(20), "{:?}; {case}", ran.took);
        assert!(ran.stdout.is_empty(), "{}", ran.stdout);
    }
    env.sim.shutdown().await;
}

/// The Data API too, and a body without any length: the `/wait` of MAIN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_data_api_body_is_cut_at_the_cap() {
    let env = Env::start(Duration::from_millis(300)).await;
    env.inject(Fault::EndlessBody {
        method: Some("GET".into()),
        path: "/redis/v0/databases/*/config".into(),
        chunked: true,
        nth: 1,
        times: 10,
    });
    let ran = run_measured(&env, &plan_args("premium-2")).await;
    // The capture reads the config as optional facts: the plan still answers, bounded.
    assert!(
        ran.peak_kb < PEAK_KB,
        "peak {} kB; {}",
        ran.peak_kb,
        ran.stderr
    );
    assert!(ran.took < Duration::from_secs(20), "{:?}", ran.took);
    assert!(
        requests_to(&env, "GET", "/config") >= 1,
        "{:?}",
        env.sim.request_log()
    );
    env.sim.shutdown().await;
}

/// Mid-run, after the writers stopped: the dyno poll of wait-drained gets an endless body. The
/// run fails like any API failure there: rolled back, the formation restored, exit 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_body_mid_run_rolls_back() {
    let env = Env::start(Duration::from_millis(300)).await;
    env.inject(Fault::EndlessBody {
        method: Some("GET".into()),
        path: "/apps/*/dynos".into(),
        chunked: true,
        nth: 2,
        times: 1,
    });
    let target = env.next_target().await;
    let ran = run_measured(&env, &run_args(target, &[])).await;
    let case = format!("{}\n{}", ran.stdout, ran.stderr);
    assert_eq!(ran.code, Some(1), "{case}");
    assert!(
        ran.stderr
            .contains("GET /apps/enketo-demo/dynos is larger than upshift accepts"),
        "{case}"
    );
    assert!(ran.peak_kb < PEAK_KB, "peak {} kB; {case}", ran.peak_kb);
    assert!(
        env.writes()
            .iter()
            .any(|w| w == "PATCH /apps/enketo-demo/formation"),
        "the fault must hit after the scale-down: {:?}",
        env.writes()
    );
    assert_formation_restored(&env).await;
    assert_ne!(env.plan_of(MAIN).await, target);
    let (run_id, _) = env.latest_journal();
    assert_eq!(env.outcomes(&run_id), [Outcome::RolledBack], "{case}");
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_next_range_that_repeats_or_never_ends_stops_the_list() {
    let env = Env::start(Duration::from_millis(300)).await;
    for repeat in [true, false] {
        let before = requests_to(&env, "GET", "/formation");
        env.inject(Fault::EndlessPages {
            method: Some("GET".into()),
            path: "/apps/*/formation".into(),
            repeat,
            nth: 1,
            times: u32::MAX,
        });
        let ran = run_measured(&env, &plan_args("premium-2")).await;
        env.sim.clear_faults();
        let case = format!("repeat={repeat}: {}", ran.stderr);
        assert_eq!(ran.code, Some(1), "{case}");
        assert!(
            ran.stderr
                .contains("list GET /apps/enketo-demo/formation does not end"),
            "{case}"
        );
        let sent = requests_to(&env, "GET", "/formation") - before;
        if repeat {
            assert!(ran.stderr.contains("Next-Range repeats"), "{case}");
            // The first page, then the one whose Next-Range repeats the Range sent.
            assert_eq!(sent, 2, "{case}");
        } else {
            assert!(ran.stderr.contains("after 100 pages"), "{case}");
            assert_eq!(sent, 100, "{case}");
        }
        assert!(ran.took < Duration::from_secs(30), "{:?}", ran.took);
    }
    env.sim.shutdown().await;
}

/// A tiny HTTP server: every request is answered `307` to `to`.
fn redirector(to: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for mut socket in listener.incoming().flatten() {
            let mut buf = [0u8; 8192];
            let _ = socket.read(&mut buf);
            let _ = write!(
                socket,
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    format!("http://{addr}")
}

/// A tiny HTTP server that records every request it gets (head and all) and answers 200.
fn recorder() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for mut socket in listener.incoming().flatten() {
            let mut buf = [0u8; 8192];
            let n = socket.read(&mut buf).unwrap_or(0);
            log.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}");
        }
    });
    (format!("http://{addr}"), seen)
}

/// Webhooks are not redirected: the other host gets nothing (no notification, no Referer with
/// the hook's secret); the delivery counts as failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_redirects_are_not_followed() {
    use upshift::notify::{Notifier, NotifyConfig, NotifySummary};
    use upshift::runner::{Reporter, RunEvent};
    let (catcher, seen) = recorder();
    let hook = format!(
        "{}/hook/SECRET?token=QTOKEN",
        redirector(format!("{catcher}/x"))
    );
    let notifier = Notifier::start(
        vec![url::Url::parse(&hook).unwrap()],
        APP,
        vec![],
        &NotifyConfig {
            attempts: 2,
            backoff: Duration::from_millis(10),
            ..NotifyConfig::default()
        },
    )
    .expect("notifier");
    notifier.report(&RunEvent::Started {
        run_id: "r".into(),
        journal: "j".into(),
    });
    let sent = notifier.finish(Duration::from_secs(10)).await;
    assert_eq!(
        sent,
        NotifySummary {
            delivered: 0,
            failed: 1,
            dropped: 0,
            redirected: 1,
        }
    );
    // (`api_redirects_to_another_host_are_refused` shows the recorder does record.)
    assert!(
        seen.lock().unwrap().is_empty(),
        "{:?}",
        seen.lock().unwrap()
    );
    let line = upshift::unattended::event::human_line(&RunEvent::NotificationsDone {
        delivered: sent.delivered,
        failed: sent.failed,
        dropped: sent.dropped,
        redirected: sent.redirected,
    })
    .expect("a warning line");
    assert!(
        line.contains("1 failed (1 answered with a redirect: upshift does not follow"),
        "{line}"
    );
    assert!(
        !line.contains("SECRET") && !line.contains("QTOKEN"),
        "{line}"
    );
}

/// The API client neither follows a redirect to another host nor sends it a Referer: the 307 is
/// the API error it is, and the other host gets nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_redirects_to_another_host_are_refused() {
    let (catcher, seen) = recorder();
    let base = redirector(format!("{catcher}/apps/enketo-demo"));
    let client = upshift::heroku::Client::new(upshift::heroku::ClientConfig {
        api_url: url::Url::parse(&base).unwrap(),
        data_url: url::Url::parse(&base).unwrap(),
        token: upshift::heroku::Token::new("TOKEN-SECRET"),
        retry: upshift::heroku::RetryPolicy::default(),
    })
    .expect("client");
    let err = client.app(APP).await.expect_err("a 307 is no app");
    assert_eq!(err.status(), Some(307), "{err}");
    assert!(err.to_string().contains("GET /apps/enketo-demo"), "{err}");
    assert!(
        seen.lock().unwrap().is_empty(),
        "{:?}",
        seen.lock().unwrap()
    );
    // The recorder works: the same client straight at it is recorded (no Referer there).
    let direct = upshift::heroku::Client::new(upshift::heroku::ClientConfig {
        api_url: url::Url::parse(&catcher).unwrap(),
        data_url: url::Url::parse(&catcher).unwrap(),
        token: upshift::heroku::Token::new("TOKEN-SECRET"),
        retry: upshift::heroku::RetryPolicy::default(),
    })
    .expect("client");
    let _ = direct.app(APP).await;
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(!got[0].to_ascii_lowercase().contains("referer"), "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ambiguous_resolve_is_refused_in_plan_and_run() {
    let env = Env::start(Duration::from_millis(300)).await;
    let main = env.client().addon(APP, MAIN).await.unwrap().name;
    let cache = env.client().addon(APP, CACHE).await.unwrap().name;
    let plan_before = env.plan_of(CACHE).await;
    env.inject(Fault::ResolveAlso {
        addon: CACHE.into(),
        alone: false,
    });
    for args in [plan_args("premium-4"), run_args("premium-4", &[])] {
        let ran = run_measured(&env, &args).await;
        let case = format!("{args:?}: {}{}", ran.stdout, ran.stderr);
        assert_eq!(ran.code, Some(2), "{case}");
        assert!(
            ran.stderr.contains(&format!("{MAIN} is ambiguous"))
                && ran.stderr.contains(&main)
                && ran.stderr.contains(&cache),
            "{case}"
        );
    }
    assert_eq!(env.writes(), Vec::<String>::new());
    assert_eq!(env.plan_of(CACHE).await, plan_before);
    env.sim.shutdown().await;
}

/// The resolve answers one attachment, named as asked, but of another add-on (the cache): its
/// config vars do not hold MAIN's, so plan and run refuse it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolve_to_another_add_on_is_refused() {
    let env = Env::start(Duration::from_millis(300)).await;
    env.inject(Fault::ResolveAlso {
        addon: CACHE.into(),
        alone: true,
    });
    for args in [plan_args("premium-4"), run_args("premium-4", &[])] {
        let ran = run_measured(&env, &args).await;
        let case = format!("{args:?}: {}{}", ran.stdout, ran.stderr);
        assert_eq!(ran.code, Some(2), "{case}");
        assert!(
            ran.stderr
                .contains("does not hold the config var ENKETO_REDIS_MAIN_URL"),
            "{case}"
        );
    }
    assert_eq!(env.writes(), Vec::<String>::new());
    env.sim.shutdown().await;
}

/// An add-on whose plan names another service is not a heroku-redis add-on on that plan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_services_plan_is_refused() {
    let env = Env::start(Duration::from_millis(300)).await;
    let current = env.plan_of(MAIN).await;
    env.inject(Fault::ReplaceBody {
        method: Some("GET".into()),
        path: "/apps/*/addons/*".into(),
        from: format!("heroku-redis:{current}"),
        to: format!("heroku-postgresql:{current}"),
        nth: 1,
        times: u32::MAX,
    });
    for args in [plan_args("premium-4"), run_args("premium-4", &[])] {
        let ran = run_measured(&env, &args).await;
        let case = format!("{args:?}: {}{}", ran.stdout, ran.stderr);
        assert_eq!(ran.code, Some(2), "{case}");
        assert!(
            ran.stderr.contains(&format!(
                "its plan heroku-postgresql:{current} is not a heroku-redis plan"
            )),
            "{case}"
        );
    }
    assert_eq!(env.writes(), Vec::<String>::new());
    env.sim.shutdown().await;
}
