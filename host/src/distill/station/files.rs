//! File formats of the station: input records, keys and pre-shared keys.
//!
//! All integers are little-endian.
//!
//! ## Prepared-state records (Alice, prepare-and-measure): magic `QKDA`
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0 | 4 | magic `QKDA` |
//! | 4 | 2 | format version, 1 |
//! | 6 | 2 | reserved, 0 |
//! | 8 | 8 | slot index of the first record |
//! | 16 | 8 | N, number of slots |
//! | 24 | N | one byte per slot: bit 0 value, bit 1 basis (0 = Z: H/V, 1 = X: D/A), bits 2–3 intensity class 0..=2, bits 4–7 zero |
//!
//! ## Detection records (Bob; both stations in BBM92): magic `QKDD`
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0 | 4 | magic `QKDD` |
//! | 4 | 2 | format version, 1 |
//! | 6 | 2 | reserved, 0 |
//! | 8 | 8 | N, number of records |
//! | 16 | 9·N | per record: slot index or timestamp in ticks (u64), click mask (u8: bit 0 H, 1 V, 2 D, 3 A) |
//!
//! Records are in strictly increasing slot order; records with an empty mask are allowed (they
//! are counted as no-clicks).
//!
//! ## Key and pre-shared-key files
//!
//! Raw bytes, no header: key bit `i` is bit `i % 8` (LSB first) of byte `i / 8`, so the key
//! length is 8 × the file size. Written with permissions 0600 (on Unix) through a temporary
//! file and a rename, so a reader never sees half a key.

use std::io::Write;
use std::path::{Path, PathBuf};

use thiserror::Error;
use zeroize::Zeroize;

use crate::distill::auth::bits_from_bytes;
use crate::distill::key::SecretBits;
use crate::distill::sifting::{AliceRecords, Detection, SiftError};

/// Magic of prepared-state record files.
pub const ALICE_MAGIC: &[u8; 4] = b"QKDA";
/// Magic of detection record files.
pub const DETECTION_MAGIC: &[u8; 4] = b"QKDD";
/// Record file format version.
pub const FORMAT_VERSION: u16 = 1;

/// Errors reading or writing station files.
#[derive(Debug, Error)]
pub enum FileError {
    /// The file system failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Wrong magic.
    #[error("{}: not a {expected} file (magic {found:?})", path.display())]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// Which kind was expected.
        expected: &'static str,
        /// The first bytes found.
        found: Vec<u8>,
    },
    /// Unsupported version.
    #[error("{}: format version {found}, this program reads version {FORMAT_VERSION}", path.display())]
    BadVersion {
        /// The file.
        path: PathBuf,
        /// Version found.
        found: u16,
    },
    /// Size does not match the header.
    #[error("{}: {actual} bytes, but the header announces {expected}", path.display())]
    Size {
        /// The file.
        path: PathBuf,
        /// Expected size (bytes).
        expected: u64,
        /// Actual size (bytes).
        actual: u64,
    },
    /// Invalid record contents.
    #[error("{}: {source}", path.display())]
    Records {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: SiftError,
    },
    /// A key that is not a whole number of bytes.
    #[error("{}: a key of {bits} bits is not a whole number of bytes", path.display())]
    PartialByte {
        /// The file.
        path: PathBuf,
        /// Key length (bits).
        bits: usize,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FileError + '_ {
    move |source| FileError::Io { path: path.to_path_buf(), source }
}

fn header(path: &Path, bytes: &[u8], magic: &[u8; 4], kind: &'static str, len: usize) -> Result<(), FileError> {
    if bytes.len() < len || &bytes[..4] != magic {
        return Err(FileError::BadMagic { path: path.into(), expected: kind, found: bytes[..bytes.len().min(4)].to_vec() });
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version != FORMAT_VERSION {
        return Err(FileError::BadVersion { path: path.into(), found: version });
    }
    Ok(())
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// Writes `bytes` to `path` via a temporary file and a rename, mode 0600 on Unix.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// Reads a prepared-state record file.
pub fn read_alice_records(path: &Path) -> Result<AliceRecords, FileError> {
    let mut bytes = std::fs::read(path).map_err(io(path))?;
    let r = (|| {
        header(path, &bytes, ALICE_MAGIC, "prepared-state record (QKDA)", 24)?;
        let first = u64_at(&bytes, 8);
        let n = u64_at(&bytes, 16);
        if bytes.len() as u64 != 24 + n {
            return Err(FileError::Size { path: path.into(), expected: 24 + n, actual: bytes.len() as u64 });
        }
        AliceRecords::from_codes(first, bytes[24..].to_vec()).map_err(|source| FileError::Records { path: path.into(), source })
    })();
    bytes.zeroize();
    r
}

/// Writes a prepared-state record file.
pub fn write_alice_records(path: &Path, rec: &AliceRecords) -> Result<(), FileError> {
    let mut bytes = Vec::with_capacity(24 + rec.len());
    bytes.extend_from_slice(ALICE_MAGIC);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&[0, 0]);
    bytes.extend_from_slice(&rec.first_slot().to_le_bytes());
    bytes.extend_from_slice(&(rec.len() as u64).to_le_bytes());
    bytes.extend_from_slice(rec.codes());
    let r = write_private(path, &bytes);
    bytes.zeroize();
    r
}

/// Reads a detection record file.
pub fn read_detections(path: &Path) -> Result<Vec<Detection>, FileError> {
    let mut bytes = std::fs::read(path).map_err(io(path))?;
    let r = (|| {
        header(path, &bytes, DETECTION_MAGIC, "detection record (QKDD)", 16)?;
        let n = u64_at(&bytes, 8);
        let expected = n.checked_mul(9).and_then(|x| x.checked_add(16)).unwrap_or(u64::MAX);
        if bytes.len() as u64 != expected {
            return Err(FileError::Size { path: path.into(), expected, actual: bytes.len() as u64 });
        }
        Ok(bytes[16..].chunks_exact(9).map(|c| Detection { slot: u64_at(c, 0), clicks: c[8] }).collect())
    })();
    bytes.zeroize();
    r
}

/// Writes a detection record file.
pub fn write_detections(path: &Path, records: &[Detection]) -> Result<(), FileError> {
    let mut bytes = Vec::with_capacity(16 + 9 * records.len());
    bytes.extend_from_slice(DETECTION_MAGIC);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&[0, 0]);
    bytes.extend_from_slice(&(records.len() as u64).to_le_bytes());
    for d in records {
        bytes.extend_from_slice(&d.slot.to_le_bytes());
        bytes.push(d.clicks);
    }
    let r = write_private(path, &bytes);
    bytes.zeroize();
    r
}

/// Reads a key or pre-shared-key file.
pub fn read_key_file(path: &Path) -> Result<SecretBits, FileError> {
    let mut bytes = std::fs::read(path).map_err(io(path))?;
    let bits = bits_from_bytes(&bytes);
    bytes.zeroize();
    Ok(bits)
}

/// Writes a key or pre-shared-key file (the key must be whole bytes).
pub fn write_key_file(path: &Path, key: &SecretBits) -> Result<(), FileError> {
    if !key.len().is_multiple_of(8) {
        return Err(FileError::PartialByte { path: path.into(), bits: key.len() });
    }
    let mut bytes: Vec<u8> = key.words().iter().flat_map(|w| w.to_le_bytes()).take(key.len() / 8).collect();
    let r = write_private(path, &bytes);
    bytes.zeroize();
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distill::sifting::Basis;

    fn tmp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("qkd-files-{}-{name}", std::process::id()))
    }

    #[test]
    fn records_roundtrip() {
        let mut a = AliceRecords::new(5);
        a.push(Basis::X, true, 2).unwrap();
        a.push(Basis::Z, false, 0).unwrap();
        let p = tmp("a.rec");
        write_alice_records(&p, &a).unwrap();
        let b = read_alice_records(&p).unwrap();
        assert_eq!(b.codes(), a.codes());
        assert_eq!(b.first_slot(), 5);
        let d = vec![Detection { slot: 1, clicks: 3 }, Detection { slot: 9, clicks: 8 }];
        let q = tmp("b.rec");
        write_detections(&q, &d).unwrap();
        assert_eq!(read_detections(&q).unwrap(), d);
        // Wrong kind and truncation are reported.
        assert!(matches!(read_alice_records(&q), Err(FileError::BadMagic { .. })));
        let mut bytes = std::fs::read(&q).unwrap();
        bytes.pop();
        std::fs::write(&q, &bytes).unwrap();
        assert!(matches!(read_detections(&q), Err(FileError::Size { .. })));
        std::fs::remove_file(&p).unwrap();
        std::fs::remove_file(&q).unwrap();
    }

    #[test]
    fn key_file_roundtrip_and_layout() {
        let k = SecretBits::from_bools(&[true, false, false, false, false, false, false, true, true, false, false, false, false, false, false, false]);
        let p = tmp("k.key");
        write_key_file(&p, &k).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), vec![0x81, 0x01]);
        assert_eq!(read_key_file(&p).unwrap(), k);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert!(matches!(write_key_file(&p, &SecretBits::zeros(3)), Err(FileError::PartialByte { .. })));
        std::fs::remove_file(&p).unwrap();
    }
}
