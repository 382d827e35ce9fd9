//! qkd-station's testbench suite and end-to-end tests. The tests live in `tests/tests/`:
//! `place_and_route.rs` builds the board tops with the open iCE40 flow.
