//! A memory-bounded, sorted, deduplicated set of records: the external sort behind digest and
//! diff.
//!
//! Records are pushed in SCAN order (which may repeat keys). Up to a byte budget they stay in
//! memory; beyond it they are sorted and written to an anonymous temporary file (a run, mode
//! 0600, deleted by the OS when dropped). [`RecordSet::into_sorted`] merges the runs and the
//! in-memory tail (k-way merge) into one ascending stream with each key once.

use std::collections::BinaryHeap;
use std::collections::binary_heap::PeekMut;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::verify::record::{Expiry, KeyKind, Record, encode_parts};

/// Records in memory until the budget, sorted runs on disk beyond it.
///
/// In memory, keys sit back to back in one arena and each record is a fixed [`Slot`] beside
/// them. Why: with a heap allocation per key and 64-byte records sorted by pointer-chasing
/// comparisons, the record set (push, sort, spill, merge) took about a third of the digest's
/// client CPU at 1M keys (perf, issue 12); slots sort on an 8-byte key prefix and rarely touch
/// the arena, and pushing a record costs no allocation.
#[derive(Debug)]
pub struct RecordSet {
    slots: Vec<Slot>,
    arena: Vec<u8>,
    /// Where each sorted (and deduplicated) segment of `slots` ends; the slots after the last
    /// end are not sorted yet.
    segments: Vec<usize>,
    /// Slots per segment: [`SEGMENT_SLOTS`] (a test sets a few).
    segment_slots: usize,
    /// Where the keys of the slots not yet in a segment start in the arena.
    arena_sealed: usize,
    /// Reused to lay a segment's keys out in its order.
    scratch: Vec<u8>,
    buffered_bytes: usize,
    budget: usize,
    spill_dir: PathBuf,
    runs: Vec<File>,
}

/// One buffered record: where its key lies in the arena, and its fixed fields.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// The key's first eight bytes, big-endian, zero-padded: most comparisons end here.
    prefix: u64,
    /// Where the key starts in the arena; grows with every push, so it orders pushes.
    start: usize,
    len: u32,
    kind: KeyKind,
    /// The value digest as two halves, low first (a `u128` field would align the slot to 16).
    value: [u64; 2],
    expiry: Expiry,
}

impl Slot {
    fn key<'a>(&self, arena: &'a [u8]) -> &'a [u8] {
        &arena[self.start..self.start + self.len as usize]
    }

    fn value(&self) -> u128 {
        u128::from(self.value[0]) | u128::from(self.value[1]) << 64
    }
}

/// A slot's share of the budget beside its key bytes.
const SLOT_BYTES: usize = std::mem::size_of::<Slot>();

/// Slots sorted at a time while records arrive: small enough that the tail's last sort takes a
/// few milliseconds, big enough that a run merges only tens of segments.
const SEGMENT_SLOTS: usize = 1 << 16;

impl RecordSet {
    /// An empty set keeping about `budget` bytes of records in memory and spilling to files in
    /// `spill_dir` beyond that.
    pub fn new(budget: usize, spill_dir: &Path) -> Self {
        Self {
            slots: Vec::new(),
            arena: Vec::new(),
            segments: Vec::new(),
            segment_slots: SEGMENT_SLOTS,
            arena_sealed: 0,
            scratch: Vec::new(),
            buffered_bytes: 0,
            budget: budget.max(1),
            spill_dir: spill_dir.to_path_buf(),
            runs: Vec::new(),
        }
    }

    /// The same with `segment_slots` slots per sorted segment.
    #[cfg(test)]
    fn with_segments(budget: usize, spill_dir: &Path, segment_slots: usize) -> Self {
        Self {
            segment_slots: segment_slots.max(1),
            ..Self::new(budget, spill_dir)
        }
    }

    /// Adds a record, spilling a sorted run when the budget is reached.
    ///
    /// # Errors
    /// The spill file cannot be created or written.
    pub fn push(&mut self, record: &Record) -> io::Result<()> {
        if self.slots.capacity() == 0 {
            // Sized once for the budget: letting the Vec double would overshoot it by up to 2x.
            self.slots
                .reserve_exact((self.budget / (SLOT_BYTES + 16)).clamp(16, 1 << 24));
        }
        let key = record.key.as_slice();
        let mut head = [0_u8; 8];
        let n = key.len().min(8);
        head[..n].copy_from_slice(&key[..n]);
        // Truncation intended: the halves of the digest.
        #[allow(clippy::cast_possible_truncation)]
        let value = [record.value as u64, (record.value >> 64) as u64];
        self.slots.push(Slot {
            prefix: u64::from_be_bytes(head),
            start: self.arena.len(),
            len: u32::try_from(key.len()).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidInput, "key longer than 4 GiB")
            })?,
            kind: record.kind,
            value,
            expiry: record.expiry,
        });
        self.arena.extend_from_slice(key);
        if key.is_empty() {
            // The empty key still moves the offset on, which keeps offsets in push order.
            self.arena.push(0);
        }
        self.buffered_bytes += SLOT_BYTES + key.len();
        if self.slots.len() - self.sorted_end() >= self.segment_slots {
            self.seal_segment();
        }
        if self.buffered_bytes >= self.budget {
            self.spill()?;
        }
        Ok(())
    }

    /// Where the sorted segments end.
    fn sorted_end(&self) -> usize {
        self.segments.last().copied().unwrap_or(0)
    }

    /// Sorts the slots pushed since the last segment into a segment of their own, and lays
    /// their keys out in the arena in that order. Why the second step: a merge then reads each
    /// segment's keys front to back; read in push order, every comparison of the merge was a
    /// cache miss into the arena (a third of the post-scan tail at 1M keys).
    fn seal_segment(&mut self) {
        let from = self.sorted_end();
        if from == self.slots.len() {
            return;
        }
        sort_dedup_from(&mut self.slots, from, &self.arena);
        let base = self.arena_sealed;
        self.scratch.clear();
        for slot in &mut self.slots[from..] {
            let key = &self.arena[slot.start..slot.start + slot.len as usize];
            let start = base + self.scratch.len();
            self.scratch.extend_from_slice(key);
            if key.is_empty() {
                // As in `push`: every slot's offset stays its own, so offsets keep ordering
                // the segments (the tie-break of equal keys in a merge).
                self.scratch.push(0);
            }
            slot.start = start;
        }
        self.arena.truncate(base);
        self.arena.extend_from_slice(&self.scratch);
        self.arena_sealed = self.arena.len();
        self.segments.push(self.slots.len());
    }

    /// How many sorted runs went to disk.
    pub fn spilled_runs(&self) -> usize {
        self.runs.len()
    }

    fn spill(&mut self) -> io::Result<()> {
        self.seal_segment();
        let mut file = tempfile::tempfile_in(&self.spill_dir)?;
        {
            let mut w = BufWriter::with_capacity(1 << 16, &mut file);
            let mut buf = Vec::with_capacity(1 << 16);
            let mut merge = SlotMerge::new(&self.segments, &self.slots, &self.arena);
            while let Some(i) = merge.next_unique(&self.slots, &self.arena) {
                let slot = &self.slots[i];
                let key = slot.key(&self.arena);
                encode_parts(key, slot.kind, slot.value(), slot.expiry, &mut buf);
                if buf.len() >= 1 << 15 {
                    w.write_all(&buf)?;
                    buf.clear();
                }
            }
            w.write_all(&buf)?;
            w.flush()?;
        }
        file.seek(SeekFrom::Start(0))?;
        self.runs.push(file);
        self.slots.clear();
        self.arena.clear();
        self.segments.clear();
        self.arena_sealed = 0;
        self.buffered_bytes = 0;
        Ok(())
    }

    /// The records in ascending key order, each key once (the first one pushed wins among runs
    /// in push order; equal data makes the choice irrelevant).
    pub fn into_sorted(mut self) -> SortedRecords {
        self.seal_segment();
        let merge = SlotMerge::new(&self.segments, &self.slots, &self.arena);
        let mut sources: Vec<Source> = self
            .runs
            .into_iter()
            .map(|f| Source::Run(BufReader::with_capacity(1 << 16, f)))
            .collect();
        sources.push(Source::Memory {
            merge,
            slots: self.slots,
            arena: self.arena,
        });
        let mut merged = SortedRecords {
            sources,
            heap: BinaryHeap::new(),
            spare: Record::empty(),
            last_key: None,
            pending: None,
            failed: false,
        };
        // One sorted, deduplicated run in memory (nothing spilled) is read straight through;
        // only several runs need the heap.
        if merged.sources.len() > 1 {
            for source in 0..merged.sources.len() {
                match read_next(&mut merged.sources[source]) {
                    Ok(Some(record)) => merged.heap.push(Head { record, source }),
                    Ok(None) => {}
                    Err(e) => {
                        merged.pending = Some(e);
                        break;
                    }
                }
            }
        }
        merged
    }
}

/// Sorts `slots[from..]` by key and keeps the first pushed of each key. Unstable (a stable
/// sort's scratch buffer would cost half the slots again in memory), made stable by the arena
/// offset as the last criterion: it grows with every push.
fn sort_dedup_from(slots: &mut Vec<Slot>, from: usize, arena: &[u8]) {
    slots[from..].sort_unstable_by(|a, b| slot_cmp(a, b, arena));
    let mut kept = from;
    for i in from..slots.len() {
        if kept == from || !same_key(&slots[kept - 1], &slots[i], arena) {
            slots[kept] = slots[i];
            kept += 1;
        }
    }
    slots.truncate(kept);
}

/// Key order, then push order.
fn slot_cmp(a: &Slot, b: &Slot, arena: &[u8]) -> std::cmp::Ordering {
    a.prefix
        .cmp(&b.prefix)
        .then_with(|| {
            if a.len <= 8 && b.len <= 8 {
                a.len.cmp(&b.len)
            } else {
                key_cmp(a.key(arena), b.key(arena))
            }
        })
        .then(a.start.cmp(&b.start))
}

fn same_key(a: &Slot, b: &Slot, arena: &[u8]) -> bool {
    a.prefix == b.prefix && a.len == b.len && a.key(arena) == b.key(arena)
}

/// A k-way merge of sorted segments of slots: a min-heap of cursors ordered by their head slot
/// (key, then push order, so the first pushed of equal keys comes first).
///
/// Each cursor carries its head's key prefix, so that most comparisons read the small heap
/// and not the slots: merging with slot lookups only took a third of the post-scan tail.
#[derive(Debug)]
struct SlotMerge {
    heap: Vec<Cursor>,
    /// The last slot yielded, to skip the same key in a later segment.
    last: Option<usize>,
}

/// One segment's place in a [`SlotMerge`].
#[derive(Debug, Clone, Copy)]
struct Cursor {
    /// The head slot's key prefix.
    prefix: u64,
    next: usize,
    end: usize,
}

impl SlotMerge {
    /// A merge of the segments ending at `ends` (ascending).
    fn new(ends: &[usize], slots: &[Slot], arena: &[u8]) -> Self {
        let mut heap = Vec::with_capacity(ends.len());
        let mut start = 0;
        for &end in ends {
            if start < end {
                heap.push(Cursor {
                    prefix: slots[start].prefix,
                    next: start,
                    end,
                });
            }
            start = end;
        }
        let mut merge = Self { heap, last: None };
        for i in (0..merge.heap.len() / 2).rev() {
            merge.sift_down(i, slots, arena);
        }
        merge
    }

    /// The index of the next slot in key order, each key once.
    fn next_unique(&mut self, slots: &[Slot], arena: &[u8]) -> Option<usize> {
        loop {
            let top = self.heap.first_mut()?;
            let i = top.next;
            top.next += 1;
            if top.next == top.end {
                self.heap.swap_remove(0);
            } else {
                top.prefix = slots[top.next].prefix;
            }
            if self.heap.len() > 1 {
                self.sift_down(0, slots, arena);
            }
            if self
                .last
                .is_some_and(|last| same_key(&slots[last], &slots[i], arena))
            {
                continue;
            }
            self.last = Some(i);
            return Some(i);
        }
    }

    fn sift_down(&mut self, mut i: usize, slots: &[Slot], arena: &[u8]) {
        let less = |a: &Cursor, b: &Cursor| {
            a.prefix < b.prefix
                || (a.prefix == b.prefix && slot_cmp(&slots[a.next], &slots[b.next], arena).is_lt())
        };
        let n = self.heap.len();
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut min = i;
            if l < n && less(&self.heap[l], &self.heap[min]) {
                min = l;
            }
            if r < n && less(&self.heap[r], &self.heap[min]) {
                min = r;
            }
            if min == i {
                return;
            }
            self.heap.swap(i, min);
            i = min;
        }
    }
}

/// Byte-wise key order, the same as `<[u8]>::cmp`, compared eight bytes at a time inline.
///
/// Why: sorting and merging a million short keys spent about a sixth of the digest's client CPU
/// in calls to libc `memcmp` (perf, issue 12); keys are short, so the call costs more than the
/// comparison.
fn key_cmp(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let mut ac = a.chunks_exact(8);
    let mut bc = b.chunks_exact(8);
    for (x, y) in ac.by_ref().zip(bc.by_ref()) {
        let (x, y) = (
            u64::from_be_bytes(x.try_into().unwrap_or([0; 8])),
            u64::from_be_bytes(y.try_into().unwrap_or([0; 8])),
        );
        if x != y {
            return x.cmp(&y);
        }
    }
    let done = a.len().min(b.len()) / 8 * 8;
    a[done..].iter().cmp(b[done..].iter())
}

#[derive(Debug)]
enum Source {
    Run(BufReader<File>),
    Memory {
        merge: SlotMerge,
        slots: Vec<Slot>,
        arena: Vec<u8>,
    },
}

/// A heap entry: the head record of one source. Ordered so the smallest key (then the earliest
/// source) pops first from the max-heap.
#[derive(Debug)]
struct Head {
    record: Record,
    source: usize,
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        key_cmp(&other.record.key, &self.record.key).then(other.source.cmp(&self.source))
    }
}

/// The merged, deduplicated, ascending stream of a [`RecordSet`].
#[derive(Debug)]
pub struct SortedRecords {
    sources: Vec<Source>,
    heap: BinaryHeap<Head>,
    /// The record lent by [`SortedRecords::next_lent`]; its buffers are reused.
    spare: Record,
    last_key: Option<Vec<u8>>,
    /// An error met while filling the heap, reported by the first `next`.
    pending: Option<io::Error>,
    failed: bool,
}

/// The next record of one source, in a record of its own (filling the merge's heap).
fn read_next(source: &mut Source) -> io::Result<Option<Record>> {
    let mut record = Record::empty();
    Ok(read_into(source, &mut record)?.then_some(record))
}

/// The next record of one source into `into`, reusing its buffers; `false` when the source is
/// done.
fn read_into(source: &mut Source, into: &mut Record) -> io::Result<bool> {
    match source {
        Source::Run(r) => Record::read_into(r, into),
        Source::Memory {
            merge,
            slots,
            arena,
        } => Ok(match merge.next_unique(slots, arena) {
            Some(i) => {
                let slot = &slots[i];
                into.key.clear();
                into.key.extend_from_slice(slot.key(arena));
                (into.kind, into.value, into.expiry) = (slot.kind, slot.value(), slot.expiry);
                true
            }
            None => false,
        }),
    }
}

impl SortedRecords {
    /// The next record, lent until the next call. Why not only [`Iterator`]: this reuses one
    /// record's buffers where the iterator allocates a key per record, and a digest folds a
    /// million records once the scan is over, while the server waits.
    pub fn next_lent(&mut self) -> Option<io::Result<&Record>> {
        if self.failed {
            return None;
        }
        if let Some(e) = self.pending.take() {
            self.failed = true;
            return Some(Err(e));
        }
        loop {
            let got = if self.sources.len() == 1 {
                read_into(&mut self.sources[0], &mut self.spare)
            } else {
                self.pop_into_spare()
            };
            match got {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
            if self.last_key.as_deref() == Some(self.spare.key.as_slice()) {
                continue;
            }
            // Reuses one buffer: a clone per record was an allocation per key.
            let last = self.last_key.get_or_insert_with(Vec::new);
            last.clear();
            last.extend_from_slice(&self.spare.key);
            return Some(Ok(&self.spare));
        }
    }

    /// Moves the smallest head into `spare` and refills its place from its source (one sift
    /// instead of a pop and a push); `false` when every source is done.
    fn pop_into_spare(&mut self) -> io::Result<bool> {
        let Some(mut top) = self.heap.peek_mut() else {
            return Ok(false);
        };
        if read_into(&mut self.sources[top.source], &mut self.spare)? {
            std::mem::swap(&mut top.record, &mut self.spare);
        } else {
            self.spare = PeekMut::pop(top).record;
        }
        Ok(true)
    }
}

impl Iterator for SortedRecords {
    type Item = io::Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(match self.next_lent()? {
            Ok(record) => Ok(record.clone()),
            Err(e) => Err(e),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{RecordSet, key_cmp};

    proptest::proptest! {
        /// The inline comparison orders keys exactly as the byte-slice order does.
        #[test]
        fn key_order_is_byte_order(
            a in proptest::collection::vec(0_u8..4, 0..40),
            b in proptest::collection::vec(0_u8..4, 0..40),
        ) {
            proptest::prop_assert_eq!(key_cmp(&a, &b), a.cmp(&b));
            let mut c = a.clone();
            c.extend_from_slice(&b);
            proptest::prop_assert_eq!(key_cmp(&a, &c), a.as_slice().cmp(c.as_slice()));
        }
    }

    proptest::proptest! {
        /// Whatever the keys (zero bytes, prefixes of each other, shorter and longer than the
        /// slot's 8-byte prefix) and the budget, the set yields each key once, ascending, with
        /// the value first pushed for it; so does any segment size.
        #[test]
        fn sorted_unique_first_pushed_wins(
            keys in proptest::collection::vec(proptest::collection::vec(0_u8..3, 0..14), 1..200),
            budget in 1_usize..4_000,
            segment in 1_usize..40,
        ) {
            let mut expected = std::collections::BTreeMap::new();
            let mut set = RecordSet::with_segments(budget, &std::env::temp_dir(), segment);
            for (i, key) in keys.iter().enumerate() {
                expected.entry(key.clone()).or_insert(i as u128);
                set.push(&rec_bytes(key, i as u128)).unwrap();
            }
            let got: Vec<(Vec<u8>, u128)> = set
                .into_sorted()
                .map(|r| r.map(|r| (r.key, r.value)).unwrap())
                .collect();
            let want: Vec<(Vec<u8>, u128)> = expected.into_iter().collect();
            proptest::prop_assert_eq!(got, want);
        }
    }

    fn rec_bytes(key: &[u8], value: u128) -> Record {
        Record {
            key: key.to_vec(),
            kind: KeyKind::Hash,
            value,
            expiry: Expiry::exact(7),
        }
    }

    use crate::verify::diff::merge_join;
    use crate::verify::record::{DatabaseDigest, Expiry, KeyKind, Record};

    fn rec(key: &str, value: u128) -> Record {
        Record {
            key: key.as_bytes().to_vec(),
            kind: KeyKind::String,
            value,
            expiry: Expiry::Never,
        }
    }

    fn digest(records: impl IntoIterator<Item = Record>, budget: usize) -> (String, usize) {
        let dir = std::env::temp_dir();
        let mut set = RecordSet::new(budget, &dir);
        for r in records {
            set.push(&r).unwrap();
        }
        let runs = set.spilled_runs();
        let mut d = DatabaseDigest::new();
        let mut prev: Option<Vec<u8>> = None;
        for r in set.into_sorted() {
            let r = r.unwrap();
            if let Some(p) = &prev {
                assert!(p < &r.key, "ascending and unique");
            }
            prev = Some(r.key.clone());
            d.add(&r);
        }
        (d.hex(), runs)
    }

    #[test]
    fn duplicates_and_order_do_not_change_the_digest() {
        let keys: Vec<Record> = (0..500).map(|i| rec(&format!("k{i}"), i)).collect();
        let (plain, runs) = digest(keys.clone(), usize::MAX);
        assert_eq!(runs, 0);
        let mut twice: Vec<Record> = keys.iter().rev().cloned().collect();
        twice.extend(keys.iter().step_by(3).cloned());
        let (dup, _) = digest(twice.clone(), usize::MAX);
        assert_eq!(plain, dup);
        // The same through many small spilled runs.
        let (spilled, runs) = digest(twice.clone(), 2_000);
        assert!(runs > 5, "{runs}");
        assert_eq!(plain, spilled);

        // And a diff of the repeated feed against the plain one names nothing.
        let dir = std::env::temp_dir();
        let mut once = RecordSet::new(usize::MAX, &dir);
        for r in keys {
            once.push(&r).unwrap();
        }
        let mut repeated = RecordSet::new(2_000, &dir);
        for r in twice {
            repeated.push(&r).unwrap();
        }
        let report = merge_join(once.into_sorted(), repeated.into_sorted(), 0, 10).unwrap();
        assert!(report.differences.is_empty());
        assert_eq!((report.before_keys, report.after_keys), (500, 500));
    }
}
