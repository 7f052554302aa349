//! The heroku-redis plan catalog: memory and connection limit per plan.
//!
//! Heroku's plan objects (`GET /addon-services/heroku-redis/plans`) carry neither figure, so the
//! guards, the wizard and the simulator all read them from here. Figures from Heroku's
//! documentation (see `shared/ref/heroku-facts.md`).

use std::fmt;

/// The add-on service upshift changes plans of.
pub const HEROKU_REDIS: &str = "heroku-redis";

const MB: u64 = 1024 * 1024;
const GB: u64 = 1024 * MB;

/// One heroku-redis plan with the limits that matter for a plan change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Bare plan name, e.g. `premium-1`.
    pub name: &'static str,
    /// Memory limit in bytes (the server's `maxmemory`).
    pub memory_bytes: u64,
    /// Connection limit (the server's `maxclients`).
    pub max_clients: u32,
    /// Position in the size order; a higher rank is a bigger plan.
    pub rank: u8,
}

impl Plan {
    /// The full name Heroku uses in a plan change, e.g. `heroku-redis:premium-1`.
    pub fn full_name(&self) -> String {
        format!("{HEROKU_REDIS}:{}", self.name)
    }

    /// Whether the plan is highly available: premium, private and shield plans keep a standby
    /// replica connected to the primary, mini does not (Dev Center, heroku-redis-maintenance:
    /// "Premium, Private, and Shield plans are HA"). A standby's replication link is a
    /// connection on the primary like any other.
    pub fn is_ha(&self) -> bool {
        family(self) != "mini"
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// One family's tiers; the figures are the same for premium, private and shield plans.
macro_rules! family {
    ($fam:literal) => {
        [
            tier!($fam, "0", 50 * MB, 40, 1),
            tier!($fam, "1", 100 * MB, 80, 2),
            tier!($fam, "2", 250 * MB, 200, 3),
            tier!($fam, "3", 500 * MB, 400, 4),
            tier!($fam, "4", 750 * MB, 700, 5),
            tier!($fam, "5", GB, 1000, 6),
            tier!($fam, "7", 7 * GB, 10_000, 7),
            tier!($fam, "9", 10 * GB, 25_000, 8),
            tier!($fam, "10", 25 * GB, 40_000, 9),
            tier!($fam, "12", 50 * GB, 65_000, 10),
            tier!($fam, "14", 100 * GB, 65_000, 11),
        ]
    };
}

macro_rules! tier {
    ($fam:literal, $n:literal, $mem:expr, $clients:expr, $rank:expr) => {
        Plan {
            name: concat!($fam, "-", $n),
            memory_bytes: $mem,
            max_clients: $clients,
            rank: $rank,
        }
    };
}

const MINI: Plan = Plan {
    name: "mini",
    memory_bytes: 25 * MB,
    max_clients: 20,
    rank: 0,
};
const PREMIUM: [Plan; 11] = family!("premium");
const PRIVATE: [Plan; 11] = family!("private");
const SHIELD: [Plan; 11] = family!("shield");

/// Every plan in the catalog, smallest first within each family (`mini`, then `premium-*`,
/// `private-*`, `shield-*`).
pub fn all() -> impl Iterator<Item = Plan> {
    std::iter::once(MINI)
        .chain(PREMIUM)
        .chain(PRIVATE)
        .chain(SHIELD)
}

/// Strips the `heroku-redis:` prefix a user or the platform may put on a plan name.
pub fn bare_name(name: &str) -> &str {
    name.strip_prefix("heroku-redis:").unwrap_or(name)
}

/// Looks a plan up by bare or full name (`premium-1` or `heroku-redis:premium-1`).
pub fn find(name: &str) -> Option<Plan> {
    let bare = bare_name(name.trim());
    all().find(|p| p.name == bare)
}

/// The family of a plan (`premium`, `private`, `shield`, or `mini`), used to tell the user when
/// a target plan is from another family than the current one.
pub fn family(plan: &Plan) -> &'static str {
    match plan.name.split_once('-') {
        Some(("premium", _)) => "premium",
        Some(("private", _)) => "private",
        Some(("shield", _)) => "shield",
        _ => "mini",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_plans_by_bare_and_full_name() {
        let p = find("heroku-redis:premium-1").expect("premium-1 is in the catalog");
        assert_eq!(p.name, "premium-1");
        assert_eq!(p.memory_bytes, 100 * MB);
        assert_eq!(p.max_clients, 80);
        assert_eq!(find("premium-1"), Some(p));
        assert_eq!(find("shield-14").map(|p| p.max_clients), Some(65_000));
        assert_eq!(find("mini").map(|p| p.max_clients), Some(20));
        assert_eq!(find("premium-6"), None);
        assert_eq!(find("hobby-dev"), None);
    }

    #[test]
    fn ranks_order_sizes_within_a_family() {
        let p0 = find("premium-0").unwrap();
        let p5 = find("premium-5").unwrap();
        let s5 = find("shield-5").unwrap();
        assert!(p0.rank < p5.rank);
        assert_eq!(p5.rank, s5.rank);
        assert_eq!(family(&s5), "shield");
        assert_eq!(all().count(), 34);
        assert!(p0.is_ha() && s5.is_ha() && !find("mini").unwrap().is_ha());
    }
}
