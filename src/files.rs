//! Reading the small text files a person hands upshift (playbooks, plan files, `.netrc`) with a
//! size cap. `std::fs::read_to_string` reads until the end: `--playbook /dev/zero` grew to
//! 23 GB before the kernel killed the process. A file over the cap is refused with a clear
//! error instead, whatever it is (a device, a pipe, a huge file).

use std::io::Read;
use std::path::Path;

/// The cap for the files upshift reads: a plan file with its capture and playbook is a few
/// tens of kB; 4 MiB leaves room for an app with hundreds of add-ons.
pub const TEXT_FILE_LIMIT: u64 = 4 * 1024 * 1024;

/// The file's text, at most `limit` bytes.
///
/// # Errors
/// The open or read error; `InvalidData` when the file holds more than `limit` bytes or is not
/// UTF-8.
pub fn read_text_capped(path: &Path, limit: u64) -> std::io::Result<String> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "larger than {} (upshift reads only small text files here): check the path",
                crate::units::bytes(limit)
            ),
        ));
    }
    String::from_utf8(bytes).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not UTF-8 text: check the path",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::read_text_capped;

    #[test]
    fn an_endless_file_is_refused_at_the_cap() {
        let err = read_text_capped(std::path::Path::new("/dev/zero"), 1024).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("larger than"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("small.toml");
        std::fs::write(&p, "name = \"x\"\n").unwrap();
        assert_eq!(read_text_capped(&p, 1024).unwrap(), "name = \"x\"\n");
        std::fs::write(&p, [0xff, 0xfe]).unwrap();
        assert!(read_text_capped(&p, 1024).is_err());
    }
}
