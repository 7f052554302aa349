//! The canonical record's tests: value digests, scores, type codes and the database digest's
//! byte layout (stored in journals and snapshots: it must never drift).
use super::{DatabaseDigest, Expiry, KeyKind, Record, ValueDigest, normalise_score, parse_score};

/// The database digest is xxh3-128 over a fixed byte layout (stored in journals and
/// snapshots, so it must never drift): per record the key length (u64 LE), the key, the
/// type code, the value digest (u128 LE), then 0 (no TTL), 1 and the exact ms (i64 LE), or
/// 2 (a TTL known only roughly); the record count (u64 LE) last.
#[test]
fn database_digest_bytes_are_the_documented_layout() {
    let records = [
        Record {
            key: b"a".to_vec(),
            kind: KeyKind::String,
            value: 7,
            expiry: Expiry::Never,
        },
        Record {
            key: vec![0xff; 40],
            kind: KeyKind::ZSet,
            value: u128::MAX - 3,
            expiry: Expiry::exact(1_700_000_000_123),
        },
        Record {
            key: Vec::new(),
            kind: KeyKind::Hash,
            value: 1 << 100,
            expiry: Expiry::At {
                at_ms: 5,
                tolerance_ms: 1000,
            },
        },
    ];
    let mut want = Vec::new();
    let mut d = DatabaseDigest::new();
    // Enough records that the digest's buffer goes to the hasher several times.
    for r in records.iter().cycle().take(3000) {
        d.add(r);
        want.extend_from_slice(&(r.key.len() as u64).to_le_bytes());
        want.extend_from_slice(&r.key);
        want.push(r.kind.code());
        want.extend_from_slice(&r.value.to_le_bytes());
        match r.expiry {
            Expiry::Never => want.push(0),
            Expiry::At {
                at_ms,
                tolerance_ms: 0,
            } => {
                want.push(1);
                want.extend_from_slice(&at_ms.to_le_bytes());
            }
            Expiry::At { .. } => want.push(2),
        }
    }
    want.extend_from_slice(&3000_u64.to_le_bytes());
    assert!(want.len() > 100_000);
    assert_eq!(d.hex(), format!("{:032x}", super::xxh3_128(&want)));
}

#[test]
fn type_codes_round_trip_and_unknown_codes_are_refused() {
    for (i, k) in KeyKind::ALL.into_iter().enumerate() {
        assert_eq!(KeyKind::from_code(k.code()), Some(k));
        assert_eq!(k.index(), i);
    }
    for code in [0_u8, 7, 255] {
        assert_eq!(KeyKind::from_code(code), None);
    }
}

#[test]
fn unordered_digest_ignores_order() {
    let mut a = ValueDigest::new(KeyKind::Hash);
    let mut b = ValueDigest::new(KeyKind::Hash);
    a.pair(b"f1", b"v1");
    a.pair(b"f2", b"v2");
    b.pair(b"f2", b"v2");
    b.pair(b"f1", b"v1");
    assert_eq!(a.finish(), b.finish());
    // Field/value boundaries matter.
    let mut c = ValueDigest::new(KeyKind::Hash);
    c.pair(b"f1v", b"1");
    c.pair(b"f2", b"v2");
    assert_ne!(a.finish(), c.finish());
}

#[test]
fn ordered_digest_sees_order_and_boundaries() {
    let mut a = ValueDigest::new(KeyKind::List);
    a.element(b"ab");
    a.element(b"c");
    let mut b = ValueDigest::new(KeyKind::List);
    b.element(b"a");
    b.element(b"bc");
    let mut c = ValueDigest::new(KeyKind::List);
    c.element(b"c");
    c.element(b"ab");
    assert_ne!(a.finish(), b.finish());
    assert_ne!(a.finish(), c.finish());
}

#[test]
fn string_windows_concatenate() {
    let mut a = ValueDigest::new(KeyKind::String);
    a.bytes(b"hello ");
    a.bytes(b"world");
    let mut b = ValueDigest::new(KeyKind::String);
    b.bytes(b"hello world");
    assert_eq!(a.finish(), b.finish());
}

#[test]
fn scores_are_normalised() {
    assert_eq!(parse_score(b"1"), parse_score(b"1.0"));
    assert_eq!(parse_score(b"inf"), parse_score(b"+inf"));
    assert_eq!(normalise_score(-0.0), normalise_score(0.0));
    assert_eq!(normalise_score(f64::NAN), normalise_score(-f64::NAN));
    assert_eq!(parse_score(b"-inf"), Some(f64::NEG_INFINITY));
    assert_eq!(parse_score(b"x"), None);
}

#[test]
fn pttl_expiry_has_a_tolerance() {
    let e = Expiry::from_pttl(5_000, 1_000, 1_010);
    assert_eq!(
        e,
        Expiry::At {
            at_ms: 6_005,
            tolerance_ms: 6
        }
    );
    assert!(e.same_as(Expiry::exact(6_010)));
    assert!(!e.same_as(Expiry::exact(6_020)));
    assert!(!Expiry::exact(1).same_as(Expiry::exact(2)));
    assert!(!Expiry::Never.same_as(Expiry::exact(2)));
}

#[test]
fn records_round_trip() {
    let r = Record {
        key: b"k\x00\xff".to_vec(),
        kind: KeyKind::ZSet,
        value: u128::MAX - 7,
        expiry: Expiry::exact(1_700_000_000_123),
    };
    let mut buf = Vec::new();
    r.encode(&mut buf);
    let mut cur = std::io::Cursor::new(buf);
    assert_eq!(Record::read_from(&mut cur).unwrap(), Some(r));
    assert_eq!(Record::read_from(&mut cur).unwrap(), None);
}

#[test]
fn database_digest_depends_on_every_field() {
    let base = Record {
        key: b"k".to_vec(),
        kind: KeyKind::String,
        value: 1,
        expiry: Expiry::Never,
    };
    let hex = |r: &Record| {
        let mut d = DatabaseDigest::new();
        d.add(r);
        d.hex()
    };
    let h = hex(&base);
    assert_eq!(h.len(), 32);
    for changed in [
        Record {
            key: b"j".to_vec(),
            ..base.clone()
        },
        Record {
            kind: KeyKind::List,
            ..base.clone()
        },
        Record {
            value: 2,
            ..base.clone()
        },
        Record {
            expiry: Expiry::exact(5),
            ..base.clone()
        },
    ] {
        assert_ne!(hex(&changed), h);
    }
    assert_eq!(DatabaseDigest::new().hex().len(), 32);
}
