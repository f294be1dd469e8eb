//! Packs accepted records, already compact JSON, into JSON arrays no larger than a byte limit,
//! in input order and greedily (fewest chunks = fewest jobs = fastest migration).

/// A finished chunk: a JSON array of whole records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// 1-based sequence number within the run.
    pub seq: u32,
    pub bytes: Vec<u8>,
    pub users: u32,
    /// Input index of the first and last record in the chunk.
    pub first_index: u64,
    pub last_index: u64,
    /// Where each record ends in `bytes` (the `,` or `]` after it), in order: a record starts
    /// one byte after the end before it, the first one after the `[`.
    pub ends: Vec<u32>,
}

/// Where a record was placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub seq: u32,
    /// 0-based position of the record inside its chunk's array.
    pub position: u32,
}

pub struct ChunkPacker {
    limit: usize,
    buf: Vec<u8>,
    users: u32,
    first_index: u64,
    last_index: u64,
    next_seq: u32,
    ends: Vec<u32>,
}

/// Bytes a chunk of one record takes: `[` + record + `]`.
pub const ARRAY_OVERHEAD: usize = 2;

/// Whether a record of `len` bytes fits a chunk of at most `limit` bytes on its own; pipeline
/// workers ask this before the packer, on another thread, sees the record.
pub fn fits_alone(limit: usize, len: usize) -> bool {
    len + ARRAY_OVERHEAD <= limit
}

impl ChunkPacker {
    pub fn new(limit: usize) -> Self {
        Self::starting_at(limit, 1)
    }

    /// A packer whose first chunk is number `seq` (packing again from the middle of a run).
    pub fn starting_at(limit: usize, seq: u32) -> Self {
        ChunkPacker {
            limit,
            buf: Vec::with_capacity(limit),
            users: 0,
            first_index: 0,
            last_index: 0,
            next_seq: seq,
            ends: Vec::new(),
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Whether a record of `len` bytes can go in any chunk at all.
    pub fn fits_alone(&self, len: usize) -> bool {
        fits_alone(self.limit, len)
    }

    /// Adds a record (caller checked `fits_alone`). Returns the chunk it closed, if adding it
    /// needed a new one, and where the record went.
    pub fn push(&mut self, index: u64, record: &[u8]) -> (Option<Chunk>, Placement) {
        debug_assert!(self.fits_alone(record.len()));
        let closed = if self.users > 0 && self.buf.len() + 1 + record.len() + 1 > self.limit {
            self.take()
        } else {
            None
        };
        if self.users == 0 {
            self.buf.push(b'[');
            self.first_index = index;
        } else {
            self.buf.push(b',');
        }
        self.buf.extend_from_slice(record);
        // A chunk holds at most `limit` bytes, ≤ 512,000 (the request cap).
        self.ends
            .push(u32::try_from(self.buf.len()).unwrap_or(u32::MAX));
        self.last_index = index;
        let placement = Placement {
            seq: self.next_seq,
            position: self.users,
        };
        self.users += 1;
        (closed, placement)
    }

    /// Closes the open chunk, if any.
    pub fn finish(&mut self) -> Option<Chunk> {
        self.take()
    }

    fn take(&mut self) -> Option<Chunk> {
        if self.users == 0 {
            return None;
        }
        let mut bytes = std::mem::replace(&mut self.buf, Vec::with_capacity(self.limit));
        bytes.push(b']');
        let chunk = Chunk {
            seq: self.next_seq,
            bytes,
            users: self.users,
            first_index: self.first_index,
            last_index: self.last_index,
            ends: std::mem::take(&mut self.ends),
        };
        self.next_seq += 1;
        self.users = 0;
        Some(chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pack(limit: usize, records: &[Vec<u8>]) -> Vec<Chunk> {
        let mut packer = ChunkPacker::new(limit);
        let mut out = Vec::new();
        for (i, r) in records.iter().enumerate() {
            if !packer.fits_alone(r.len()) {
                continue;
            }
            let (closed, _) = packer.push(i as u64, r);
            out.extend(closed);
        }
        out.extend(packer.finish());
        out
    }

    fn record(n: usize, tag: usize) -> Vec<u8> {
        let body = "é".repeat(n / 2);
        format!("{{\"email\":\"u{tag}@x.io\",\"n\":\"{body}\"}}").into_bytes()
    }

    proptest! {
        #[test]
        fn chunks_respect_limit_keep_order_and_lose_nothing(
            sizes in proptest::collection::vec(0usize..400, 0..200),
            limit in 60usize..2000,
        ) {
            let records: Vec<Vec<u8>> = sizes.iter().enumerate().map(|(i, &n)| record(n, i)).collect();
            let chunks = pack(limit, &records);
            let fitting: Vec<&Vec<u8>> = records.iter().filter(|r| r.len() + ARRAY_OVERHEAD <= limit).collect();
            // The ends cut each chunk back into exactly the records packed, in order.
            let mut cut = Vec::new();
            for c in &chunks {
                prop_assert_eq!(c.ends.len(), c.users as usize);
                let mut start = 1;
                for &end in &c.ends {
                    cut.push(&c.bytes[start..end as usize]);
                    start = end as usize + 1;
                }
                prop_assert_eq!(start, c.bytes.len());
            }
            prop_assert_eq!(cut, fitting.iter().map(|r| r.as_slice()).collect::<Vec<_>>());
            let mut seen = Vec::new();
            for (k, c) in chunks.iter().enumerate() {
                prop_assert!(c.bytes.len() <= limit);
                prop_assert_eq!(c.seq as usize, k + 1);
                let parsed: Vec<serde_json::Value> = serde_json::from_slice(&c.bytes).unwrap();
                prop_assert_eq!(parsed.len(), c.users as usize);
                seen.extend(parsed);
            }
            let expected: Vec<serde_json::Value> = fitting.iter().map(|r| serde_json::from_slice(r).unwrap()).collect();
            prop_assert_eq!(seen, expected);
            // Greedy: no chunk could have taken the next chunk's first record.
            for pair in chunks.windows(2) {
                let next_first: Vec<serde_json::Value> = serde_json::from_slice(&pair[1].bytes).unwrap();
                let first_len = serde_json::to_vec(&next_first[0]).unwrap().len();
                prop_assert!(pair[0].bytes.len() + 1 + first_len > limit);
            }
        }
    }

    #[test]
    fn placement_names_chunk_and_position() {
        let mut packer = ChunkPacker::new(30);
        let (_, a) = packer.push(0, b"{\"a\":\"0123456789\"}");
        let (closed, b) = packer.push(1, b"{\"b\":\"0123456789\"}");
        assert_eq!((a.seq, a.position), (1, 0));
        assert_eq!((b.seq, b.position), (2, 0));
        assert_eq!(closed.unwrap().users, 1);
    }
}
