//! A block of up to 64 input bytes and its masks (bit `i` = byte `i`): the `Lanes` trait scanning
//! code is written against, and `Block`, the kind every CPU has (SSE2 on x86_64, a loop elsewhere).

/// Bytes per block.
pub const BLOCK: usize = 64;

/// Filler for the unused end of a short block: not a quote, backslash, whitespace, structural
/// character or non-ASCII byte, so it changes no mask.
pub(crate) const FILLER: u8 = b'0';

pub(crate) mod sealed {
    /// Only this crate's kinds of block are `Lanes`: the differential tests cover exactly them.
    pub trait Sealed {}
}

/// A block of up to 64 input bytes and its masks, however the CPU computes them: [`Block`] on
/// any CPU, [`crate::WideBlock`] with AVX-512 (each mask one compare). Code generic over it is
/// written once and compiled for each (see [`crate::BlockKernel`]).
pub trait Lanes: Sized + sealed::Sealed {
    /// What it takes to load one: proof the CPU can.
    type Cpu: Copy;
    /// The first 64 bytes of `piece`, or all of it (the rest masked off).
    fn load(cpu: Self::Cpu, piece: &[u8]) -> Self;
    /// How many bytes are input.
    fn len(&self) -> usize;
    /// Whether no byte is input.
    #[inline(always)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Bits of the bytes that are input.
    #[inline(always)]
    fn valid(&self) -> u64 {
        valid_bits(self.len())
    }
    /// Input bytes equal to `byte`.
    fn eq(&self, byte: u8) -> u64;
    /// Input bytes equal to `byte` once bit 0x20 is set in both: `{` finds `{` and `[`, `}` finds
    /// `}` and `]` (`byte` must have the bit, and only those pairs differ by it alone).
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

/// The low `len` bits (all 64 for a full block).
#[inline(always)]
pub(crate) fn valid_bits(len: usize) -> u64 {
    if len >= BLOCK {
        !0
    } else {
        (1u64 << len) - 1
    }
}

/// One block of input, padded with `FILLER` when the input ends before 64 bytes.
pub struct Block {
    bytes: [u8; BLOCK],
    /// How many of `bytes` are input.
    len: usize,
}

impl Block {
    /// The first 64 bytes of `piece`, or all of it padded.
    #[inline]
    pub fn new(piece: &[u8]) -> Block {
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
}

impl sealed::Sealed for Block {}

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

    // The filler changes no mask, so only `eq` and `at_most` of a byte the filler matches
    // would need the `valid` bits; they are applied everywhere all the same (one AND).
    #[inline(always)]
    fn eq(&self, byte: u8) -> u64 {
        masks::eq(&self.bytes, byte) & self.valid()
    }

    #[inline(always)]
    fn eq_either_case(&self, byte: u8) -> u64 {
        debug_assert!(byte & 0x20 != 0);
        masks::eq_with_bit(&self.bytes, byte, 0x20) & self.valid()
    }

    #[inline(always)]
    fn at_most(&self, byte: u8) -> u64 {
        masks::at_most(&self.bytes, byte) & self.valid()
    }

    #[inline(always)]
    fn non_ascii(&self) -> u64 {
        masks::high_bit(&self.bytes) & self.valid()
    }

    #[inline(always)]
    fn bytes(&self) -> [u8; BLOCK] {
        self.bytes
    }

    #[inline(always)]
    fn gather(&self, keep: u64, marks: [u64; 2], out: &mut Vec<u8>) -> (usize, [u64; 2]) {
        let keep = keep & self.valid();
        if keep == self.valid() {
            out.extend_from_slice(&self.bytes[..self.len]);
            return (self.len, marks.map(|mark| mark & keep));
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
            let run = valid_bits(width);
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

/// The masks of a whole 64-byte array, 16 bytes at a time with SSE2.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod masks {
    use super::BLOCK;

    // SAFETY (each call below): the module is compiled only where the build enables SSE2, so
    // the CPU running it has SSE2; the functions need nothing else.

    #[inline]
    pub(super) fn eq(bytes: &[u8; BLOCK], byte: u8) -> u64 {
        // SAFETY: see the module's note.
        unsafe { sse2::eq(bytes, byte) }
    }

    #[inline]
    pub(super) fn eq_with_bit(bytes: &[u8; BLOCK], byte: u8, bit: u8) -> u64 {
        // SAFETY: see the module's note.
        unsafe { sse2::eq_with_bit(bytes, byte, bit) }
    }

    #[inline]
    pub(super) fn at_most(bytes: &[u8; BLOCK], byte: u8) -> u64 {
        // SAFETY: see the module's note.
        unsafe { sse2::at_most(bytes, byte) }
    }

    #[inline]
    pub(super) fn high_bit(bytes: &[u8; BLOCK]) -> u64 {
        // SAFETY: see the module's note.
        unsafe { sse2::high_bit(bytes) }
    }

    mod sse2 {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8,
            _mm_or_si128, _mm_set1_epi8,
        };

        use super::BLOCK;

        /// The block as four 16-byte lanes.
        #[target_feature(enable = "sse2")]
        #[inline]
        fn lanes(bytes: &[u8; BLOCK]) -> [__m128i; 4] {
            let (lanes, _) = bytes.as_chunks::<16>();
            std::array::from_fn(|k| {
                // SAFETY: `lanes[k]` is 16 readable bytes, all that `loadu` reads (at any
                // alignment).
                unsafe { _mm_loadu_si128(lanes[k].as_ptr().cast()) }
            })
        }

        /// The high bit of every byte of the four lanes, as one word.
        #[target_feature(enable = "sse2")]
        #[inline]
        fn movemask(lanes: [__m128i; 4]) -> u64 {
            let [a, b, c, d] = lanes.map(|lane| u64::from(_mm_movemask_epi8(lane) as u16));
            a | b << 16 | c << 32 | d << 48
        }

        #[target_feature(enable = "sse2")]
        #[inline]
        pub(super) fn eq(bytes: &[u8; BLOCK], byte: u8) -> u64 {
            let needle = _mm_set1_epi8(byte as i8);
            movemask(lanes(bytes).map(|lane| _mm_cmpeq_epi8(lane, needle)))
        }

        #[target_feature(enable = "sse2")]
        #[inline]
        pub(super) fn eq_with_bit(bytes: &[u8; BLOCK], byte: u8, bit: u8) -> u64 {
            let needle = _mm_set1_epi8(byte as i8);
            let set = _mm_set1_epi8(bit as i8);
            movemask(lanes(bytes).map(|lane| _mm_cmpeq_epi8(_mm_or_si128(lane, set), needle)))
        }

        #[target_feature(enable = "sse2")]
        #[inline]
        pub(super) fn at_most(bytes: &[u8; BLOCK], byte: u8) -> u64 {
            // b <= byte (unsigned) exactly when max(b, byte) == byte.
            let limit = _mm_set1_epi8(byte as i8);
            movemask(lanes(bytes).map(|lane| _mm_cmpeq_epi8(_mm_max_epu8(lane, limit), limit)))
        }

        #[target_feature(enable = "sse2")]
        #[inline]
        pub(super) fn high_bit(bytes: &[u8; BLOCK]) -> u64 {
            movemask(lanes(bytes))
        }
    }
}

/// The same masks byte by byte, for targets without SSE2.
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
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
    use super::*;

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
        // The filler is '0': a short block does not find it past its input.
        assert_eq!(Block::new(b"0").eq(b'0'), 1);
    }
}
