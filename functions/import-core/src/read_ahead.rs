//! A reader that runs on a thread of its own, a few buffers ahead of its consumer: gzip
//! decompression then happens alongside framing instead of before it, on the framing thread.
//!
//! Bytes and errors arrive exactly as the inner reader gave them, in order; an error ends the
//! stream, as it ends framing. Dropping the reader stops the thread at its next buffer.

use std::io::{self, BufRead, Read};
use std::sync::mpsc::{self, Receiver, SyncSender};

/// Bytes a buffer holds. Large enough that channel traffic is noise against decompression.
const BUFFER: usize = 256 * 1024;
/// Buffers read ahead of the consumer: memory is bounded by `(AHEAD + 2) * BUFFER`.
const AHEAD: usize = 4;

pub(crate) struct ReadAhead {
    filled: Receiver<io::Result<Vec<u8>>>,
    /// Buffers the consumer is done with go back to the thread, which reuses them.
    emptied: SyncSender<Vec<u8>>,
    current: Vec<u8>,
    at: usize,
    ended: bool,
}

impl ReadAhead {
    pub(crate) fn new<R: Read + Send + 'static>(mut inner: R) -> io::Result<Self> {
        let (fill, filled) = mpsc::sync_channel::<io::Result<Vec<u8>>>(AHEAD);
        let (emptied, empty) = mpsc::sync_channel::<Vec<u8>>(AHEAD + 2);
        std::thread::Builder::new()
            .name("read-ahead".into())
            .spawn(move || loop {
                let mut buffer = empty.try_recv().unwrap_or_default();
                buffer.resize(BUFFER, 0);
                let (filled, error) = fill_from(&mut inner, &mut buffer);
                buffer.truncate(filled);
                // Bytes read before an error go first. An empty buffer is the end of the input;
                // after it, or an error, or once the consumer is gone, there is nothing to do.
                let end = buffer.is_empty();
                if (!end || error.is_none()) && fill.send(Ok(buffer)).is_err() {
                    return;
                }
                if let Some(e) = error {
                    let _ = fill.send(Err(e));
                    return;
                }
                if end {
                    return;
                }
            })?;
        Ok(ReadAhead {
            filled,
            emptied,
            current: Vec::new(),
            at: 0,
            ended: false,
        })
    }
}

/// Reads until `buffer` is full, the input ends or it fails: how many bytes it holds, and the
/// error if one stopped it.
fn fill_from(inner: &mut impl Read, buffer: &mut [u8]) -> (usize, Option<io::Error>) {
    let mut filled = 0;
    while filled < buffer.len() {
        match inner.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (filled, Some(e)),
        }
    }
    (filled, None)
}

impl BufRead for ReadAhead {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.at == self.current.len() && !self.ended {
            match self.filled.recv() {
                Ok(Ok(buffer)) => {
                    self.ended = buffer.is_empty();
                    let done = std::mem::replace(&mut self.current, buffer);
                    self.at = 0;
                    // The thread may have stopped or have spares enough: then it is dropped.
                    let _ = self.emptied.try_send(done);
                }
                Ok(Err(e)) => {
                    self.ended = true;
                    return Err(e);
                }
                Err(_) => {
                    self.ended = true;
                    return Err(io::Error::other(
                        "the read-ahead thread stopped before the end of the input",
                    ));
                }
            }
        }
        Ok(&self.current[self.at..])
    }

    fn consume(&mut self, amount: usize) {
        self.at = (self.at + amount).min(self.current.len());
    }
}

impl Read for ReadAhead {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Gives its bytes in pieces of the sizes listed (cycling), then an error if asked to.
    struct Pieces {
        bytes: Vec<u8>,
        at: usize,
        sizes: Vec<usize>,
        turn: usize,
        fail_at_end: bool,
    }

    impl Read for Pieces {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.at == self.bytes.len() {
                if self.fail_at_end {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "broken here"));
                }
                return Ok(0);
            }
            self.turn += 1;
            if self.turn.is_multiple_of(5) {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let size = self.sizes[self.turn % self.sizes.len()].max(1);
            let n = size.min(out.len()).min(self.bytes.len() - self.at);
            out[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    proptest! {
        #[test]
        fn bytes_and_errors_arrive_as_the_inner_reader_gave_them(
            len in 0..3 * BUFFER,
            sizes in prop::collection::vec(1..100_000usize, 1..5),
            fail_at_end in any::<bool>(),
            take in 1..70_000usize,
        ) {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + i / 251) as u8).collect();
            let inner = Pieces { bytes: bytes.clone(), at: 0, sizes, turn: 0, fail_at_end };
            let mut reader = ReadAhead::new(inner).unwrap();
            let mut got = Vec::new();
            let mut buffer = vec![0u8; take];
            let end = loop {
                match reader.read(&mut buffer) {
                    Ok(0) => break None,
                    Ok(n) => got.extend_from_slice(&buffer[..n]),
                    Err(e) => break Some(e),
                }
            };
            prop_assert_eq!(got, bytes);
            prop_assert_eq!(end.map(|e| e.to_string()), fail_at_end.then(|| "broken here".to_string()));
            // The end (or error) is final.
            prop_assert_eq!(reader.read(&mut buffer).ok(), Some(0));
        }
    }

    #[test]
    fn dropping_the_reader_early_stops_the_thread() {
        // An endless input: the thread fills the channel and waits. Once the reader is
        // dropped its send fails and it returns, dropping the input and its count of `alive`.
        struct Endless {
            _alive: std::sync::Arc<()>,
        }
        impl Read for Endless {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                out.fill(b'x');
                Ok(out.len())
            }
        }
        let alive = std::sync::Arc::new(());
        let mut reader = ReadAhead::new(Endless {
            _alive: alive.clone(),
        })
        .unwrap();
        let mut one = [0u8; 10];
        assert_eq!(reader.read(&mut one).unwrap(), 10);
        drop(reader);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::sync::Arc::strong_count(&alive) > 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "the thread still holds the input"
            );
            std::thread::yield_now();
        }
    }
}
