//! The runner's end-to-end cases under every built-in behaviour profile (issue 11, "How to
//! build it": a matrix, not copies). One macro generates a module per profile; each case is
//! one function taking the profile, written once beside its kind (`run`, `unattended`,
//! `crash`), and every generated test starts its own simulator, so the harness runs the
//! profiles side by side. `the_matrix_covers_every_built_in_profile` fails when a profile is
//! added to `Profile::ALL` without its line here, so a new profile cannot go untested.
//!
//! Per profile:
//! - `succeeds_without_losing_a_write`, `a_failed_provisioning_rolls_back` (`run`): the main
//!   run and a rollback, judged by the test's own digests.
//! - `an_unattended_run_then_crashes_and_resumes` (`unattended`, then `crash` with
//!   `--features failpoints`): `upshift run` as cron starts it, in a window, with a webhook,
//!   JSON event lines and the post-change log watch; its journal then gives the crash part
//!   its points, in the same simulator (one simulator and one run fewer per profile than two
//!   separate cases: the suite's wall time is the budget).
//!
//! The crash part is a representative subset of the crash sweep, not the whole of it. The
//! sweep (`crash.rs`) crashes at every journal point (about 40) under the default profile, in
//! three shards of about two minutes each; seven times that would add some 10 minutes to a
//! suite that may grow by one minute (four moments under every profile and a separate
//! unattended case, tried first, added 73 s to the integration binary: 277 s against 204 s
//! with the new cases skipped; this shape: 257 s against 196 s, four test threads, two cores
//! under load). So each profile is crashed, then resumed, right after the moments where it
//! behaves differently:
//! - every profile: the plan change, the point of no return, where `resume` must tell the new
//!   server from the old by the evidence journaled before the crash, whatever the platform
//!   shows (`in-place`'s early `provisioned`, `lagging`'s Data API, `late-flip`'s old plan
//!   name, `sparse`'s bodies);
//! - `strict` and `heroku` also the drain: a drain without `CLIENT LIST`, and dynos writing
//!   through their stop grace, redone by `resume`.
//!
//! The other moments (snapshot, verify, restore) do not depend on the profile: the sweep
//! covers them. At the end every write the platform acknowledged to main is still there, read
//! by the test. The other unattended tests (window gate, lock, drift, refusals before any
//! write, the watch's own figures) stop before the platform's behaviour matters: they run
//! under the default profile only.

/// A moment of a run after which the matrix crashes it (see the module doc).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Moment {
    /// The drain ended (its first `old-server` record).
    Drain,
    /// The plan change was sent: the point of no return.
    PlanChange,
}

/// The generated tests per profile; see the module doc.
macro_rules! profile_matrix {
    ($($module:ident => $profile:ident [$($moment:ident),*]),* $(,)?) => {
        $(
            mod $module {
                use crate::matrix::Moment;
                use upshift::sim::Profile;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn succeeds_without_losing_a_write() {
                    crate::run::profile_succeeds(Profile::$profile).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn a_failed_provisioning_rolls_back() {
                    crate::run::profile_rolls_back(Profile::$profile).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn an_unattended_run_then_crashes_and_resumes() {
                    crate::unattended::profile_unattended_run(
                        Profile::$profile,
                        &[$(Moment::$moment),*],
                    )
                    .await;
                }
            }
        )*

        #[test]
        fn the_matrix_covers_every_built_in_profile() {
            let covered = [$(upshift::sim::Profile::$profile),*];
            assert_eq!(covered.len(), upshift::sim::Profile::ALL.len());
            for p in upshift::sim::Profile::ALL {
                assert!(covered.contains(&p), "{p} has no tests");
            }
        }
    };
}

// Each profile with the moments its crash part crashes after (see the module doc).
profile_matrix! {
    optimistic => Optimistic [PlanChange],
    in_place => InPlace [PlanChange],
    lagging => Lagging [PlanChange],
    sparse => Sparse [PlanChange],
    strict => Strict [Drain, PlanChange],
    late_flip => LateFlip [PlanChange],
    heroku => Heroku [Drain, PlanChange],
}
