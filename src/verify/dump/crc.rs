//! The DUMP trailer's checksum.

/// The CRC-64 Redis appends to DUMP payloads and RDB files: Jones polynomial
/// (0xad93d23594c935a9), reflected, initial value 0, no final xor.
pub fn crc64(mut crc: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        // Truncation intended: the low byte indexes the table.
        #[allow(clippy::cast_possible_truncation)]
        let low = crc as u8;
        crc = CRC64_TABLE[usize::from(low ^ b)] ^ (crc >> 8);
    }
    crc
}

/// The reflected Jones polynomial.
const CRC64_POLY_REFLECTED: u64 = 0x95ac_9329_ac4b_c9b5;

const CRC64_TABLE: [u64; 256] = {
    let mut table = [0_u64; 256];
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
        table[i] = crc;
        i += 1;
    }
    table
};
