//! Which bytes of a block sit inside JSON strings, carried from one block to the next: the one
//! piece of state framing and compaction keep while they look at 64 bytes at a time.

use crate::lanes::{valid_bits, Lanes, BLOCK};

/// Whether a scan is inside a string, carried from one block to the next.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Strings {
    in_string: bool,
    /// The previous byte was a backslash inside a string: the next byte is escaped.
    escaped: bool,
}

impl Strings {
    /// Whether the bytes so far end inside a string.
    pub fn open(&self) -> bool {
        self.in_string
    }

    /// The block's bytes that are inside a string, its opening quote included and its closing
    /// quote not; advances the state past the block's input bytes.
    #[inline(always)]
    pub fn inside(&mut self, block: &impl Lanes) -> u64 {
        self.inside_of(block.len(), block.eq(b'"'), block.eq(b'\\'), || {
            block.bytes()
        })
    }

    /// `inside` for a block of `len` input bytes (at most 64), given the masks of its quotes and
    /// backslashes; `bytes` gives the block (only asked for when it holds an escape).
    #[inline(always)]
    pub fn inside_of(
        &mut self,
        len: usize,
        quotes: u64,
        backslashes: u64,
        bytes: impl FnOnce() -> [u8; BLOCK],
    ) -> u64 {
        let valid = valid_bits(len);
        if backslashes == 0 && !self.escaped {
            // Without escapes every quote toggles: a prefix XOR of the quotes marks each
            // string from its opening quote up to (not including) its closing one.
            let carried = if self.in_string { !0 } else { 0 };
            let inside = prefix_xor(quotes & valid) ^ carried;
            // No quote lies past the input, so the last bit is the state after its last byte.
            self.in_string = inside >> 63 != 0;
            return inside & valid;
        }
        // Escapes are rare: such a block is walked byte by byte.
        let bytes = bytes();
        let mut inside = 0u64;
        for (i, &b) in bytes[..len.min(BLOCK)].iter().enumerate() {
            let bit = 1u64 << i;
            if !self.in_string {
                if b == b'"' {
                    self.in_string = true;
                    inside |= bit;
                }
            } else if self.escaped {
                self.escaped = false;
                inside |= bit;
            } else if b == b'\\' {
                self.escaped = true;
                inside |= bit;
            } else if b == b'"' {
                self.in_string = false;
            } else {
                inside |= bit;
            }
        }
        inside
    }
}

/// Bit `i` = XOR of bits `0..=i`.
#[inline(always)]
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::{BlockKernel, Scanner};

    /// The inside-string mask byte by byte, the obvious way, over a whole input.
    fn inside_reference(input: &[u8]) -> Vec<bool> {
        let (mut in_string, mut escaped) = (false, false);
        input
            .iter()
            .map(|&b| {
                if !in_string {
                    in_string = b == b'"';
                    in_string
                } else if escaped {
                    escaped = false;
                    true
                } else if b == b'\\' {
                    escaped = true;
                    true
                } else if b == b'"' {
                    in_string = false;
                    false
                } else {
                    true
                }
            })
            .collect()
    }

    /// The inside masks of `input` cut into blocks of the given sizes, as flags per byte.
    struct InsideInBlocks<'a> {
        input: &'a [u8],
        cuts: &'a [usize],
    }

    impl BlockKernel for InsideInBlocks<'_> {
        type Output = Vec<bool>;

        #[inline(always)]
        fn run<B: Lanes>(self, cpu: B::Cpu) -> Vec<bool> {
            let mut strings = Strings::default();
            let mut got = Vec::new();
            let (mut at, mut k) = (0, 0);
            while at < self.input.len() {
                let len = self.cuts[k % self.cuts.len()].min(self.input.len() - at);
                k += 1;
                let block = B::load(cpu, &self.input[at..at + len]);
                let inside = strings.inside(&block);
                got.extend((0..len).map(|i| inside >> i & 1 == 1));
                at += len;
            }
            got
        }
    }

    proptest! {
        /// Across blocks of any size (as buffers end anywhere), the masks say what a byte-by-byte
        /// walk says, escapes and escaped backslashes included, with every kind of block.
        #[test]
        fn inside_matches_a_byte_by_byte_walk(
            input in proptest::collection::vec(
                prop_oneof![Just(b'"'), Just(b'\\'), Just(b'a'), Just(b' '), Just(b'{'), Just(0xc3u8)],
                0..300,
            ),
            cuts in proptest::collection::vec(1usize..=BLOCK, 1..12),
        ) {
            let expected = inside_reference(&input);
            for scanner in [Scanner::portable(), Scanner::detect()] {
                let got = scanner.run(InsideInBlocks { input: &input, cuts: &cuts });
                prop_assert_eq!(&got, &expected);
            }
        }
    }
}
