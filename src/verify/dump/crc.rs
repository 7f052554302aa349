//! The DUMP trailer's checksum.

/// The CRC-64 Redis appends to DUMP payloads and RDB files: Jones polynomial
/// (0xad93d23594c935a9), reflected, initial value 0, no final xor.
///
/// Eight bytes per step through eight tables (slice-by-8, as Redis' own `crc64.c` does since
/// 7.0): byte at a time, the checksum was most of the decoder's own time (perf, issue 12).
pub fn crc64(mut crc: u64, bytes: &[u8]) -> u64 {
    let mut chunks = bytes.chunks_exact(8);
    for chunk in chunks.by_ref() {
        let mut word = [0_u8; 8];
        word.copy_from_slice(chunk);
        let x = (crc ^ u64::from_le_bytes(word)).to_le_bytes();
        crc = TABLES[7][usize::from(x[0])]
            ^ TABLES[6][usize::from(x[1])]
            ^ TABLES[5][usize::from(x[2])]
            ^ TABLES[4][usize::from(x[3])]
            ^ TABLES[3][usize::from(x[4])]
            ^ TABLES[2][usize::from(x[5])]
            ^ TABLES[1][usize::from(x[6])]
            ^ TABLES[0][usize::from(x[7])];
    }
    for &b in chunks.remainder() {
        // Truncation intended: the low byte indexes the table.
        #[allow(clippy::cast_possible_truncation)]
        let low = crc as u8;
        crc = TABLES[0][usize::from(low ^ b)] ^ (crc >> 8);
    }
    crc
}

/// The reflected Jones polynomial.
const CRC64_POLY_REFLECTED: u64 = 0x95ac_9329_ac4b_c9b5;

/// `TABLES[0]` is the byte-at-a-time table; `TABLES[k][i]` is the CRC of byte `i` followed by
/// `k` zero bytes.
const TABLES: [[u64; 256]; 8] = {
    let mut tables = [[0_u64; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u64;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ CRC64_POLY_REFLECTED
            } else {
                crc >> 1
            };
            bit += 1;
        }
        tables[0][i] = crc;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = tables[k - 1][i];
            tables[k][i] = (prev >> 8) ^ tables[0][(prev & 0xff) as usize];
            i += 1;
        }
        k += 1;
    }
    tables
};

#[cfg(test)]
mod tests {
    use super::{TABLES, crc64};

    /// The reference: one byte at a time through the first table.
    fn bytewise(mut crc: u64, bytes: &[u8]) -> u64 {
        for &b in bytes {
            crc = TABLES[0][((crc ^ u64::from(b)) & 0xff) as usize] ^ (crc >> 8);
        }
        crc
    }

    proptest::proptest! {
        #[test]
        fn eight_at_a_time_is_byte_at_a_time(
            seed in proptest::prelude::any::<u64>(),
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..100),
        ) {
            proptest::prop_assert_eq!(crc64(seed, &bytes), bytewise(seed, &bytes));
        }
    }
}
