//! Heap used for the serialized XML of an Execute answer: the whole-document path (what the
//! server did before streaming) needs the document twice (the `<root>` and the envelope
//! around it), the streamed path a bounded amount however large the answer.
//!
//! Measured with a counting global allocator, so this file holds a single test (parallel
//! tests would disturb the counters). Run with `--nocapture` to see the numbers.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use datakube_xmla::cellset::{Axis, AxisMember, Cell, CellProperty, CellSet, CellValue};
use datakube_xmla::response::{Kind, envelope};
use datakube_xmla::service::{CHANNEL_CHUNKS, ExecuteResult, Reply};
use datakube_xmla::sink::{CHUNK_BYTES, ClientGone, Finished, XmlSink};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = CURRENT.fetch_add(by, Ordering::SeqCst) + by;
    PEAK.fetch_max(now, Ordering::SeqCst);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::SeqCst);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // Count the new block before the old one is gone (a moving realloc holds both).
            grew(new_size);
            CURRENT.fetch_sub(layout.size(), Ordering::SeqCst);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Start measuring: the peak above the current use from here on.
fn reset() -> usize {
    let base = CURRENT.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    base
}

fn peak_since(base: usize) -> usize {
    PEAK.load(Ordering::SeqCst) - base
}

fn member(h: &str, level: &str, key: usize, caption: String) -> AxisMember {
    AxisMember {
        hierarchy: h.to_string(),
        unique_name: format!("{h}.[{level}].&[{key}]"),
        caption,
        level_unique_name: format!("{h}.[{level}]"),
        level_number: 1,
        display_info: 0,
        properties: vec![],
    }
}

/// `rows` tuples of (Kommune, Alder) against one measure, every cell filled.
fn cellset(rows: usize) -> CellSet {
    let (k, a) = ("[Kommune].[Geografi]", "[Alder].[Aldersgruppe]");
    CellSet {
        cube_name: "Befolkning".into(),
        last_data_update: "2026-01-01T00:00:00".into(),
        last_schema_update: "2026-01-01T00:00:00".into(),
        axes: vec![
            Axis {
                hierarchies: vec!["[Measures]".into()],
                properties: vec![],
                tuples: vec![vec![AxisMember {
                    hierarchy: "[Measures]".into(),
                    unique_name: "[Measures].[Tilflyttede]".into(),
                    caption: "Tilflyttede".into(),
                    level_unique_name: "[Measures].[MeasuresLevel]".into(),
                    level_number: 0,
                    display_info: 0,
                    properties: vec![],
                }]],
            },
            Axis {
                hierarchies: vec![k.into(), a.into()],
                properties: vec![],
                tuples: (0..rows)
                    .map(|i| {
                        vec![
                            member(k, "Kommune", i / 100, format!("Kommune {} & Omegn", i / 100)),
                            member(a, "Alder", i % 100, format!("{} år", i % 100)),
                        ]
                    })
                    .collect(),
            },
        ],
        slicer: Axis::default(),
        cell_properties: vec![CellProperty::Value, CellProperty::FormattedValue],
        language: 1030,
        cells: (0..rows as u64)
            .map(|o| Cell {
                ordinal: o,
                value: CellValue::Long(o as i64 * 7),
                formatted: Some(format!("{}", o * 7)),
                format_string: None,
            })
            .collect(),
    }
}

/// (document size, peak heap of the whole-document path, peak heap of the streamed path).
fn measure(rows: usize) -> (usize, usize, usize) {
    let cs = cellset(rows);

    // Before: the `<root>` as one string, then the envelope as another.
    let base = reset();
    let whole = envelope(
        Kind::Execute,
        Some("s"),
        &datakube_xmla::mddataset::write_mddataset(&cs, true),
    );
    let whole_peak = peak_since(base);
    let size = whole.len();
    drop(whole);

    // Now: written in chunks into a bounded channel that another thread drains.
    let reply = Reply::Execute {
        session: Some("s".into()),
        result: Box::new(ExecuteResult::CellSet {
            cells: cs,
            with_schema: true,
        }),
    };
    let (tx, rx) = std::sync::mpsc::sync_channel::<String>(CHANNEL_CHUNKS);
    let reader = std::thread::spawn(move || rx.into_iter().map(|c| c.len()).sum::<usize>());
    let base = reset();
    {
        let mut emit = |c: String| tx.send(c).map_err(|_| ClientGone);
        let mut out = XmlSink::chunked(CHUNK_BYTES, &mut emit);
        reply.write_to(&mut out).unwrap();
        assert_eq!(out.finish(), Ok(Finished::Streamed));
    }
    let streamed_peak = peak_since(base);
    drop(tx);
    assert_eq!(
        reader.join().unwrap(),
        size,
        "the streamed answer is as long as the whole one"
    );
    (size, whole_peak, streamed_peak)
}

#[test]
fn streamed_answers_need_bounded_memory_whatever_their_size() {
    let small = measure(20_000);
    let large = measure(80_000);
    for (size, whole, streamed) in [small, large] {
        eprintln!(
            "answer {:.1} MB: whole-document path peak {:.1} MB, streamed path peak {:.2} MB",
            size as f64 / 1e6,
            whole as f64 / 1e6,
            streamed as f64 / 1e6
        );
        assert!(
            whole >= 2 * size,
            "the whole path holds root and envelope: {whole} < 2 × {size}"
        );
        // Chunks in the channel, one blocked in `send`, one being read, one being written
        // (each with room for its overshoot), plus one chunk's worth of slack for what the
        // channel and the thread wake-ups allocate (CI once measured 514 bytes above 7 chunks).
        let chunk = CHUNK_BYTES + CHUNK_BYTES / 4;
        let bound = (CHANNEL_CHUNKS + 4) * chunk;
        assert!(streamed < bound, "streamed peak {streamed} ≥ {bound}");
    }
    assert!(
        large.0 > 3 * small.0,
        "the sizes differ enough to show the bound holds for both"
    );
}
