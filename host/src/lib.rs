//! qkd-station host library: key distillation, and the analysis of recorded tag streams (the
//! device driver is the `qkd-driver` crate).

pub mod distill;
pub mod tags;
