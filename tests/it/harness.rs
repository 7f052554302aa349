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
        let mut config = RunnerConfig::new(self.state());
        config.poll = PollPolicy {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(300),
            factor: 1.5,
            low_rate_limit: 10,
            slow: Duration::from_secs(1),
        };
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
