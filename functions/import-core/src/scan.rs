//! JSON's coarse structure a block of 64 bytes at a time: which bytes sit inside strings, and
//! where given characters are, as bit masks (bit `i` = byte `i` of the block). Framing and
//! compaction only need that coarse structure, and finding it for 64 bytes at once is several
//! times cheaper than looking at one byte at a time. Bytes are compared 16 at a time with SSE2
//! (part of every x86_64 CPU); other targets get the same masks from a plain loop.

/// Bytes per block.
pub(crate) const BLOCK: usize = 64;

/// Filler for the unused end of a short block: not a quote, backslash, whitespace, structural
/// character or non-ASCII byte, so it changes no mask.
const FILLER: u8 = b'0';

/// One block of input, padded with `FILLER` when the input ends before 64 bytes.
pub(crate) struct Block {
    bytes: [u8; BLOCK],
    /// How many of `bytes` are input.
    len: usize,
}

impl Block {
    /// The first 64 bytes of `piece`, or all of it padded.
    #[inline]
    pub(crate) fn new(piece: &[u8]) -> Block {
        // A fixed-size copy is a few register moves; only a short block pays for a memcpy.
        if let Some(full) = piece.first_chunk::<BLOCK>() {
            return Block {
                bytes: *full,
                len: BLOCK,
            };
        }
        let mut bytes = [FILLER; BLOCK];
        bytes[..piece.len()].copy_from_slice(piece);
        Block {
            bytes,
            len: piece.len(),
        }
    }

    /// Bits of the bytes that are input (all 64 for a full block).
    #[inline]
    pub(crate) fn valid(&self) -> u64 {
        if self.len == BLOCK {
            !0
        } else {
            (1u64 << self.len) - 1
        }
    }

    /// Bytes equal to `byte`.
    #[inline]
    pub(crate) fn eq(&self, byte: u8) -> u64 {
        masks::eq(&self.bytes, byte)
    }

    /// Bytes equal to `byte` once bit 0x20 is set in both: `{` finds `{` and `[`, `}` finds `}`
    /// and `]` (`byte` must have the bit, and only those pairs differ by it alone).
    #[inline]
    pub(crate) fn eq_either_case(&self, byte: u8) -> u64 {
        debug_assert!(byte & 0x20 != 0);
        masks::eq_with_bit(&self.bytes, byte, 0x20)
    }

    /// Bytes at or below `byte` (unsigned).
    #[inline]
    pub(crate) fn at_most(&self, byte: u8) -> u64 {
        masks::at_most(&self.bytes, byte)
    }

    /// Bytes with the high bit set (non-ASCII).
    #[inline]
    pub(crate) fn non_ascii(&self) -> u64 {
        masks::high_bit(&self.bytes)
    }
}

/// A block of up to 64 input bytes and its masks, however the CPU computes them: `Block` on any
/// CPU, `WideBlock` with AVX-512 (each mask one compare). Code generic over it is written once
/// and compiled for each; see `Avx512` for how the wide kind is reached.
pub(crate) trait Lanes: Sized {
    /// What it takes to load one: proof the CPU can.
    type Cpu: Copy;
    /// The first 64 bytes of `piece`, or all of it (the rest masked off).
    fn load(cpu: Self::Cpu, piece: &[u8]) -> Self;
    /// How many bytes are input.
    fn len(&self) -> usize;
    /// Bits of the bytes that are input.
    #[inline(always)]
    fn valid(&self) -> u64 {
        if self.len() == BLOCK {
            !0
        } else {
            (1u64 << self.len()) - 1
        }
    }
    /// Input bytes equal to `byte`.
    fn eq(&self, byte: u8) -> u64;
    /// Input bytes equal to `byte` once bit 0x20 is set in both (see `Block::eq_either_case`).
    fn eq_either_case(&self, byte: u8) -> u64;
    /// Input bytes at or below `byte` (unsigned).
    fn at_most(&self, byte: u8) -> u64;
    /// Input bytes with the high bit set.
    fn non_ascii(&self) -> u64;
    /// The input bytes, padded with filler (asked for only in rare cases: escapes).
    fn bytes(&self) -> [u8; BLOCK];
    /// Appends the bytes under `keep` (input bytes only) to `out`, in order, and returns how
    /// many they were with each of `marks` gathered the same way: its bits at the kept bytes,
    /// packed from bit 0.
    fn gather(&self, keep: u64, marks: [u64; 2], out: &mut Vec<u8>) -> (usize, [u64; 2]);
}

impl Lanes for Block {
    type Cpu = ();

    #[inline(always)]
    fn load((): (), piece: &[u8]) -> Self {
        Block::new(piece)
    }

    #[inline(always)]
    fn len(&self) -> usize {
        self.len
    }

    #[inline(always)]
    fn eq(&self, byte: u8) -> u64 {
        Block::eq(self, byte) & Block::valid(self)
    }

    #[inline(always)]
    fn eq_either_case(&self, byte: u8) -> u64 {
        Block::eq_either_case(self, byte) & Block::valid(self)
    }

    #[inline(always)]
    fn at_most(&self, byte: u8) -> u64 {
        Block::at_most(self, byte) & Block::valid(self)
    }

    #[inline(always)]
    fn non_ascii(&self) -> u64 {
        Block::non_ascii(self) & Block::valid(self)
    }

    #[inline(always)]
    fn bytes(&self) -> [u8; BLOCK] {
        self.bytes
    }

    #[inline(always)]
    fn gather(&self, keep: u64, marks: [u64; 2], out: &mut Vec<u8>) -> (usize, [u64; 2]) {
        let keep = keep & Block::valid(self);
        if keep == Block::valid(self) {
            out.extend_from_slice(&self.bytes[..self.len]);
            return (self.len, marks);
        }
        // The kept runs are short: each is copied 16 bytes at a time into a staging buffer
        // (spilling past its end, where the next run lands), and the block goes to `out` in one
        // copy, rather than a memcpy call per run.
        let mut source = [0u8; BLOCK + 16];
        source[..BLOCK].copy_from_slice(&self.bytes);
        let mut staged = [0u8; BLOCK + 16];
        let mut len = 0;
        let mut gathered = [0u64; 2];
        let mut rest = keep;
        while rest != 0 {
            let from = rest.trailing_zeros() as usize;
            // The run of kept bytes from `from`.
            let width = (!(rest >> from)).trailing_zeros() as usize;
            let run = if width == 64 { !0 } else { (1u64 << width) - 1 };
            for (packed, mark) in gathered.iter_mut().zip(marks) {
                *packed |= ((mark >> from) & run) << len;
            }
            let mut k = 0;
            while k < width {
                staged[len + k..len + k + 16].copy_from_slice(&source[from + k..from + k + 16]);
                k += 16;
            }
            len += width;
            rest &= !(run << from);
        }
        out.extend_from_slice(&staged[..len]);
        (len, gathered)
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use wide::{Avx512, WideBlock};

#[cfg(target_arch = "x86_64")]
mod wide {
    use std::arch::x86_64::{
        __m512i, _mm512_cmpeq_epi8_mask, _mm512_cmple_epu8_mask, _mm512_maskz_compress_epi8,
        _mm512_movepi8_mask, _mm512_or_si512, _mm512_set1_epi8, _mm512_storeu_si512, _pext_u64,
    };

    use super::{Lanes, BLOCK, FILLER};

    /// Proof that this CPU has AVX-512 (F, BW, VBMI2) and BMI2: only `detect` makes one. Code
    /// generic over `Lanes` reaches `WideBlock` through it, in a function compiled for these
    /// features (`#[target_feature]`) so that the masks are inlined there.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Avx512 {
        _proof: (),
    }

    impl Avx512 {
        pub(crate) fn detect() -> Option<Avx512> {
            let has = std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vbmi2")
                && std::arch::is_x86_feature_detected!("bmi2");
            has.then_some(Avx512 { _proof: () })
        }
    }

    /// A block in one 512-bit register; bytes past `len` are zero and masked off.
    pub(crate) struct WideBlock {
        v: __m512i,
        len: usize,
    }

    impl Lanes for WideBlock {
        type Cpu = Avx512;

        #[inline(always)]
        fn load(_: Avx512, piece: &[u8]) -> Self {
            let len = piece.len().min(BLOCK);
            let valid = if len == BLOCK { !0 } else { (1u64 << len) - 1 };
            // SAFETY: an `Avx512` exists only on a CPU with AVX-512 BW; the masked load reads
            // the `len` bytes of `piece` and no other.
            let v =
                unsafe { std::arch::x86_64::_mm512_maskz_loadu_epi8(valid, piece.as_ptr().cast()) };
            WideBlock { v, len }
        }

        #[inline(always)]
        fn len(&self) -> usize {
            self.len
        }

        #[inline(always)]
        fn eq(&self, byte: u8) -> u64 {
            // SAFETY (here and below): a `WideBlock` is only loaded with an `Avx512`.
            unsafe { _mm512_cmpeq_epi8_mask(self.v, _mm512_set1_epi8(byte as i8)) & self.valid() }
        }

        #[inline(always)]
        fn eq_either_case(&self, byte: u8) -> u64 {
            unsafe {
                let lowered = _mm512_or_si512(self.v, _mm512_set1_epi8(0x20));
                _mm512_cmpeq_epi8_mask(lowered, _mm512_set1_epi8(byte as i8)) & self.valid()
            }
        }

        #[inline(always)]
        fn at_most(&self, byte: u8) -> u64 {
            unsafe { _mm512_cmple_epu8_mask(self.v, _mm512_set1_epi8(byte as i8)) & self.valid() }
        }

        #[inline(always)]
        fn non_ascii(&self) -> u64 {
            unsafe { _mm512_movepi8_mask(self.v) & self.valid() }
        }

        #[inline(always)]
        fn bytes(&self) -> [u8; BLOCK] {
            let mut bytes = [0u8; BLOCK];
            // SAFETY: `bytes` has room for the 64 bytes stored.
            unsafe { _mm512_storeu_si512(bytes.as_mut_ptr().cast(), self.v) };
            bytes[self.len..].fill(FILLER);
            bytes
        }

        #[inline(always)]
        fn gather(&self, keep: u64, marks: [u64; 2], out: &mut Vec<u8>) -> (usize, [u64; 2]) {
            let keep = keep & self.valid();
            let kept = keep.count_ones() as usize;
            // The whole 64-byte vector is stored; only `kept` bytes of it are kept.
            out.reserve(BLOCK);
            let len = out.len();
            // SAFETY: `reserve` left room for 64 bytes after `len`; the `kept` bytes after it
            // are written by the store, so they are initialised when `set_len` keeps them.
            // `Avx512` proves VBMI2 and BMI2 as well as BW.
            unsafe {
                let packed = _mm512_maskz_compress_epi8(keep, self.v);
                _mm512_storeu_si512(out.as_mut_ptr().add(len).cast(), packed);
                out.set_len(len + kept);
                (kept, marks.map(|mark| _pext_u64(mark, keep)))
            }
        }
    }
}

/// Whether a scan is inside a string, carried from one block to the next.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Strings {
    in_string: bool,
    /// The previous byte was a backslash inside a string: the next byte is escaped.
    escaped: bool,
}

impl Strings {
    /// Whether the bytes so far end inside a string.
    pub(crate) fn open(&self) -> bool {
        self.in_string
    }

    /// The block's bytes that are inside a string, its opening quote included and its closing
    /// quote not; advances the state past the block's input bytes.
    #[inline(always)]
    pub(crate) fn inside(&mut self, block: &impl Lanes) -> u64 {
        self.inside_of(block.len(), block.eq(b'"'), block.eq(b'\\'), || {
            block.bytes()
        })
    }

    /// `inside` for a block of `len` input bytes, given the masks of its quotes and backslashes;
    /// `bytes` gives the block (only asked for when it holds an escape).
    #[inline(always)]
    pub(crate) fn inside_of(
        &mut self,
        len: usize,
        quotes: u64,
        backslashes: u64,
        bytes: impl FnOnce() -> [u8; BLOCK],
    ) -> u64 {
        let valid = if len == BLOCK { !0 } else { (1u64 << len) - 1 };
        if backslashes == 0 && !self.escaped {
            // Without escapes every quote toggles: a prefix XOR of the quotes marks each
            // string from its opening quote up to (not including) its closing one.
            let carried = if self.in_string { !0 } else { 0 };
            let inside = prefix_xor(quotes) ^ carried;
            // The filler holds no quote, so the last bit is the state after the last input byte.
            self.in_string = inside >> 63 != 0;
            return inside & valid;
        }
        // Escapes are rare: such a block is walked byte by byte.
        let bytes = bytes();
        let mut inside = 0u64;
        for (i, &b) in bytes[..len].iter().enumerate() {
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

#[cfg(target_arch = "x86_64")]
mod masks {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };

    use super::BLOCK;

    /// The block as four 16-byte lanes.
    #[inline]
    fn lanes(bytes: &[u8; BLOCK]) -> [__m128i; 4] {
        let at = |k: usize| bytes[k * 16..k * 16 + 16].as_ptr().cast::<__m128i>();
        // SAFETY: each pointer addresses 16 in-bounds bytes of `bytes` (unaligned loads are
        // allowed by loadu); SSE2 is part of the x86_64 baseline.
        unsafe {
            [
                _mm_loadu_si128(at(0)),
                _mm_loadu_si128(at(1)),
                _mm_loadu_si128(at(2)),
                _mm_loadu_si128(at(3)),
            ]
        }
    }

    /// The high bit of every byte of the four lanes, as one word.
    #[inline]
    fn movemask(lanes: [__m128i; 4]) -> u64 {
        // SAFETY: SSE2 is part of the x86_64 baseline.
        let mask = |lane| u64::from(unsafe { _mm_movemask_epi8(lane) } as u16);
        mask(lanes[0]) | mask(lanes[1]) << 16 | mask(lanes[2]) << 32 | mask(lanes[3]) << 48
    }

    #[inline]
    pub(super) fn eq(bytes: &[u8; BLOCK], byte: u8) -> u64 {
        // SAFETY: SSE2 is part of the x86_64 baseline.
        unsafe {
            let needle = _mm_set1_epi8(byte as i8);
            movemask(lanes(bytes).map(|lane| _mm_cmpeq_epi8(lane, needle)))
        }
    }

    #[inline]
    pub(super) fn eq_with_bit(bytes: &[u8; BLOCK], byte: u8, bit: u8) -> u64 {
        // SAFETY: SSE2 is part of the x86_64 baseline.
        unsafe {
            let needle = _mm_set1_epi8(byte as i8);
            let set = _mm_set1_epi8(bit as i8);
            movemask(lanes(bytes).map(|lane| _mm_cmpeq_epi8(_mm_or_si128(lane, set), needle)))
        }
    }

    #[inline]
    pub(super) fn at_most(bytes: &[u8; BLOCK], byte: u8) -> u64 {
        // SAFETY: SSE2 is part of the x86_64 baseline.
        unsafe {
            // b <= byte (unsigned) exactly when max(b, byte) == byte.
            let limit = _mm_set1_epi8(byte as i8);
            movemask(lanes(bytes).map(|lane| _mm_cmpeq_epi8(_mm_max_epu8(lane, limit), limit)))
        }
    }

    #[inline]
    pub(super) fn high_bit(bytes: &[u8; BLOCK]) -> u64 {
        movemask(lanes(bytes))
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod masks {
    use super::BLOCK;

    fn mask(bytes: &[u8; BLOCK], test: impl Fn(u8) -> bool) -> u64 {
        bytes
            .iter()
            .enumerate()
            .fold(0, |mask, (i, &b)| mask | u64::from(test(b)) << i)
    }

    #[inline]
    pub(super) fn eq(bytes: &[u8; BLOCK], byte: u8) -> u64 {
        mask(bytes, |b| b == byte)
    }

    #[inline]
    pub(super) fn eq_with_bit(bytes: &[u8; BLOCK], byte: u8, bit: u8) -> u64 {
        mask(bytes, |b| b | bit == byte)
    }

    #[inline]
    pub(super) fn at_most(bytes: &[u8; BLOCK], byte: u8) -> u64 {
        mask(bytes, |b| b <= byte)
    }

    #[inline]
    pub(super) fn high_bit(bytes: &[u8; BLOCK]) -> u64 {
        mask(bytes, |b| b >= 0x80)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

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

    fn bits(mask: u64, len: usize) -> Vec<bool> {
        (0..len).map(|i| mask >> i & 1 == 1).collect()
    }

    #[test]
    fn masks_mark_the_bytes_asked_for() {
        let block = Block::new(b"{\"a\": [1, \"\xc3\xa9\"]}\n");
        assert_eq!(block.eq(b'"'), 0b10_0100_0000_1010);
        assert_eq!(block.at_most(b' '), 1 << 5 | 1 << 9 | 1 << 16);
        assert_eq!(block.non_ascii(), 0b11 << 11);
        assert_eq!(block.valid(), (1 << 17) - 1);
        let brackets = Block::new(b"{[}]()<>{{]\x5b\x7b\x1b;");
        assert_eq!(
            brackets.eq_either_case(b'{'),
            1 << 0 | 1 << 1 | 1 << 8 | 1 << 9 | 1 << 11 | 1 << 12
        );
        assert_eq!(brackets.eq_either_case(b'}'), 1 << 2 | 1 << 3 | 1 << 10);
        assert_eq!(Block::new(&[b'x'; 70]).valid(), !0);
    }

    proptest! {
        /// Across blocks of any size (as buffers end anywhere), the masks say what a byte-by-byte
        /// walk says, escapes and escaped backslashes included.
        #[test]
        fn inside_matches_a_byte_by_byte_walk(
            input in proptest::collection::vec(
                prop_oneof![Just(b'"'), Just(b'\\'), Just(b'a'), Just(b' '), Just(b'{'), Just(0xc3u8)],
                0..300,
            ),
            cuts in proptest::collection::vec(1usize..=BLOCK, 1..12),
        ) {
            let expected = inside_reference(&input);
            let mut strings = Strings::default();
            let mut got = Vec::new();
            let mut at = 0;
            let mut k = 0;
            while at < input.len() {
                let len = cuts[k % cuts.len()].min(input.len() - at);
                k += 1;
                let block = Block::new(&input[at..at + len]);
                got.extend(bits(strings.inside(&block), len));
                at += len;
            }
            prop_assert_eq!(got, expected);
        }
    }
}
