//! Seed data: tens of thousands of keys of every Redis type, written pipelined.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redis::aio::MultiplexedConnection;

use crate::scenario::SeedSpec;

/// Commands per pipeline round trip.
const BATCH: usize = 2000;

/// Writes the seed described by `spec`; returns the number of keys written.
///
/// Keys (deterministic for a given `spec.seed`): strings `ca:<n>`, hashes `or:<n>`, lists
/// `sub:<n>`, sets `tags:<n>`, sorted sets `rank:<n>`, and one stream `events`. A share
/// `ttl_fraction` of them expire in one to two hours.
///
/// # Errors
/// The first Redis error (for example OOM when the seed exceeds the plan's memory).
pub async fn seed(con: &mut MultiplexedConnection, spec: &SeedSpec) -> redis::RedisResult<u64> {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let mut pipe = redis::pipe();
    let mut queued = 0usize;
    let mut keys = 0u64;
    // One stream, like an app's event log.
    if spec.keys > 0 {
        for n in 0..200 {
            pipe.cmd("XADD")
                .arg("events")
                .arg("*")
                .arg("type")
                .arg("submission")
                .arg("n")
                .arg(n)
                .ignore();
            queued += 1;
        }
        keys += 1;
    }
    for i in 1..spec.keys {
        let key = match i % 10 {
            0..=4 => {
                let key = format!("ca:{i:08}");
                pipe.cmd("SET")
                    .arg(&key)
                    .arg(random_text(&mut rng, spec.value_bytes))
                    .ignore();
                key
            }
            5 | 6 => {
                let key = format!("or:{i:08}");
                pipe.cmd("HSET")
                    .arg(&key)
                    .arg("form")
                    .arg(random_text(&mut rng, 24))
                    .arg("theme")
                    .arg("grid")
                    .arg("version")
                    .arg(rng.random_range(1..100u32))
                    .arg("hash")
                    .arg(random_text(&mut rng, 16))
                    .ignore();
                key
            }
            7 => {
                let key = format!("sub:{i:08}");
                pipe.cmd("RPUSH").arg(&key);
                for _ in 0..4 {
                    pipe.arg(random_text(&mut rng, 12));
                }
                pipe.ignore();
                key
            }
            8 => {
                let key = format!("tags:{i:08}");
                pipe.cmd("SADD").arg(&key);
                for _ in 0..4 {
                    pipe.arg(random_text(&mut rng, 8));
                }
                pipe.ignore();
                key
            }
            _ => {
                let key = format!("rank:{i:08}");
                pipe.cmd("ZADD").arg(&key);
                for _ in 0..4 {
                    pipe.arg(rng.random_range(0..10_000u32))
                        .arg(random_text(&mut rng, 8));
                }
                pipe.ignore();
                key
            }
        };
        queued += 1;
        if rng.random::<f64>() < spec.ttl_fraction {
            pipe.cmd("EXPIRE")
                .arg(&key)
                .arg(rng.random_range(3600..7200u32))
                .ignore();
            queued += 1;
        }
        keys += 1;
        if queued >= BATCH {
            pipe.query_async::<()>(con).await?;
            pipe.clear();
            queued = 0;
        }
    }
    if queued > 0 {
        pipe.query_async::<()>(con).await?;
    }
    Ok(keys)
}

/// Random text: up to 16 random characters, repeated to `len` (large values stay cheap to
/// generate; every value still differs).
fn random_text(rng: &mut StdRng, len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let head: String = (0..len.min(16))
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    if len <= 16 {
        return head;
    }
    head.repeat(len.div_ceil(16))[..len].to_owned()
}
