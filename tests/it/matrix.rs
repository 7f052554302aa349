//! The runner's end-to-end cases under every built-in behaviour profile (issue 11, "How to
//! build it": a matrix, not copies). One macro generates a module per profile; each case is
//! one function taking the profile, written once beside its kind (`run`, `crash`,
//! `unattended`), and every generated test starts its own simulator, so the harness runs the
//! profiles side by side. `the_matrix_covers_every_built_in_profile` fails when a profile is
//! added to `Profile::ALL` without its line here, so a new profile cannot go untested.
//!
//! Per profile:
//! - `succeeds_without_losing_a_write`, `a_failed_provisioning_rolls_back` (`run`): the main
//!   run and a rollback, judged by the test's own digests.
//! - `resume_after_crashes_at_the_key_moments` (`crash`, needs `--features failpoints`): a
//!   representative subset of the crash sweep, not the whole of it. The full sweep crashes at
//!   every journal point (about 40) under the default profile, in three shards of about two
//!   minutes each; seven times that would add some 10 minutes of wall time to a suite that
//!   must stay within a minute of its budget. The profiles differ only in how the platform
//!   behaves around the moments chosen here, so each profile is crashed right after: the
//!   drain (the writers' stop grace of `heroku`, the `CLIENT`-less drain of `strict`), the
//!   plan change (the point of no return: resume must wait out `in-place`'s early
//!   `provisioned`, `lagging`'s Data API, `late-flip`'s plan name, `sparse`'s bodies, with the
//!   evidence journaled before the crash), the first verify (resume re-reads the URL under the
//!   profile), and the formation's restore (health and the client ramp). At the end every
//!   write the platform acknowledged is still on main, read by the test.
//! - `an_unattended_run_succeeds` (`unattended`): `upshift run` as cron starts it, in a
//!   window, with a webhook, JSON event lines and the post-change log watch. The other
//!   unattended tests (window gate, lock, drift, refusals before any write, the watch's own
//!   figures) stop before the platform's behaviour matters or test the watch's parser: they
//!   run under the default profile only.
//!
//! Measured on the 2-core machine (`cargo test --features failpoints --test it crash` and
//! `… unattended`, four test threads, other builds running): see the CHANGELOG entry.

/// The generated tests per profile; see the module doc.
macro_rules! profile_matrix {
    ($($module:ident => $profile:ident),* $(,)?) => {
        $(
            mod $module {
                use upshift::sim::Profile;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn succeeds_without_losing_a_write() {
                    crate::run::profile_succeeds(Profile::$profile).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn a_failed_provisioning_rolls_back() {
                    crate::run::profile_rolls_back(Profile::$profile).await;
                }

                #[cfg(feature = "failpoints")]
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn resume_after_crashes_at_the_key_moments() {
                    crate::crash::crash_at_key_points(Profile::$profile).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn an_unattended_run_succeeds() {
                    crate::unattended::profile_unattended_run(Profile::$profile).await;
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

profile_matrix! {
    optimistic => Optimistic,
    in_place => InPlace,
    lagging => Lagging,
    sparse => Sparse,
    strict => Strict,
    late_flip => LateFlip,
    heroku => Heroku,
}
