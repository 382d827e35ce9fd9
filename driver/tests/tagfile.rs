//! The tag file format: round trips, the documented byte layout, and damage detection.

use std::path::Path;

use qkd_driver::tagfile::{Loss, TagFileHeader, TagReader, TagWriter, BLOCK_RECORDS, HEADER_FIXED_BYTES, MAGIC, MAX_NOTE_BYTES};
use qkd_driver::transport::Hello;
use qkd_driver::DriverError;
use qkd_hdl::protocol::CRC;
use qkd_hdl::tagfmt::{Record, Tag};

fn header(note: &str) -> TagFileHeader {
    TagFileHeader {
        tick_hz: 150_000_000,
        channels: 5,
        board: 2,
        gateware_version: 0x0001_0000,
        map_hash: 0x432a_08ce,
        start_unix_ns: 1_700_000_000_123_456_789,
        note: note.into(),
    }
}

/// A valid record stream: an EPOCH, then events on rotating channels, a LOST now and then,
/// and a new EPOCH every 1000 records.
fn records(n: usize) -> Vec<u32> {
    (0..n)
        .map(|i| match i % 1000 {
            0 => Record::Epoch((i / 1000) as u32).encode(),
            500 => Record::Lost(i as u32 % 7 + 1).encode(),
            j => Record::Event { mask: 1 << (i % 5), time_low: j as u32 * 97 }.encode(),
        })
        .collect()
}

fn write(path: &Path, h: &TagFileHeader, recs: &[u32], chunk: usize) -> u64 {
    let mut w = TagWriter::create(path, h).unwrap();
    for c in recs.chunks(chunk.max(1)) {
        w.write_records(c).unwrap();
    }
    assert_eq!(w.records(), recs.len() as u64);
    w.finish().unwrap()
}

/// Reads blocks until the end or an error; returns the records and the error message.
fn read_until_error(path: &Path) -> (Vec<u32>, Option<String>) {
    let mut r = TagReader::open(path).unwrap();
    let mut got = Vec::new();
    loop {
        match r.next_block() {
            Ok(Some(b)) => got.extend(b),
            Ok(None) => return (got, None),
            Err(e) => {
                assert!(matches!(e, DriverError::TagFile { .. }), "{e}");
                // The error sticks.
                assert_eq!(r.next_block().unwrap_err().to_string(), e.to_string());
                return (got, Some(e.to_string()));
            }
        }
    }
}

#[test]
fn round_trip_over_many_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let recs = records(3 * BLOCK_RECORDS + 1234);
    for (i, chunk) in [1usize, 777, BLOCK_RECORDS, 5 * BLOCK_RECORDS].into_iter().enumerate() {
        let path = dir.path().join(format!("t{i}.qkdtags"));
        let h = header("café run 3, detectors H/V/D/A, sync on ch 4");
        // Byte-at-a-time writes are slow in a debug build; keep that case short.
        let recs = if chunk == 1 { &recs[..5000] } else { &recs[..] };
        assert_eq!(write(&path, &h, recs, chunk), recs.len() as u64);
        let mut r = TagReader::open(&path).unwrap();
        assert_eq!(r.header(), &h);
        let mut sizes = Vec::new();
        let mut got = Vec::new();
        for b in r.blocks() {
            let b = b.unwrap();
            sizes.push(b.len());
            got.extend(b);
        }
        assert_eq!(got, recs, "chunk {chunk}");
        assert!(sizes[..sizes.len() - 1].iter().all(|&s| s == BLOCK_RECORDS), "{sizes:?}");
        assert_eq!(sizes.len(), recs.len().div_ceil(BLOCK_RECORDS), "full blocks, then one short one");
        assert_eq!(r.records_read(), recs.len() as u64);
        assert!(r.next_block().unwrap().is_none(), "None again after the end");
        let len = std::fs::metadata(&path).unwrap().len();
        assert_eq!(len, (h.encoded_len() + 8 * sizes.len() + 4 * recs.len() + 16) as u64);
    }
}

#[test]
fn empty_recording_and_flush() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty");
    assert_eq!(write(&path, &header(""), &[], 1), 0);
    let mut r = TagReader::open(&path).unwrap();
    assert!(r.next_block().unwrap().is_none());

    // flush() makes the records so far readable, before the end block exists.
    let path = dir.path().join("live");
    let mut w = TagWriter::create(&path, &header("live")).unwrap();
    w.write_records(&records(10)).unwrap();
    w.flush().unwrap();
    let (got, err) = read_until_error(&path);
    assert_eq!(got, records(10));
    assert!(err.unwrap().contains("without an end block"));
    w.write_records(&records(30)[10..]).unwrap();
    assert_eq!(w.finish().unwrap(), 30);
    assert_eq!(read_until_error(&path), (records(30), None));
}

#[test]
fn dropping_the_writer_finishes_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dropped");
    {
        let mut w = TagWriter::create(&path, &header("")).unwrap();
        w.write_records(&records(100)).unwrap();
    }
    assert_eq!(read_until_error(&path), (records(100), None));
}

#[test]
fn header_layout_is_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("layout");
    let h = header("abc");
    let recs = [Record::Epoch(1).encode(), Record::Event { mask: 0b11, time_low: 5 }.encode()];
    write(&path, &h, &recs, 2);
    let b = std::fs::read(&path).unwrap();
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    assert_eq!(&b[0..8], b"QKDTAGS1");
    assert_eq!(MAGIC, *b"QKDTAGS1");
    assert_eq!(u16_at(8), 1);
    let hl = HEADER_FIXED_BYTES + 3;
    assert_eq!(u16_at(10) as usize, hl);
    assert_eq!(u16_at(12), 5);
    assert_eq!(u16_at(14), 2);
    assert_eq!(u64_at(16), 150_000_000);
    assert_eq!(u32_at(24), 0x0001_0000);
    assert_eq!(u32_at(28), 0x432a_08ce);
    assert_eq!(u64_at(32), 1_700_000_000_123_456_789);
    assert_eq!(u16_at(40), 3);
    assert_eq!(&b[42..45], b"abc");
    assert_eq!(u32_at(45), CRC.checksum(&b[..45]));
    // One block of 2 records, then the end block.
    assert_eq!(u32_at(hl), 2);
    assert_eq!(u32_at(hl + 4), recs[0]);
    assert_eq!(u32_at(hl + 8), recs[1]);
    assert_eq!(u32_at(hl + 12), CRC.checksum(&b[hl..hl + 12]));
    let e = hl + 16;
    assert_eq!(u32_at(e), 0);
    assert_eq!(u64_at(e + 4), 2);
    assert_eq!(u32_at(e + 12), CRC.checksum(&b[e..e + 12]));
    assert_eq!(b.len(), e + 16);
}

#[test]
fn truncation_is_located_and_keeps_what_came_before() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full");
    let recs = records(2 * BLOCK_RECORDS + 100);
    let h = header("x");
    write(&full, &h, &recs, BLOCK_RECORDS);
    let bytes = std::fs::read(&full).unwrap();
    let hl = h.encoded_len();
    let block = 8 + 4 * BLOCK_RECORDS;
    let b2 = hl + 2 * block; // start of the short third block
    let end = bytes.len() - 16; // start of the end block
    // (cut, records still read, words the message must contain)
    let cases: Vec<(usize, usize, Vec<String>)> = vec![
        (hl, 0, vec![format!("ends at byte {hl} without an end block"), "0 records".into()]),
        (hl + 2, 0, vec![format!("truncated at byte {}", hl + 2), "block header".into()]),
        (hl + 4 + 40, 0, vec![format!("truncated at byte {}", hl + 44), format!("block of {BLOCK_RECORDS} records at byte {hl}"), "the 0 records before it are intact".into()]),
        (hl + block - 1, 0, vec![format!("truncated at byte {}", hl + block - 1)]),
        (hl + block, BLOCK_RECORDS, vec![format!("ends at byte {} without an end block", hl + block)]),
        (b2 + 10, 2 * BLOCK_RECORDS, vec![format!("truncated at byte {}", b2 + 10), "block of 100 records".into(), format!("the {} records before it are intact", 2 * BLOCK_RECORDS)]),
        (end, recs.len(), vec![format!("ends at byte {end} without an end block")]),
        (end + 9, recs.len(), vec![format!("truncated at byte {}", end + 9), "end block".into()]),
    ];
    for (cut, n, words) in cases {
        let p = dir.path().join(format!("cut{cut}"));
        std::fs::write(&p, &bytes[..cut]).unwrap();
        let (got, err) = read_until_error(&p);
        let err = err.unwrap_or_else(|| panic!("cut at {cut}: no error"));
        assert_eq!(got.len(), n, "cut at {cut}: {err}");
        assert_eq!(got, recs[..n], "cut at {cut}");
        for w in words {
            assert!(err.contains(&w), "cut at {cut}: {err:?} lacks {w:?}");
        }
    }
    // Cuts inside the header.
    for cut in [5, 11, 20, hl - 1] {
        let p = dir.path().join(format!("head{cut}"));
        std::fs::write(&p, &bytes[..cut]).unwrap();
        let Err(e) = TagReader::open(&p) else { panic!("header cut at {cut} opened") };
        assert!(e.to_string().contains("truncated header"), "{e}");
    }
}

#[test]
fn flipped_bytes_fail_the_crc_at_their_block() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full");
    let recs = records(3 * BLOCK_RECORDS);
    let h = header("");
    write(&full, &h, &recs, 1000);
    let bytes = std::fs::read(&full).unwrap();
    let hl = h.encoded_len();
    let block = 8 + 4 * BLOCK_RECORDS;
    for (at, n) in [(hl + 4 + 3, 0), (hl + block + 12345, BLOCK_RECORDS), (hl + 3 * block - 1, 2 * BLOCK_RECORDS)] {
        let mut b = bytes.clone();
        b[at] ^= 0x10;
        let p = dir.path().join(format!("flip{at}"));
        std::fs::write(&p, &b).unwrap();
        let (got, err) = read_until_error(&p);
        let err = err.unwrap();
        assert_eq!(got, recs[..n], "flip at {at}");
        let block_at = hl + (n / BLOCK_RECORDS) * block;
        assert!(err.contains(&format!("CRC mismatch in the block of {BLOCK_RECORDS} records at byte {block_at}")), "{err}");
    }
    // The end block's count.
    let mut b = bytes.clone();
    let n = b.len();
    b[n - 10] ^= 1;
    let p = dir.path().join("flip_end");
    std::fs::write(&p, &b).unwrap();
    let (got, err) = read_until_error(&p);
    assert_eq!(got, recs);
    assert!(err.unwrap().contains("CRC mismatch in the end block"));
    // A header byte (the tick rate).
    let mut b = bytes.clone();
    b[17] ^= 1;
    std::fs::write(&p, &b).unwrap();
    let Err(e) = TagReader::open(&p) else { panic!("damaged header accepted") };
    assert!(e.to_string().contains("header CRC mismatch"), "{e}");
    // Data after the end block.
    let mut b = bytes.clone();
    b.push(0);
    std::fs::write(&p, &b).unwrap();
    let (got, err) = read_until_error(&p);
    assert_eq!(got, recs);
    assert!(err.unwrap().contains("after the end block"));
}

#[test]
fn bad_magic_version_and_note() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f");
    for junk in [&b""[..], b"QKDTAGS2 and more bytes", b"hello world, this is a text file\n"] {
        std::fs::write(&p, junk).unwrap();
        let Err(e) = TagReader::open(&p) else { panic!("opened {junk:?}") };
        assert!(matches!(e, DriverError::TagFile { .. }));
        assert!(e.to_string().contains("not a qkd tag file"), "{e}");
    }
    write(&p, &header(""), &records(10), 10);
    let mut b = std::fs::read(&p).unwrap();
    b[8] = 2;
    std::fs::write(&p, &b).unwrap();
    let Err(e) = TagReader::open(&p) else { panic!("opened version 2") };
    assert!(e.to_string().contains("unsupported format version 2"), "{e}");

    let long = "n".repeat(MAX_NOTE_BYTES + 1);
    assert!(TagWriter::create(&p, &header(&long)).is_err());
    let ok = "n".repeat(MAX_NOTE_BYTES);
    write(&p, &header(&ok), &[], 1);
    assert_eq!(TagReader::open(&p).unwrap().header().note, ok);
}

#[test]
fn decodes_tags_across_blocks_with_losses_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tags");
    // The epoch set in the first block applies to events in the next one.
    let mut w = TagWriter::create(&p, &header("")).unwrap();
    w.write_records(&[Record::Epoch(3).encode(), Record::Event { mask: 0b101, time_low: 10 }.encode()]).unwrap();
    w.flush().unwrap();
    w.write_records(&[Record::Lost(4).encode(), Record::Event { mask: 0b10, time_low: 11 }.encode()]).unwrap();
    w.finish().unwrap();
    let mut r = TagReader::open(&p).unwrap();
    let t = |c: u8, fine: u64| Tag { time: 3 << 22 | fine, channel: c };
    let b1 = r.next_tags().unwrap().unwrap();
    assert_eq!(b1.tags, vec![t(0, 10), t(2, 10)]);
    assert!(b1.losses.is_empty());
    let b2 = r.next_tags().unwrap().unwrap();
    assert_eq!(b2.tags, vec![t(1, 11)]);
    assert_eq!(b2.losses, vec![Loss { before_tag: 0, count: 4, saturated: false }]);
    assert!(r.next_tags().unwrap().is_none());
    assert_eq!((r.decoder().events(), r.decoder().lost()), (3, 4));

    // An EVENT before any EPOCH is reported with its byte offset.
    write(&p, &header(""), &[Record::Event { mask: 1, time_low: 0 }.encode()], 1);
    let mut r = TagReader::open(&p).unwrap();
    let e = r.next_tags().unwrap_err().to_string();
    assert!(e.contains(&format!("record at byte {}", HEADER_FIXED_BYTES + 4)), "{e}");
}

#[test]
fn header_from_hello_decodes_build() {
    // BUILD: 5 channels, 4 groups, board 2, 150 MHz.
    let hello = Hello { id: 0x514B_4453, version: 0x0001_0000, map_hash: 0x1234_5678, build: 1500 << 16 | 2 << 8 | 4 << 4 | 5 };
    let h = TagFileHeader::from_hello(&hello, "n");
    assert_eq!((h.tick_hz, h.channels, h.board, h.gateware_version, h.map_hash), (150_000_000, 5, 2, 0x0001_0000, 0x1234_5678));
    let age = std::time::SystemTime::now().duration_since(h.start_time()).unwrap();
    assert!(age < std::time::Duration::from_secs(60));
}
