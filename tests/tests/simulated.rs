//! The testbench suite against the Verilated board, driven through its UART pins byte by
//! byte (the whole host stack: device API, framed protocol, CRC, resends).

use qkd_driver::device::Device;
use qkd_driver::simulated::sim_link;

#[test]
fn suite_passes_on_the_verilated_board() {
    let mut dev = Device::open(Box::new(sim_link(1))).expect("open the Verilated board");
    let outcomes = qkd_tests::run_suite(&mut dev, &[], |b| println!("-- {}: {}", b.name, b.what));
    for o in &outcomes {
        println!("{:12} {} {}", o.name, if o.passed { "PASS" } else { "FAIL" }, o.detail);
    }
    println!("link: {:?}", dev.link_stats());
    assert!(outcomes.iter().all(|o| o.passed), "failed: {:?}", outcomes.iter().filter(|o| !o.passed).collect::<Vec<_>>());
    assert_eq!(outcomes.len(), qkd_tests::SUITE.len());
}
