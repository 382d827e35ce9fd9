//! The driver's error type.

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

/// Everything that can go wrong between the host and a device.
#[derive(Debug, Error)]
pub enum DriverError {
    /// The serial port or device file could not be opened.
    #[error("cannot open {path}: {reason}")]
    NoPort {
        /// The port or device file.
        path: String,
        /// Why it failed.
        reason: String,
    },
    /// An I/O error on an open port or device file.
    #[error("I/O error on {what}: {source}")]
    Io {
        /// The port or file.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// No valid reply arrived, after every retry.
    #[error("no valid reply to {request} after {attempts} attempts ({timeout:?} each): {last}")]
    Timeout {
        /// The request, in words.
        request: String,
        /// Attempts made.
        attempts: u32,
        /// Wait per attempt.
        timeout: Duration,
        /// What went wrong on the last attempt.
        last: String,
    },
    /// The device answered with an error that retrying cannot cure.
    #[error("the device rejected {request}: {reason}")]
    Rejected {
        /// The request, in words.
        request: String,
        /// The device's error code, in words.
        reason: String,
    },
    /// A reply did not have the shape its request asks for.
    #[error("malformed reply to {request}: {reason}")]
    Malformed {
        /// The request, in words.
        request: String,
        /// What was wrong.
        reason: String,
    },
    /// The device is not a qkd-station core.
    #[error("not a qkd-station device: ID reads {id:#010x}, expected {expected:#010x} (wrong port, or wrong baud rate?)")]
    WrongDevice {
        /// The ID register as read.
        id: u32,
        /// The qkd-station ID.
        expected: u32,
    },
    /// The gateware was built with a different register map or major version.
    #[error("incompatible gateware: {reason}; rebuild the bitstream (scripts/synth) or use a matching host")]
    Incompatible {
        /// What differs.
        reason: String,
    },
    /// A register value that does not fit its register or field.
    #[error("{register}: value {value} out of range ({range})")]
    OutOfRange {
        /// The register (and field).
        register: String,
        /// The value asked for.
        value: u64,
        /// The allowed range, in words.
        range: String,
    },
    /// An access that the register does not allow.
    #[error("{register} is {access}: cannot {op} it")]
    Access {
        /// The register.
        register: String,
        /// Its access mode.
        access: &'static str,
        /// The operation refused.
        op: &'static str,
    },
    /// No register of that name or address.
    #[error("no register {0} in the register map (see `qkd regs --list`)")]
    UnknownRegister(String),
    /// The operation is not offered by this transport.
    #[error("{transport} cannot {op}")]
    Unsupported {
        /// The transport.
        transport: String,
        /// The operation.
        op: &'static str,
    },
    /// The device did not reach a state in time (device time, on the simulator).
    #[error("waited {waited:?} for {what}")]
    Stalled {
        /// What was waited for.
        what: String,
        /// How long.
        waited: Duration,
    },
    /// A tag file could not be read or written.
    #[error("tag file {path}: {reason}")]
    TagFile {
        /// The file.
        path: PathBuf,
        /// What was wrong (with the byte offset where it applies).
        reason: String,
    },
}

/// The driver's result type.
pub type Result<T, E = DriverError> = std::result::Result<T, E>;
