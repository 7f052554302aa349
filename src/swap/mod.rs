//! Building blocks of the live swap strategy (a plan change by provisioning a second add-on,
//! copying while the app runs, and moving the attachment): a [`DirtyWatch`] that records which
//! keys change on the old server while the copy runs, and a copier that moves keys with their
//! absolute expiry ([`copy_all`], [`copy_keys`]).
//!
//! The order that makes the copy complete: start the watch first, then copy everything, then
//! re-copy what the watch saw change, until the writers stop and one last round leaves nothing
//! dirty. A key written after the watch started is either copied after its write (the full
//! pass reached it later) or named by the watch; a key the watch names is re-read from the
//! source, so it ends as the source has it, or deleted when the source no longer has it.
//! If the watch connection drops (the server may close a slow subscriber), the dirty set is
//! unknown from then on: [`DirtyWatch::take`] says so, and the caller must fall back to a full
//! compare.

mod copy;
mod live;
mod watch;

pub use copy::{CopySummary, KeyPages, copy_all, copy_keys};
pub use live::compare_live;
pub use watch::{DIRTY_LIMIT, DirtyWatch, WatchLost};

/// The `notify-keyspace-events` flags the watch needs: keyspace channels (`K`) for every event
/// class (`A`: generic, string, list, set, hash, zset, stream, expired, evicted, module).
pub const KEYSPACE_FLAGS: &str = "KA";

/// Whether a server's `notify-keyspace-events` value already sends what the watch needs.
pub fn flags_suffice(value: &str) -> bool {
    let has = |c: char| value.contains(c);
    let all = has('A') || "g$lshzxe".chars().all(has);
    has('K') && all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyspace_flags_need_the_keyspace_channel_and_every_class() {
        assert!(flags_suffice("KA"));
        assert!(flags_suffice("AKE"));
        assert!(flags_suffice("Kg$lshzxe"));
        assert!(!flags_suffice(""));
        assert!(!flags_suffice("EA"), "keyevent only names events, not keys");
        assert!(!flags_suffice("Kgx"), "string writes would go unseen");
    }
}
