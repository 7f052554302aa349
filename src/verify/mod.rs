//! Exact data verification: canonical per-key digest, diff, snapshot and restore.
