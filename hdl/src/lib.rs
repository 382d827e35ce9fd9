//! qkd-station gateware, written in rust-hdl, with the bit-exact reference models it is
//! checked against and the tag format the host decodes.
//!
//! * [`tagfmt`]: the 32-bit tag record format (one definition for gateware and host).
//! * [`channel`]: one detector channel front end (synchronizer, edge, enable, dead time).
//! * [`tagger`]: the N-channel time tagger with its tag FIFO.
//! * [`tagger_model`]: the cycle-accurate and the fast event-level reference models.
//! * [`top`]: board tops for the iCEBreaker (UP5K) and the iCE40-HX8K breakout.
//! * [`verilog`]: writes the Verilog of the blocks and tops.

pub mod bit_delay;
pub mod cdc;
pub mod channel;
pub mod coincidence;
pub mod core;
pub mod histogram;
pub mod coinc_filter;
pub mod entry_fifo;
pub mod tagfmt;
pub mod tagger;
pub mod tag_crossing;
pub mod tagger_model;
pub mod testsig;
pub mod top;
pub mod uart_stream;
pub mod verilog;
pub mod synth;
pub mod trivium;
pub mod health;
pub mod basis_rng;
pub mod protocol;
pub mod crc32;
pub mod uart_rx;
pub mod uart_tx;
pub mod link;
pub mod regmap;
pub mod rng_model;
