//! The one Enketo capture the plan's unit tests start from (drift, review, choices, guards):
//! `enketo-demo` with two web dynos writing to one premium-0 main Redis. Tests that need other
//! facts change fields of this one and say so, instead of each keeping a full copy that drifts
//! from the others when `Capture` grows a field.

use crate::plan::facts::{AddonFacts, AddonLookup, Capture, ProcessFacts, RedisFacts};

pub(crate) fn enketo_capture() -> Capture {
    Capture {
        app: "enketo-demo".into(),
        app_id: "app-1".into(),
        maintenance: false,
        formation: vec![
            ProcessFacts {
                process_type: "web".into(),
                quantity: 2,
                size: "standard-1X".into(),
            },
            ProcessFacts {
                process_type: "worker".into(),
                quantity: 0,
                size: "standard-1X".into(),
            },
        ],
        running: vec![("web".into(), 2)],
        steady: vec![("web".into(), 2)],
        addons: vec![AddonLookup::Found(Box::new(AddonFacts {
            requested_as: "enketo_redis_main".into(),
            id: "addon-1".into(),
            name: "redis-cubed-1".into(),
            attachment: Some("ENKETO_REDIS_MAIN".into()),
            service: "heroku-redis".into(),
            plan: "premium-0".into(),
            state: "provisioned".into(),
            config_vars: vec!["ENKETO_REDIS_MAIN_URL".into()],
            waiting: Some((false, "available".into())),
            maintenance: None,
            redis: Some(RedisFacts {
                used_memory: 10 * 1024 * 1024,
                connected_clients: 40,
                version: "7.0.15".into(),
                keys: 1000,
            }),
            redis_config: None,
            redis_error: None,
            attachments: None,
        }))],
        local_free_bytes: Some(1 << 30),
        unfinished_runs: vec![],
        captured_at: "2026-11-25T23:00:00Z".into(),
        preboot: None,
        plan_prices: std::collections::BTreeMap::new(),
    }
}
