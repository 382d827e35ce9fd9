//! qkd-station host library: key distillation, and (later) transports and the device API.

pub mod distill;
