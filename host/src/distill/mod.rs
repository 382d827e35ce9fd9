//! Key distillation, one module per stage:
//! [`sifting`] → [`estimation`] → reconciliation ([`cascade`] or [`ldpc`]) → [`verify`]
//! → [`toeplitz`] privacy amplification, with the length from [`finite_key`]; the two stations
//! talk over an authenticated channel ([`auth`], [`station`]). Key material is [`key::SecretBits`].

pub mod auth;
pub mod cascade;
pub mod estimation;
pub mod finite_key;
pub mod key;
pub mod ldpc;
pub mod sifting;
pub mod station;
pub mod toeplitz;
pub mod verify;
