//! Where the response writers put their XML: one buffer that either collects the whole
//! document (small answers, tests) or is handed on in chunks of about [`CHUNK_BYTES`] as it
//! fills (large Execute answers, streamed to the client while they are written).
//!
//! The writers append to [`XmlSink::buf`] and call [`XmlSink::checkpoint`] between elements
//! (after every tuple, cell and row); only there is a full buffer handed on, so a chunk
//! boundary never depends on anything but the buffer length and the output is byte for byte
//! the same whether it is collected or streamed.

pub use datakube_http::ClientGone;

/// Target chunk size when streaming: large enough that per-chunk overhead (channel, TLS
/// record, HTTP chunk header) is negligible, small enough that a few chunks in flight cost
/// little memory.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// How a sink ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Finished {
    /// Nothing was handed on: here is the whole document (send it with a length).
    Whole(String),
    /// Everything was handed on in chunks, the last one included.
    Streamed,
}

type Emit<'a> = &'a mut dyn FnMut(String) -> Result<(), ClientGone>;

pub struct XmlSink<'a> {
    /// The XML written and not yet handed on. Writers append to it directly.
    pub buf: String,
    chunk: usize,
    emit: Option<Emit<'a>>,
    emitted: u64,
}

impl XmlSink<'static> {
    /// A sink that keeps everything: the document is [`Finished::Whole`].
    pub fn collect(capacity: usize) -> Self {
        XmlSink {
            buf: String::with_capacity(capacity),
            chunk: usize::MAX,
            emit: None,
            emitted: 0,
        }
    }
}

impl<'a> XmlSink<'a> {
    /// A sink that hands the buffer to `emit` whenever a checkpoint finds at least `chunk`
    /// bytes in it. `emit` failing (the client is gone) stops the writer at its next checkpoint.
    pub fn chunked(chunk: usize, emit: Emit<'a>) -> Self {
        let chunk = chunk.max(1);
        XmlSink {
            // Room for a chunk plus the element that crosses the boundary.
            buf: String::with_capacity(chunk.saturating_add(chunk / 4).min(1 << 24)),
            chunk,
            emit: Some(emit),
            emitted: 0,
        }
    }

    /// Between two elements: hand the buffer on if it is full.
    #[inline]
    pub fn checkpoint(&mut self) -> Result<(), ClientGone> {
        if self.buf.len() >= self.chunk {
            self.hand_on()
        } else {
            Ok(())
        }
    }

    fn hand_on(&mut self) -> Result<(), ClientGone> {
        let Some(emit) = self.emit.as_mut() else {
            return Ok(());
        };
        let next = String::with_capacity(self.buf.capacity());
        let chunk = std::mem::replace(&mut self.buf, next);
        self.emitted += chunk.len() as u64;
        emit(chunk)
    }

    /// Bytes handed on so far.
    pub fn emitted(&self) -> u64 {
        self.emitted
    }

    /// The document is complete: return it whole if nothing was handed on yet, otherwise
    /// hand on the rest.
    pub fn finish(mut self) -> Result<Finished, ClientGone> {
        if self.emit.is_none() || self.emitted == 0 {
            return Ok(Finished::Whole(std::mem::take(&mut self.buf)));
        }
        if !self.buf.is_empty() {
            self.hand_on()?;
        }
        Ok(Finished::Streamed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_handed_on_only_at_checkpoints_and_finish_sends_the_rest() {
        let mut chunks: Vec<String> = Vec::new();
        let mut emit = |c: String| {
            chunks.push(c);
            Ok(())
        };
        let mut sink = XmlSink::chunked(10, &mut emit);
        for i in 0..7 {
            sink.buf.push_str(&format!("<e{i}/>")); // 5 bytes each
            sink.checkpoint().unwrap();
        }
        assert_eq!(sink.finish(), Ok(Finished::Streamed));
        assert_eq!(chunks, ["<e0/><e1/>", "<e2/><e3/>", "<e4/><e5/>", "<e6/>"]);
    }

    #[test]
    fn a_document_smaller_than_a_chunk_comes_back_whole() {
        let mut emit = |_: String| -> Result<(), ClientGone> { panic!("nothing should be handed on") };
        let mut sink = XmlSink::chunked(1000, &mut emit);
        sink.buf.push_str("<root/>");
        sink.checkpoint().unwrap();
        assert_eq!(sink.finish(), Ok(Finished::Whole("<root/>".into())));
    }

    #[test]
    fn a_gone_client_stops_the_writer() {
        let mut emit = |_: String| Err(ClientGone);
        let mut sink = XmlSink::chunked(4, &mut emit);
        sink.buf.push_str("<abc/>");
        assert_eq!(sink.checkpoint(), Err(ClientGone));
    }
}
