//! Streaming: the chunked writers produce exactly the bytes of the whole-document writers,
//! hand them on in bounded chunks, and stop when the client is gone.

use crate::mddataset::{write_mddataset, write_mddataset_to};
use crate::mddataset_tests::{big_cellset, well_formed_count};
use crate::rowset::{Rowset, Value, XsdType, col, opt, write_rowset};
use crate::service::{ExecuteResult, Reply};
use crate::sink::{CHUNK_BYTES, ClientGone, Finished, XmlSink};

/// Write with `write` into a chunked sink of `chunk` bytes; returns the chunks.
fn chunks_of(chunk: usize, write: impl FnOnce(&mut XmlSink<'_>) -> Result<(), ClientGone>) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut emit = |c: String| {
        chunks.push(c);
        Ok(())
    };
    let mut out = XmlSink::chunked(chunk, &mut emit);
    write(&mut out).unwrap();
    assert_eq!(
        out.finish(),
        Ok(Finished::Streamed),
        "the document is larger than a chunk"
    );
    chunks
}

/// Every chunk but the last reached the chunk size, and none is much larger than it: the
/// overshoot is at most one element (a tuple, cell or row) of the document.
fn assert_bounded(chunks: &[String], chunk: usize, largest_element: usize) {
    let (last, full) = chunks.split_last().unwrap();
    for c in full {
        assert!(c.len() >= chunk, "a chunk of {} bytes was handed on early", c.len());
        assert!(
            c.len() < chunk + largest_element,
            "a chunk of {} bytes overshoots {chunk}",
            c.len()
        );
    }
    assert!(!last.is_empty() && last.len() < chunk + largest_element);
}

#[test]
fn mddataset_streamed_is_byte_identical_to_the_whole_document() {
    let cs = big_cellset(300, 40); // 12,000 cells, 341 tuples, text with '&' and 'å'
    for with_schema in [true, false] {
        let whole = write_mddataset(&cs, with_schema);
        assert!(whole.len() > 4 * CHUNK_BYTES, "{} bytes", whole.len());
        for chunk in [1, 7, 1000, CHUNK_BYTES] {
            let chunks = chunks_of(chunk, |out| write_mddataset_to(&cs, with_schema, out));
            assert!(chunks.len() > 1);
            let joined = chunks.concat();
            assert_eq!(joined.len(), whole.len(), "chunk size {chunk}");
            assert!(joined == whole, "chunk size {chunk}: different bytes");
            // A member with its property is the largest element here (< 1 KiB). The schema
            // and OlapInfo go out as one piece before the first checkpoint.
            if chunk >= 1000 {
                assert_bounded(&chunks[1..], chunk, 1024);
            }
        }
    }
    // And the document is what it should be: every cell and tuple present.
    let whole = write_mddataset(&cs, true);
    assert_eq!(well_formed_count(&whole, b"Cell"), 300 * 40);
    assert_eq!(well_formed_count(&whole, b"Tuple"), 300 + 40 + 1);
}

#[test]
fn rowset_streamed_is_byte_identical_to_the_whole_document() {
    let columns = vec![
        col("Kommune", XsdType::String),
        opt("Beloeb", XsdType::Double),
        opt("Antal", XsdType::Long),
        opt("Aktiv", XsdType::Boolean),
    ];
    let rows: Vec<Vec<Value>> = (0..5000)
        .map(|i| {
            vec![
                Value::Str(format!("Kommune <{i}> & Søn")),
                if i % 3 == 0 {
                    Value::Null
                } else {
                    Value::Double(i as f64 / 8.0)
                },
                Value::Int(i * 1_000_003),
                Value::Bool(i % 2 == 0),
            ]
        })
        .collect();
    let whole = write_rowset(&columns, &rows);
    let rowset = Rowset::new(columns, rows);
    assert_eq!(rowset.to_xml(), whole);
    for chunk in [1, 333, CHUNK_BYTES] {
        let chunks = chunks_of(chunk, |out| rowset.write_to(out));
        assert!(chunks.concat() == whole, "chunk size {chunk}: different bytes");
        if chunk > 1 {
            assert_bounded(&chunks[1..], chunk, 512);
        }
    }
    assert_eq!(well_formed_count(&whole, b"row"), 5000);
}

#[test]
fn the_streamed_envelope_is_the_one_sent_whole() {
    for result in [
        ExecuteResult::CellSet {
            cells: big_cellset(50, 10),
            with_schema: true,
        },
        ExecuteResult::Rowset(Rowset::new(
            vec![col("A", XsdType::String)],
            (0..3000).map(|i| vec![Value::Str(format!("r{i}"))]).collect(),
        )),
    ] {
        let reply = Reply::Execute {
            session: Some("0d6c1f0e-session".into()),
            result: Box::new(result),
        };
        let chunks = chunks_of(4096, |out| reply.write_to(out));
        let whole = reply.into_string();
        assert!(whole.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<soap:Envelope"));
        assert!(whole.contains("SessionId=\"0d6c1f0e-session\""));
        assert!(whole.ends_with("</return></ExecuteResponse></soap:Body></soap:Envelope>"));
        assert!(chunks.concat() == whole, "different bytes");
    }
}

#[test]
fn the_writer_stops_at_the_first_chunk_the_client_does_not_take() {
    let cs = big_cellset(300, 40);
    let mut calls = 0usize;
    let mut emit = |_: String| {
        calls += 1;
        if calls <= 3 { Ok(()) } else { Err(ClientGone) }
    };
    let mut out = XmlSink::chunked(1000, &mut emit);
    assert_eq!(write_mddataset_to(&cs, true, &mut out), Err(ClientGone));
    let emitted = out.emitted();
    drop(out);
    // Three chunks taken, the fourth refused, nothing tried after that.
    assert_eq!(calls, 4);
    assert!(emitted < 4 * 2000 + 20_000, "{emitted} bytes handed on");
}

#[test]
fn a_small_answer_is_not_streamed() {
    let reply = Reply::Execute {
        session: None,
        result: Box::new(ExecuteResult::CellSet {
            cells: big_cellset(2, 2),
            with_schema: false,
        }),
    };
    let mut emit = |_: String| -> Result<(), ClientGone> { panic!("a small answer is sent whole") };
    let mut out = XmlSink::chunked(CHUNK_BYTES, &mut emit);
    reply.write_to(&mut out).unwrap();
    let Ok(Finished::Whole(text)) = out.finish() else {
        panic!("expected the whole text")
    };
    assert_eq!(text, reply.into_string());
}
