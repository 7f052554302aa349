//! Test harness: a simulator on 127.0.0.1:0 with real redis-servers, a private state dir, and a
//! runner with fast polling. Builder-style helpers keep each test about behaviour.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use upshift::engine::Outcome;
use upshift::heroku::Client;
use upshift::journal::{self, StateDir};
use upshift::plan::RunRequest;
use upshift::plan::facts::{ChangeRequest, DataPolicy};
use upshift::playbook::{self, Playbook};
use upshift::runner::record::Record;
use upshift::runner::{Interrupts, PollPolicy, Runner, RunnerConfig};
use upshift::sim::{BehaviourSpec, Fault, Profile, Scenario, SimConfig, Simulator, SimulatorExt};

pub const APP: &str = "enketo-demo";
pub const MAIN: &str = "enketo_redis_main";
pub const CACHE: &str = "enketo_redis_cache";

/// Fails loudly, never skips, when the machine lacks redis-server.
pub fn require_redis_server() {
    if let Err(e) = upshift::sim::redis_server_path() {
        panic!("{e} (these tests run real Redis servers; they never skip)");
    }
}

pub struct Env {
    pub sim: Simulator,
    pub state_dir: tempfile::TempDir,
}

impl Env {
    /// The Enketo scenario with a plan change taking `provision`.
    pub async fn start(provision: Duration) -> Self {
        Self::start_with(provision, Profile::Optimistic).await
    }

    /// The Enketo scenario under a behaviour profile.
    pub async fn start_with(provision: Duration, profile: Profile) -> Self {
        Self::start_edited(provision, |s| s.behaviour = BehaviourSpec::of(profile)).await
    }

    /// The Enketo scenario as `edit` leaves it.
    pub async fn start_edited(provision: Duration, edit: impl FnOnce(&mut Scenario)) -> Self {
        require_redis_server();
        let mut scenario = Scenario::builtin("enketo").expect("built-in scenario");
        edit(&mut scenario);
        let sim = Simulator::start(SimConfig {
            scenario,
            provision,
            dyno_start: Some(Duration::from_millis(200)),
            ..SimConfig::default()
        })
        .await
        .expect("simulator starts");
        let env = Self {
            sim,
            state_dir: tempfile::tempdir().expect("temp dir"),
        };
        env.wait_app_up().await;
        env
    }

    /// Waits until every dyno is up and has written, like an app that has been running for
    /// a while.
    pub async fn wait_app_up(&self) {
        for _ in 0..200 {
            let writers: std::collections::BTreeSet<String> = self
                .sim
                .timeline()
                .into_iter()
                .filter_map(|e| match e.kind {
                    upshift::sim::EventKind::Write { dyno, ok: true, .. } => Some(dyno),
                    _ => None,
                })
                .collect();
            if writers.len() >= 2 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the scenario's dynos did not come up and write");
    }

    /// Polls the simulator until `cond` holds (every 20 ms, at most 4 s); panics naming `what`.
    pub async fn wait_until(&self, what: &str, cond: impl Fn(&Simulator) -> bool) {
        for _ in 0..200 {
            if cond(&self.sim) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("timed out waiting until {what}");
    }

    pub fn client(&self) -> Client {
        Client::new(self.sim.client_config()).expect("client")
    }

    pub fn state(&self) -> StateDir {
        StateDir::at(self.state_dir.path())
    }

    pub fn runner(&self) -> Runner {
        self.runner_with(Interrupts::default())
    }

    pub fn runner_with(&self, interrupts: Interrupts) -> Runner {
        self.runner_to(interrupts, Arc::new(upshift::ui::HumanReporter::new(false)))
    }

    /// A runner reporting to `reporter` (tests that read the events).
    pub fn runner_to(
        &self,
        interrupts: Interrupts,
        reporter: Arc<dyn upshift::runner::reporter::Reporter>,
    ) -> Runner {
        self.runner_configured(interrupts, reporter, |_| {})
    }

    /// As [`Env::runner_to`], the configuration then changed by `edit`.
    pub fn runner_configured(
        &self,
        interrupts: Interrupts,
        reporter: Arc<dyn upshift::runner::reporter::Reporter>,
        edit: impl FnOnce(&mut RunnerConfig),
    ) -> Runner {
        let mut config = RunnerConfig::new(self.state());
        config.poll = PollPolicy {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(300),
            factor: 1.5,
            low_rate_limit: 10,
            slow: Duration::from_secs(1),
        };
        edit(&mut config);
        Runner::new(self.client(), config, reporter, interrupts)
    }

    pub fn inject(&self, fault: Fault) {
        self.sim.inject(fault);
    }

    /// Write requests the app received (resolve POSTs are reads and do not count).
    pub fn writes(&self) -> Vec<String> {
        self.sim
            .request_log()
            .into_iter()
            .filter(|r| {
                r.method != "GET" && !r.path.ends_with("/resolve") && !r.path.starts_with("/__sim")
            })
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    pub async fn formation(&self) -> Vec<(String, u32, String)> {
        let mut f: Vec<_> = self
            .client()
            .formation(APP)
            .await
            .expect("formation")
            .into_iter()
            .map(|f| (f.process_type, f.quantity, f.size))
            .collect();
        f.sort();
        f
    }

    pub async fn plan_of(&self, addon: &str) -> String {
        let a = self.client().addon(APP, addon).await.expect("add-on");
        upshift::plans::bare_name(&a.plan.name).to_owned()
    }

    /// The other of premium-1 / premium-2 for MAIN, so that every run really changes the plan.
    pub async fn next_target(&self) -> &'static str {
        if self.plan_of(MAIN).await == "premium-1" {
            "premium-2"
        } else {
            "premium-1"
        }
    }

    /// The `wr:` keys the dynos wrote to an add-on named so that `on(name)` holds, and the
    /// platform acknowledged, from the simulator's timeline (not from upshift's report).
    pub fn acknowledged_where(&self, on: impl Fn(&str) -> bool) -> Vec<String> {
        self.sim
            .timeline()
            .into_iter()
            .filter_map(|e| match e.kind {
                upshift::sim::EventKind::Write {
                    addon,
                    key,
                    ok: true,
                    ..
                } if on(&addon) && key.starts_with("wr:") => Some(key),
                _ => None,
            })
            .collect()
    }

    /// The acknowledged `wr:` keys of `addon` (an attachment or add-on name of the app).
    pub async fn acknowledged_writes(&self, addon: &str) -> Vec<String> {
        let name = self.client().addon(APP, addon).await.expect("add-on").name;
        self.acknowledged_where(|a| a == name || a == addon)
    }

    /// Which of `keys` the server of `addon` (as the simulator names it now) lacks.
    pub async fn missing_keys(&self, addon: &str, keys: &[String]) -> Vec<String> {
        missing_at(&self.sim.redis_url(addon), keys).await
    }
}

/// Which of `keys` the Redis at `url` lacks, by this test's own `EXISTS`.
pub async fn missing_at(url: &str, keys: &[String]) -> Vec<String> {
    let mut con = crate::common::redis(url).await;
    let mut missing = Vec::new();
    for k in keys {
        let exists: bool = redis::cmd("EXISTS")
            .arg(k)
            .query_async(&mut con)
            .await
            .expect("EXISTS");
        if !exists {
            missing.push(k.clone());
        }
    }
    missing
}

/// The live-swap scenarios: Enketo with room on MAIN for the live copy's connections.
impl Env {
    /// 2 web dynos x 10 of premium-0's 40 (the stock 26 per dyno fills it, and the live-swap
    /// guard then blocks).
    pub async fn roomy(provision: Duration) -> Self {
        Self::roomy_edited(provision, |_| {}).await
    }

    /// As [`Env::roomy`], the scenario then changed by `edit`.
    pub async fn roomy_edited(provision: Duration, edit: impl FnOnce(&mut Scenario)) -> Self {
        Self::start_edited(provision, |s| {
            for addon in &mut s.apps[0].addons {
                addon.connections.insert("web".into(), 10);
            }
            edit(s);
        })
        .await
    }
}

/// The scenario's seeded keys cut to a tenth (types and TTL share unchanged), for the crash
/// sweeps: they run the whole plan change dozens of times and judge each case by the
/// journal, the formation, the data and the dynos' acknowledged writes, none of which needs
/// 40,000 keys; the snapshot and verify of the full seed were most of their time.
pub fn small_seeds(s: &mut Scenario) {
    for addon in s.apps.iter_mut().flat_map(|a| a.addons.iter_mut()) {
        if let Some(seed) = &mut addon.seed {
            seed.keys = (seed.keys / 10).max(100);
        }
    }
}

pub fn change(addon: &str, plan: &str) -> ChangeRequest {
    ChangeRequest {
        addon: addon.into(),
        plan: plan.into(),
        policy: DataPolicy::Critical,
        connections_per_dyno: None,
    }
}

/// The settle period of the tests' runs, in-process and through the binary (`UPSHIFT_SETTLE`).
pub const TEST_SETTLE: Duration = Duration::from_millis(300);

/// A request with the built-in playbook, or `playbook_toml` when given (settle: [`TEST_SETTLE`]).
pub fn request(changes: Vec<ChangeRequest>, playbook_toml: Option<&str>) -> RunRequest {
    let playbook = match playbook_toml {
        Some(text) => playbook::parse(text, "test.toml").expect("test playbook is valid"),
        None => Playbook::builtin(),
    };
    let mut params = playbook.params.clone();
    // Long enough for several polls to agree, short enough for the suite.
    params.settle = TEST_SETTLE;
    RunRequest {
        app: APP.into(),
        changes,
        params,
        playbook,
    }
}

/// The binary and the journal, as the CLI tests see them.
impl Env {
    /// The `upshift` binary pointed at this simulator and state dir, with nothing inherited from
    /// the developer's shell that could steer it (`HEROKU_APP`, a leftover `UPSHIFT_FAILPOINT`).
    /// Callers set stdio and arguments.
    pub fn upshift(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_upshift"));
        let cfg = self.sim.client_config();
        cmd.env("HEROKU_API_URL", cfg.api_url.as_str())
            .env("HEROKU_DATA_URL", cfg.data_url.as_str())
            .env("HEROKU_API_KEY", self.sim.api_key())
            .env("UPSHIFT_STATE_DIR", self.state_dir.path())
            .env("UPSHIFT_SETTLE", "300ms")
            .env_remove("HEROKU_APP")
            .env_remove("UPSHIFT_FAILPOINT");
        cmd
    }

    /// [`Env::upshift`] with no stdin and its output captured, as the crash tests run it.
    pub fn upshift_piped(&self) -> std::process::Command {
        let mut cmd = self.upshift();
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        cmd
    }

    /// Runs the binary with `args`, aborted right after its `k`th journal record (the
    /// failpoint), and checks that it did die there.
    pub fn crash_at(&self, args: &[String], k: usize, case: &str) {
        let crashed = self
            .upshift_piped()
            .args(args)
            .env("UPSHIFT_FAILPOINT", k.to_string())
            .output()
            .expect("upshift runs");
        assert!(
            !crashed.status.success(),
            "{case}: the failpoint after record {k} did not fire"
        );
    }

    /// `upshift resume --confirm APP`, its output captured.
    pub fn resume(&self) -> std::process::Output {
        self.upshift_piped()
            .args(["resume", "--confirm", APP])
            .output()
            .expect("upshift runs")
    }

    /// The journal file of run `run_id`.
    pub fn journal_path(&self, run_id: &str) -> std::path::PathBuf {
        self.state().run_dir(run_id).join(journal::JOURNAL_FILE)
    }

    /// Every record of run `run_id`'s journal, which must read whole.
    pub fn journal(&self, run_id: &str) -> Vec<Record> {
        journal::read::<Record>(&self.journal_path(run_id))
            .expect("journal readable")
            .into_iter()
            .map(|e| e.record)
            .collect()
    }

    /// The newest run's id and records.
    pub fn latest_journal(&self) -> (String, Vec<Record>) {
        let id = self.state().run_ids().unwrap().pop().expect("a run");
        let records = self.journal(&id);
        (id, records)
    }

    /// The records of the newest journal so far (none before the first run), tolerating a line
    /// being written: for watching a run from outside.
    pub fn journal_so_far(&self) -> Vec<Record> {
        let Some(id) = self.state().run_ids().unwrap().pop() else {
            return Vec::new();
        };
        journal::read_prefix::<Record>(&self.journal_path(&id))
            .0
            .into_iter()
            .map(|e| e.record)
            .collect()
    }

    /// The outcomes run `run_id`'s journal records as finished, in order.
    pub fn outcomes(&self, run_id: &str) -> Vec<Outcome> {
        self.journal(run_id)
            .into_iter()
            .filter_map(|r| match r {
                Record::Finished { outcome, .. } => Some(outcome),
                _ => None,
            })
            .collect()
    }
}

/// The built-in playbook's TOML after `edit`: tests change fields of the parsed playbook (a
/// missing field fails the test), never its text, so a reworded comment cannot silently
/// leave a test on the defaults.
pub fn playbook_with(edit: impl FnOnce(&mut toml::Table)) -> String {
    let mut table: toml::Table = include_str!("../../playbooks/heroku-redis-plan-change.toml")
        .parse()
        .expect("the built-in playbook parses");
    edit(&mut table);
    toml::to_string(&table).expect("playbook serialises")
}

/// Sets an existing `[params]` entry.
pub fn set_param(playbook: &mut toml::Table, key: &str, value: impl Into<toml::Value>) {
    let params = playbook["params"].as_table_mut().expect("[params]");
    assert!(
        params.contains_key(key),
        "the built-in playbook has no param {key}"
    );
    params.insert(key.into(), value.into());
}

/// Sets the timeout of the step running `action`.
pub fn set_step_timeout(playbook: &mut toml::Table, action: &str, timeout: &str) {
    let step = playbook["steps"]
        .as_array_mut()
        .expect("[[steps]]")
        .iter_mut()
        .filter_map(toml::Value::as_table_mut)
        .find(|s| s.get("action").and_then(toml::Value::as_str) == Some(action))
        .unwrap_or_else(|| panic!("the built-in playbook has no {action} step"));
    assert!(step.contains_key("timeout"), "{action} has no timeout");
    step.insert("timeout".into(), timeout.into());
}

/// The built-in playbook with short timeouts for failure tests.
pub fn short_playbook(drain: &str, provision: &str) -> String {
    playbook_with(|p| {
        set_step_timeout(p, "wait-drained", drain);
        set_step_timeout(p, "wait-provisioned", provision);
    })
}

/// `upshift run` of MAIN to `target`, confirmed, without the after-run log watch (5 minutes by
/// default; these tests test the run), then `extra`.
pub fn run_args(target: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "run",
        "-a",
        APP,
        "--change",
        &format!("{MAIN}={target}"),
        "--confirm",
        APP,
        "--watch",
        "0",
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(extra.iter().map(|&a| a.to_owned()));
    args
}
