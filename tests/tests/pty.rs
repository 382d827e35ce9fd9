//! The hardware path, proven without hardware: the Verilated board is served on a
//! pseudo-terminal and the testbench suite opens it as a serial port (the `serialport`
//! crate, termios, a real tty), exactly as it opens a board behind a USB-UART bridge.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use qkd_driver::device::Device;
use qkd_driver::pty::PtyServer;
use qkd_driver::serial::serial_link;
use qkd_driver::simulated::SimulatedBoard;

#[test]
fn suite_passes_through_a_pseudo_terminal() {
    let mut server = PtyServer::open(SimulatedBoard::new(2)).expect("open a pty");
    let path = server.path().display().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let th = std::thread::spawn(move || server.serve(&s2));
    let mut dev = Device::open(Box::new(serial_link(&path, 3_000_000).expect("open the pty as a serial port"))).expect("identify");
    let outcomes = qkd_tests::run_suite(&mut dev, &[], |b| println!("-- {}: {}", b.name, b.what));
    for o in &outcomes {
        println!("{:12} {} {}", o.name, if o.passed { "PASS" } else { "FAIL" }, o.detail);
    }
    println!("link via {path}: {:?}", dev.link_stats());
    drop(dev);
    stop.store(true, Ordering::Relaxed);
    th.join().expect("server thread").expect("server ran cleanly");
    assert!(outcomes.iter().all(|o| o.passed), "failed: {:?}", outcomes.iter().filter(|o| !o.passed).collect::<Vec<_>>());
}
