//! The testbench suite on a real board: `QKD_PORT=/dev/ttyUSB1 cargo test -p qkd-tests
//! --test hardware -- --nocapture` (optionally `QKD_BAUD`, default 3000000). Without
//! `QKD_PORT` it says so and does nothing: the same suite runs on the Verilated board in
//! `simulated.rs` and through a pseudo-terminal in `pty.rs`.

use qkd_driver::device::Device;
use qkd_driver::serial::serial_link;

#[test]
fn suite_passes_on_the_board_named_by_qkd_port() {
    let Ok(port) = std::env::var("QKD_PORT") else {
        println!("QKD_PORT is not set: no board to test (the suite runs on the Verilated board in tests/simulated.rs)");
        return;
    };
    let baud = std::env::var("QKD_BAUD").ok().map(|b| b.parse::<u32>().expect("QKD_BAUD must be a number of bits per second")).unwrap_or(3_000_000);
    let link = serial_link(&port, baud).unwrap_or_else(|e| panic!("{e}"));
    let mut dev = Device::open(Box::new(link)).unwrap_or_else(|e| panic!("{port}: {e}"));
    println!("{:?}", dev.info());
    let outcomes = qkd_tests::run_suite(&mut dev, &[], |b| println!("-- {}: {}", b.name, b.what));
    for o in &outcomes {
        println!("{:12} {} {}", o.name, if o.passed { "PASS" } else { "FAIL" }, o.detail);
    }
    println!("link: {:?}", dev.link_stats());
    assert!(outcomes.iter().all(|o| o.passed), "failed on {port}: {:?}", outcomes.iter().filter(|o| !o.passed).collect::<Vec<_>>());
}
