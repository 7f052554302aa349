//! `upshift wizard` end to end through a real pseudo-terminal: the simulator runs in this
//! process, the binary in a PTY with the simulator's URLs and key in its environment, and the
//! test types what an operator would (enter, arrows, space, the app name, Ctrl-C).

use crate::harness;

use std::process::Command;
use std::time::{Duration, Instant};

use expectrl::{Eof, Session, WaitStatus};
use harness::{APP, CACHE, Env, MAIN};

const ENTER: &str = "\r";
const UP: &str = "\x1b[A";
/// Generous per-prompt timeout: the machine is shared and the simulator provisions for real.
const PROMPT_TIMEOUT: Duration = Duration::from_secs(30);

fn command(env: &Env) -> Command {
    let mut cmd = env.upshift();
    cmd.args(["wizard", "--color", "never"])
        .env("TERM", "xterm")
        .env_remove("NO_COLOR");
    cmd
}

/// The wizard in a PTY wide enough that no list item wraps.
fn spawn(env: &Env) -> Session {
    let mut session = Session::spawn(command(env)).expect("the wizard starts in a pty");
    session
        .get_process_mut()
        .set_window_size(220, 60)
        .expect("pty window size");
    session.set_expect_timeout(Some(PROMPT_TIMEOUT));
    session
}

fn expect(s: &mut Session, needle: &str) {
    if let Err(e) = s.expect(needle) {
        panic!("the wizard never showed {needle:?}: {e}");
    }
}

/// Types keys, after a pause: a prompt's text can reach the screen a moment before it puts
/// the terminal in raw mode, and keys typed in between would be cooked (CR turned into LF).
fn send(s: &mut Session, keys: &str) {
    std::thread::sleep(Duration::from_millis(150));
    s.send(keys).expect("typing into the pty");
}

/// Answers up to the plan review: the app, both add-ons, cache marked as a cache, web as the
/// writer; `pick` answers each plan list.
fn answer_until_review(s: &mut Session, pick: impl Fn(&mut Session, &str)) {
    expect(s, "App (type to filter)");
    send(s, ENTER);
    expect(s, "FULL");
    expect(s, "Add-ons to change");
    send(s, ENTER);
    expect(s, "Which of them are caches?");
    // The cache is listed first (the platform lists add-ons by name): toggle it.
    send(s, " ");
    send(s, ENTER);
    expect(s, "Process types that write to Redis");
    send(s, ENTER);
    for label in ["ENKETO_REDIS_CACHE", "ENKETO_REDIS_MAIN"] {
        expect(s, &format!("New plan for {label}"));
        pick(s, label);
    }
    // Both strategies side by side: Enketo's premium-0 is full, so the live swap (which copies
    // while the app runs) is offered with the reason it is blocked; in place is the default.
    expect(s, "Strategy");
    expect(s, "live swap");
    expect(s, "BLOCKED");
    send(s, ENTER);
    expect(s, "Plan for enketo-demo");
    expect(s, "Unattended, the same run is");
    expect(s, "--cache enketo_redis_cache --confirm enketo-demo");
    expect(s, "Type the app name (enketo-demo) to run this plan");
}

fn exit_code(s: &Session) -> i32 {
    match s.get_process().wait().expect("the wizard exits") {
        WaitStatus::Exited(_, code) => code,
        other => panic!("the wizard did not exit normally: {other:?}"),
    }
}

/// Runs blocking PTY work off the runtime the simulator lives on.
async fn off_runtime<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("pty thread")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wizard_upgrades_both_addons_and_ends_with_a_summary() {
    let t = Instant::now();
    let env = Env::start(Duration::from_secs(1)).await;
    let mut s = spawn(&env);
    let code = off_runtime(move || {
        answer_until_review(&mut s, |s, _| send(s, ENTER));
        send(&mut s, "enketo-demo\r");
        expect(&mut s, "wait-provisioned");
        expect(&mut s, "succeeded on enketo-demo");
        expect(&mut s, "premium-0 -> premium-1");
        expect(&mut s, "What to watch next");
        expect(&mut s, "connections in use");
        s.expect(Eof).expect("the wizard ends");
        exit_code(&s)
    })
    .await;
    assert_eq!(code, 0);
    assert_eq!(env.plan_of(MAIN).await, "premium-1");
    assert_eq!(env.plan_of(CACHE).await, "premium-1");
    assert!(
        env.formation()
            .await
            .contains(&("web".into(), 2, "standard-1X".into()))
    );
    eprintln!("wizard success test took {:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_a_guard_refuses_is_shown_and_cannot_be_chosen() {
    let env = Env::start(Duration::from_secs(1)).await;
    let mut s = spawn(&env);
    let code = off_runtime(move || {
        answer_until_review(&mut s, |s, label| {
            if label == "ENKETO_REDIS_CACHE" {
                expect(s, "mini");
                expect(s, "cannot be chosen: connections after restore");
                // From the suggested premium-1 up twice: mini.
                send(s, UP);
                send(s, UP);
                send(s, ENTER);
                expect(
                    s,
                    "mini cannot be chosen for ENKETO_REDIS_CACHE: connections after restore",
                );
                expect(s, "New plan for ENKETO_REDIS_CACHE");
                // premium-0, the current plan, is refused as well.
                send(s, UP);
                send(s, ENTER);
                expect(
                    s,
                    "premium-0 cannot be chosen for ENKETO_REDIS_CACHE: it is the current plan",
                );
                expect(s, "New plan for ENKETO_REDIS_CACHE");
            }
            send(s, ENTER);
        });
        // A wrong name asks again (the answers above are kept); three wrong names and
        // nothing is done.
        send(&mut s, "enketo\r");
        expect(&mut s, "type it again to run");
        expect(&mut s, "to run this plan");
        send(&mut s, "enketo-dmeo\r");
        expect(&mut s, "type it again to run");
        expect(&mut s, "to run this plan");
        send(&mut s, "enketo\r");
        expect(&mut s, "is not enketo-demo: nothing was done");
        s.expect(Eof).expect("the wizard ends");
        exit_code(&s)
    })
    .await;
    assert_eq!(code, 2);
    assert!(env.writes().is_empty(), "{:?}", env.writes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_the_wait_then_roll_back_restores_the_app() {
    let env = Env::start(Duration::from_secs(8)).await;
    let mut s = spawn(&env);
    let code = off_runtime(move || {
        answer_until_review(&mut s, |s, _| send(s, ENTER));
        send(&mut s, "enketo-demo\r");
        expect(&mut s, "change-plan done");
        expect(&mut s, "preparing");
        send(&mut s, "\x03");
        expect(&mut s, "Interrupted. What now?");
        // Past the plan change the menu does not promise an undo, and says the app is down.
        expect(&mut s, "finish safely and keep the new plan");
        expect(&mut s, "the app stays DOWN with its writers at 0");
        expect(&mut s, "continue the run");
        send(&mut s, ENTER);
        expect(&mut s, "stopping safely after the current step");
        // Past the point of no return the new plan stays: said so, exit 6.
        expect(&mut s, "kept-new-plan on enketo-demo");
        expect(&mut s, "stays on premium-1");
        s.expect(Eof).expect("the wizard ends");
        exit_code(&s)
    })
    .await;
    assert_eq!(code, 6);
    assert!(
        env.formation()
            .await
            .contains(&("web".into(), 2, "standard-1X".into())),
        "{:?}",
        env.formation().await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_then_leave_it_resumable_exits_130_with_an_unfinished_journal() {
    let env = Env::start(Duration::from_secs(8)).await;
    let mut s = spawn(&env);
    let code = off_runtime(move || {
        answer_until_review(&mut s, |s, _| send(s, ENTER));
        send(&mut s, "enketo-demo\r");
        expect(&mut s, "change-plan done");
        expect(&mut s, "preparing");
        send(&mut s, "\x03");
        expect(&mut s, "Interrupted. What now?");
        expect(&mut s, "continue the run");
        send(&mut s, "\x1b[B");
        send(&mut s, ENTER);
        expect(&mut s, "the journal is kept for `upshift resume`");
        expect(&mut s, "upshift rollback");
        s.expect(Eof).expect("the wizard ends");
        exit_code(&s)
    })
    .await;
    assert_eq!(code, 130);
    let unfinished = upshift::runner::unfinished(&env.state(), Some(APP)).expect("state dir");
    assert_eq!(unfinished.len(), 1, "{unfinished:?}");
    // And the journal finishes the job: roll it back in-process.
    let report = env
        .runner()
        .rollback(Some(&unfinished[0].0))
        .await
        .expect("rollback runs");
    assert_eq!(report.outcome, upshift::engine::Outcome::KeptNewPlan);
    assert!(
        env.formation()
            .await
            .contains(&("web".into(), 2, "standard-1X".into()))
    );
}

#[test]
fn without_a_terminal_the_wizard_names_the_run_flags() {
    let out = Command::new(env!("CARGO_BIN_EXE_upshift"))
        .args(["wizard", "--color", "never"])
        .env("HEROKU_API_KEY", "not-used")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("the binary runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs a terminal"), "{err}");
    assert!(
        err.contains("upshift run -a APP --change ADDON=PLAN"),
        "{err}"
    );
    assert!(!err.contains("not-used"));
}

#[test]
fn bare_upshift_points_at_the_wizard() {
    let out = Command::new(env!("CARGO_BIN_EXE_upshift"))
        .output()
        .expect("the binary runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("upshift wizard"), "{err}");
    assert!(err.contains("upshift plan"), "{err}");
}

#[test]
fn completions_are_generated_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(env!("CARGO_BIN_EXE_upshift"))
            .args(["completions", shell])
            .output()
            .expect("the binary runs");
        assert!(out.status.success(), "{shell}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("wizard"), "{shell}: {text}");
    }
}

/// TERM=dumb: the interactive run cannot redraw, so every step is a plain line (nothing goes
/// missing between the confirmation and the summary) and no escape code is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dumb_terminal_gets_every_step_as_a_plain_line_without_escape_codes() {
    let env = Env::start(Duration::from_millis(300)).await;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_upshift"));
    cmd.args([
        "run",
        "-a",
        APP,
        "--change",
        &format!("{MAIN}=premium-1"),
        "--watch",
        "0",
    ])
    .env("HEROKU_API_URL", env.sim.api_url().as_str())
    .env("HEROKU_DATA_URL", env.sim.data_url().as_str())
    .env("HEROKU_API_KEY", env.sim.api_key())
    .env("UPSHIFT_STATE_DIR", env.state_dir.path())
    .env("TERM", "dumb")
    .env_remove("HEROKU_APP")
    .env_remove("NO_COLOR");
    let mut s = Session::spawn(cmd).expect("upshift starts in a pty");
    s.set_expect_timeout(Some(PROMPT_TIMEOUT));
    let (code, after) = off_runtime(move || {
        expect(&mut s, "to run this plan");
        send(&mut s, "enketo-demo\r");
        let rest = s.expect(Eof).expect("the run ends");
        // Eof matches everything left: the run's whole output after the confirmation.
        let mut after = String::from_utf8_lossy(rest.before()).into_owned();
        for m in rest.matches() {
            after.push_str(&String::from_utf8_lossy(m));
        }
        (exit_code(&s), after)
    })
    .await;
    assert_eq!(code, 0, "{after}");
    for step in [
        "capture done",
        "snapshot done",
        "verify done",
        "restore-formation done",
    ] {
        assert!(after.contains(step), "{step} missing: {after}");
    }
    assert!(after.contains("succeeded on enketo-demo"), "{after}");
    assert!(
        !after.contains('\u{1b}'),
        "an escape code on a dumb terminal: {after:?}"
    );
    assert!(!after.contains("warning: WARN"), "a doubled label: {after}");
}

/// The wizard run by a shell in the pty, between two `stty -a`: what the terminal's modes
/// were before upshift started, and what they are after it ended, in the same terminal. The
/// pty starts without echo; the shell turns it on, so a left-off echo shows. The shell traps
/// SIGINT: a Ctrl-C at the terminal reaches the whole foreground group, and a shell it killed
/// could not run the second `stty`.
fn spawn_between_stty(env: &Env, failpoint: Option<&str>) -> Session {
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "trap : INT; stty echo; stty -a; echo STTY-BEFORE-END; \"$0\" wizard --color never; echo \"EXIT=$?\"; stty -a; echo STTY-AFTER-END",
        env!("CARGO_BIN_EXE_upshift"),
    ])
    .env("HEROKU_API_URL", env.sim.api_url().as_str())
    .env("HEROKU_DATA_URL", env.sim.data_url().as_str())
    .env("HEROKU_API_KEY", env.sim.api_key())
    .env("UPSHIFT_STATE_DIR", env.state_dir.path())
    .env("TERM", "xterm")
    .env_remove("HEROKU_APP")
    .env_remove("NO_COLOR");
    match failpoint {
        Some(f) => cmd.env("UPSHIFT_FAILPOINT", f),
        None => cmd.env_remove("UPSHIFT_FAILPOINT"),
    };
    let mut session = Session::spawn(cmd).expect("the shell starts in a pty");
    session
        .get_process_mut()
        .set_window_size(220, 60)
        .expect("pty window size");
    session.set_expect_timeout(Some(PROMPT_TIMEOUT));
    session
}

/// The text up to `needle` (and the needle), failing with what was seen.
fn until(s: &mut Session, needle: &str) -> String {
    match s.expect(needle) {
        Ok(found) => {
            let mut text = String::from_utf8_lossy(found.before()).into_owned();
            text.push_str(needle);
            text
        }
        Err(e) => panic!("never saw {needle:?}: {e}"),
    }
}

/// The mode flags of an `stty -a` listing (`icanon`, `-echo`, …): the lines after the
/// speed/size line and the control characters.
fn modes(stty: &str) -> Vec<String> {
    stty.split_whitespace()
        .filter(|w| {
            let w = w.trim_start_matches('-');
            !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
        .filter(|w| !matches!(*w, "speed" | "baud" | "rows" | "columns" | "line" | "undef"))
        .map(str::to_owned)
        .collect()
}

/// Drives one exit path, then checks: the exit code, the terminal modes equal to those before
/// upshift ran (echo, line editing and signal keys on), and the cursor shown again after the
/// last time it was hidden.
fn assert_terminal_restored(
    mut s: Session,
    drive: impl FnOnce(&mut Session) -> String,
    code: &str,
) {
    let before = until(&mut s, "STTY-BEFORE-END");
    let before = modes(before.rsplit_once("STTY-BEFORE-END").map_or("", |(b, _)| b));
    let mut during = drive(&mut s);
    during.push_str(&until(&mut s, "EXIT="));
    let exit = until(&mut s, "\n");
    assert_eq!(exit.trim(), code, "exit code; output: {during}");
    let after = until(&mut s, "STTY-AFTER-END");
    let after = modes(after.rsplit_once("STTY-AFTER-END").map_or("", |(a, _)| a));
    s.expect(Eof).expect("the shell ends");
    for flag in ["icanon", "echo", "isig"] {
        assert!(
            before.iter().any(|m| m == flag),
            "{flag} before: {before:?}"
        );
    }
    assert_eq!(after, before, "terminal modes after upshift differ");
    let hidden = during.rfind("\x1b[?25l");
    let shown = during.rfind("\x1b[?25h");
    assert!(
        shown.is_some() && shown > hidden,
        "the cursor is left hidden: {during:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_esc_or_sigterm_at_a_question_cancels_with_the_terminal_restored() {
    let env = Env::start(Duration::from_secs(1)).await;
    // Ctrl-C and Esc typed at the question; SIGTERM sent to upshift while it waits there.
    for key in ["\x03", "\x1b", "TERM"] {
        let s = spawn_between_stty(&env, None);
        off_runtime(move || {
            assert_terminal_restored(
                s,
                |s| {
                    expect(s, "App (type to filter)");
                    send(s, ENTER);
                    expect(s, "Add-ons to change");
                    if key == "TERM" {
                        let shell = s.get_process().pid();
                        let children =
                            std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children"))
                                .expect("the shell's children");
                        let upshift = children.split_whitespace().next().expect("upshift runs");
                        let killed = Command::new("kill")
                            .args(["-TERM", upshift])
                            .status()
                            .expect("kill runs");
                        assert!(killed.success());
                    } else {
                        send(s, key);
                    }
                    until(s, "cancelled, nothing changed")
                },
                "130",
            );
        })
        .await;
    }
    assert!(env.writes().is_empty(), "{:?}", env.writes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_at_a_prompt_leaves_the_terminal_restored() {
    let env = Env::start(Duration::from_secs(1)).await;
    let s = spawn_between_stty(&env, Some("panic-in-prompt"));
    off_runtime(move || {
        assert_terminal_restored(s, |s| until(s, "failpoint panic-in-prompt"), "101");
    })
    .await;
    assert!(env.writes().is_empty(), "{:?}", env.writes());
}

/// Ctrl-C during the run opens the menu; nobody answers; the run finishes under it. The menu
/// is closed by the run's end, the summary follows, and the terminal is the shell's again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ctrl_c_menu_left_unanswered_closes_when_the_run_ends() {
    let env = Env::start(Duration::from_secs(4)).await;
    let s = spawn_between_stty(&env, None);
    off_runtime(move || {
        assert_terminal_restored(
            s,
            |s| {
                answer_until_review(s, |s, _| send(s, ENTER));
                send(s, "enketo-demo\r");
                expect(s, "change-plan done");
                send(s, "\x03");
                let mut seen = until(s, "Interrupted. What now?");
                seen.push_str(&until(s, "the run ended before the menu was answered"));
                seen.push_str(&until(s, "succeeded on enketo-demo"));
                seen
            },
            "0",
        );
    })
    .await;
    assert_eq!(env.plan_of(MAIN).await, "premium-1");
}

/// Esc or Ctrl-C at the typed confirmation (the last question, after a part of the name is
/// typed) cancels like at every other question: "cancelled, nothing changed", exit 130, the
/// terminal restored, nothing written. dialoguer's text prompt ignored Esc.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn esc_or_ctrl_c_at_the_typed_confirmation_cancels_with_the_terminal_restored() {
    let env = Env::start(Duration::from_secs(1)).await;
    let formation = env.formation().await;
    for key in ["\x1b", "\x03"] {
        let s = spawn_between_stty(&env, None);
        off_runtime(move || {
            assert_terminal_restored(
                s,
                |s| {
                    answer_until_review(s, |s, _| send(s, ENTER));
                    send(s, "enke");
                    send(s, key);
                    until(s, "cancelled, nothing changed")
                },
                "130",
            );
        })
        .await;
    }
    assert!(env.writes().is_empty(), "{:?}", env.writes());
    assert_eq!(env.formation().await, formation);
    assert_eq!(env.plan_of(MAIN).await, "premium-0");
}

/// The wizard's live swap, end to end in a terminal: with room on the plan the strategy list
/// offers it unblocked, the next question asks what becomes of the old add-on, and "destroy it
/// right after success" is what the run does. The review shows the unattended command with
/// `--retire-old now` and the `retire-old-now` warning; afterwards main is a new add-on on the
/// new plan, the old one is gone, the formation is back and every write the dynos had
/// acknowledged is there (the test's own reads).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wizard_live_swap_asks_about_the_old_addon_and_does_what_was_chosen() {
    let env = Env::roomy(Duration::from_millis(300)).await;
    let client = env.client();
    let old_main = client.addon(APP, MAIN).await.unwrap().name;
    let target = env.next_target().await;
    let mut s = spawn(&env);
    let code = off_runtime(move || {
        expect(&mut s, "App (type to filter)");
        send(&mut s, ENTER);
        expect(&mut s, "Add-ons to change");
        send(&mut s, ENTER);
        expect(&mut s, "Which of them are caches?");
        send(&mut s, " ");
        send(&mut s, ENTER);
        expect(&mut s, "Process types that write to Redis");
        send(&mut s, ENTER);
        for label in ["ENKETO_REDIS_CACHE", "ENKETO_REDIS_MAIN"] {
            expect(&mut s, &format!("New plan for {label}"));
            send(&mut s, ENTER);
        }
        expect(&mut s, "Strategy");
        let listed = until(&mut s, "live swap");
        assert!(!listed.contains("BLOCKED"), "{listed}");
        send(&mut s, "\x1b[B");
        send(&mut s, ENTER);
        expect(&mut s, "The old add-on after success");
        expect(&mut s, "destroy it right after success (no way back)");
        send(&mut s, "\x1b[B");
        send(&mut s, "\x1b[B");
        send(&mut s, ENTER);
        expect(&mut s, "Plan for enketo-demo");
        let review = until(&mut s, "Type the app name (enketo-demo) to run this plan");
        assert!(
            review.contains("--retire-old now destroys")
                && review.contains("--strategy live-swap --retire-old now"),
            "the review warns and shows the unattended command: {review}"
        );
        send(&mut s, "enketo-demo\r");
        expect(&mut s, "succeeded on enketo-demo");
        s.expect(Eof).expect("the wizard ends");
        exit_code(&s)
    })
    .await;
    assert_eq!(code, 0);
    let new_main = client.addon(APP, MAIN).await.unwrap().name;
    assert_ne!(new_main, old_main, "main moved to a new add-on");
    assert_eq!(env.plan_of(MAIN).await, target);
    let names: Vec<String> = client
        .addons(APP)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert!(
        !names.contains(&old_main),
        "the old add-on was destroyed as chosen: {names:?}"
    );
    assert!(
        env.formation()
            .await
            .contains(&("web".into(), 2, "standard-1X".into()))
    );
    let acked = env.acknowledged_writes(MAIN).await;
    assert!(!acked.is_empty(), "the dynos wrote");
    assert_eq!(env.missing_keys(MAIN, &acked).await, Vec::<String>::new());
}

/// `TERM=dumb`: the wizard's lists move the cursor, so it refuses (exit 2) and names the
/// commands that take the answers as flags, before any call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dumb_terminal_is_refused_the_wizard_with_the_commands_to_use() {
    let env = Env::start(Duration::from_millis(300)).await;
    let mut cmd = command(&env);
    cmd.env("TERM", "dumb");
    let mut s = Session::spawn(cmd).expect("the wizard starts in a pty");
    s.set_expect_timeout(Some(PROMPT_TIMEOUT));
    let code = off_runtime(move || {
        expect(&mut s, "TERM says this terminal cannot");
        expect(&mut s, "upshift plan -a APP --change ADDON=PLAN");
        s.expect(Eof).expect("the wizard ends");
        exit_code(&s)
    })
    .await;
    assert_eq!(code, 2);
    assert!(env.writes().is_empty(), "{:?}", env.writes());
}

/// 40 columns under `LC_ALL=C`: a plan's mark stays on its item, its reason is printed whole
/// above the list, and cut text ends with ASCII `...`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_narrow_terminal_keeps_the_marks_and_shows_the_reasons() {
    let env = Env::start(Duration::from_millis(300)).await;
    let mut cmd = command(&env);
    cmd.env("LC_ALL", "C").env("LANG", "C");
    let mut s = Session::spawn(cmd).expect("the wizard starts in a pty");
    s.get_process_mut()
        .set_window_size(40, 60)
        .expect("pty window size");
    s.set_expect_timeout(Some(PROMPT_TIMEOUT));
    let code = off_runtime(move || {
        expect(&mut s, "App (type to filter)");
        send(&mut s, ENTER);
        expect(&mut s, "Redis INFO...");
        expect(&mut s, "Add-ons to change");
        send(&mut s, ENTER);
        expect(&mut s, "Which of them are caches?");
        send(&mut s, ENTER);
        expect(&mut s, "Process types that write to Redis");
        send(&mut s, ENTER);
        // The reasons above the list, whole; the marks on the items.
        expect(&mut s, "mini: cannot be chosen: connections");
        expect(&mut s, "after restore");
        expect(&mut s, "premium-0: the current plan");
        expect(&mut s, "New plan for ENKETO_REDIS_CACHE");
        expect(&mut s, "mini (cannot be chosen)");
        expect(&mut s, "premium-0 (current plan)");
        send(&mut s, "\x03");
        s.expect(Eof).expect("the wizard ends");
        exit_code(&s)
    })
    .await;
    assert_eq!(code, 130);
    assert!(env.writes().is_empty(), "{:?}", env.writes());
}
