//! AVX-512 blocks: a whole block in one 512-bit register, each mask one compare, and the kept
//! bytes of a block gathered with one compress. Reached only through an `Avx512` proof.

use std::arch::x86_64::__m512i;

use crate::lanes::{sealed, valid_bits, Lanes, BLOCK, FILLER};

/// Proof that this CPU has AVX-512 (F, BW, VBMI2) and BMI2: only `detect` makes one, and every
/// `unsafe` call into `avx512` below rests on it.
#[derive(Debug, Clone, Copy)]
pub struct Avx512 {
    _proof: (),
}

impl Avx512 {
    /// The proof, when the running CPU has every feature (the answer is cached by std).
    #[inline]
    pub fn detect() -> Option<Avx512> {
        let has = std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vbmi2")
            && std::arch::is_x86_feature_detected!("bmi2");
        has.then_some(Avx512 { _proof: () })
    }
}

/// A block in one 512-bit register; bytes past `len` are zero and masked off. Made only by
/// `Lanes::load` with an `Avx512`, so holding one proves the CPU has the features.
pub struct WideBlock {
    v: __m512i,
    len: usize,
}

impl sealed::Sealed for WideBlock {}

// Each `unsafe` block in this impl calls a function of `avx512`, which needs AVX-512 F, BW,
// VBMI2 and BMI2 and nothing else.
impl Lanes for WideBlock {
    type Cpu = Avx512;

    #[inline(always)]
    fn load(_: Avx512, piece: &[u8]) -> Self {
        // SAFETY: the `Avx512` passed in proves the CPU has the features.
        unsafe { avx512::load(piece) }
    }

    #[inline(always)]
    fn len(&self) -> usize {
        self.len
    }

    #[inline(always)]
    fn eq(&self, byte: u8) -> u64 {
        // SAFETY: only `load`, given an `Avx512`, makes a `WideBlock`: the CPU has them.
        unsafe { avx512::eq(self.v, byte) & self.valid() }
    }

    #[inline(always)]
    fn eq_either_case(&self, byte: u8) -> u64 {
        // SAFETY: only `load`, given an `Avx512`, makes a `WideBlock`: the CPU has them.
        unsafe { avx512::eq_with_bit(self.v, byte, 0x20) & self.valid() }
    }

    #[inline(always)]
    fn at_most(&self, byte: u8) -> u64 {
        // SAFETY: only `load`, given an `Avx512`, makes a `WideBlock`: the CPU has them.
        unsafe { avx512::at_most(self.v, byte) & self.valid() }
    }

    #[inline(always)]
    fn non_ascii(&self) -> u64 {
        // SAFETY: only `load`, given an `Avx512`, makes a `WideBlock`: the CPU has them.
        unsafe { avx512::high_bit(self.v) & self.valid() }
    }

    #[inline(always)]
    fn bytes(&self) -> [u8; BLOCK] {
        // SAFETY: only `load`, given an `Avx512`, makes a `WideBlock`: the CPU has them.
        let mut bytes = unsafe { avx512::store(self.v) };
        bytes[self.len..].fill(FILLER);
        bytes
    }

    #[inline(always)]
    fn gather(&self, keep: u64, marks: [u64; 2], out: &mut Vec<u8>) -> (usize, [u64; 2]) {
        let keep = keep & self.valid();
        // SAFETY: only `load`, given an `Avx512`, makes a `WideBlock`: the CPU has them.
        unsafe { avx512::gather(self.v, keep, marks, out) }
    }
}

/// The operations, compiled for the features (so the intrinsics inline), safe to call on a CPU
/// that has them.
mod avx512 {
    use std::arch::x86_64::{
        __m512i, _mm512_cmpeq_epi8_mask, _mm512_cmple_epu8_mask, _mm512_maskz_compress_epi8,
        _mm512_maskz_loadu_epi8, _mm512_movepi8_mask, _mm512_or_si512, _mm512_set1_epi8,
        _mm512_storeu_si512, _pext_u64,
    };

    use super::{valid_bits, WideBlock, BLOCK};

    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi2,bmi2")]
    #[inline]
    pub(super) fn load(piece: &[u8]) -> WideBlock {
        let len = piece.len().min(BLOCK);
        let valid = valid_bits(len);
        // SAFETY: the masked load reads the bytes under `valid`, the first `len` of `piece`, all
        // in bounds; the masked-off ones are neither read nor able to fault, and are zero.
        let v = unsafe { _mm512_maskz_loadu_epi8(valid, piece.as_ptr().cast()) };
        WideBlock { v, len }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi2,bmi2")]
    #[inline]
    pub(super) fn eq(v: __m512i, byte: u8) -> u64 {
        _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(byte as i8))
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi2,bmi2")]
    #[inline]
    pub(super) fn eq_with_bit(v: __m512i, byte: u8, bit: u8) -> u64 {
        let set = _mm512_or_si512(v, _mm512_set1_epi8(bit as i8));
        _mm512_cmpeq_epi8_mask(set, _mm512_set1_epi8(byte as i8))
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi2,bmi2")]
    #[inline]
    pub(super) fn at_most(v: __m512i, byte: u8) -> u64 {
        _mm512_cmple_epu8_mask(v, _mm512_set1_epi8(byte as i8))
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi2,bmi2")]
    #[inline]
    pub(super) fn high_bit(v: __m512i) -> u64 {
        _mm512_movepi8_mask(v)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi2,bmi2")]
    #[inline]
    pub(super) fn store(v: __m512i) -> [u8; BLOCK] {
        let mut bytes = [0u8; BLOCK];
        // SAFETY: the unaligned store writes 64 bytes, exactly `bytes`.
        unsafe { _mm512_storeu_si512(bytes.as_mut_ptr().cast(), v) };
        bytes
    }

    /// `Lanes::gather` for a block in `v` (`keep` holds input bytes only).
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi2,bmi2")]
    #[inline]
    pub(super) fn gather(
        v: __m512i,
        keep: u64,
        marks: [u64; 2],
        out: &mut Vec<u8>,
    ) -> (usize, [u64; 2]) {
        let kept = keep.count_ones() as usize;
        let packed = _mm512_maskz_compress_epi8(keep, v);
        // The whole 64-byte vector is stored past the end; only `kept` bytes of it are kept.
        out.reserve(BLOCK);
        let spare = out.spare_capacity_mut();
        debug_assert!(spare.len() >= BLOCK);
        // SAFETY: `reserve` left at least 64 bytes of spare capacity, where the unaligned store
        // writes 64 bytes.
        unsafe { _mm512_storeu_si512(spare.as_mut_ptr().cast(), packed) };
        // SAFETY: `kept` ≤ 64 bytes past the old length were written by the store just above,
        // so they are initialised, and within the capacity.
        unsafe { out.set_len(out.len() + kept) };
        (kept, marks.map(|mark| _pext_u64(mark, keep)))
    }
}
