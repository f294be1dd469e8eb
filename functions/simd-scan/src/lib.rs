//! JSON's coarse structure a block of 64 bytes at a time — which bytes sit inside strings, where
//! given characters are, as bit masks — and a cache prefetch hint, behind a safe API.
//!
//! This is the workspace's only crate with `unsafe` code (every other one forbids it): SIMD
//! intrinsics and a prefetch. Why each block is sound is written beside it, and rests on two
//! facts this crate alone controls:
//! - an [`Avx512`] value exists only once the running CPU was seen to have AVX-512 F, BW, VBMI2
//!   and BMI2 (`Avx512::detect` is the one constructor), and a [`WideBlock`] only through one;
//! - SSE2 code is compiled only where the build enables SSE2 (every x86_64 target does).
//!
//! Callers write their scanning code once, generic over [`Lanes`], as a [`BlockKernel`];
//! [`Scanner::run`] runs it with the widest kind of block this CPU has, compiled for that CPU
//! (mark the kernel's `run` `#[inline(always)]`, so the masks are inlined into it).

mod lanes;
mod prefetch;
mod strings;
#[cfg(target_arch = "x86_64")]
mod wide;

pub use lanes::{Block, Lanes, BLOCK};
pub use prefetch::prefetch;
pub use strings::Strings;
#[cfg(target_arch = "x86_64")]
pub use wide::{Avx512, WideBlock};

/// Scanning code written once for any kind of block (`B: Lanes`), run by [`Scanner::run`].
pub trait BlockKernel {
    type Output;
    /// Runs with blocks of kind `B`, loaded with `cpu`. Implementations should be
    /// `#[inline(always)]`: the scanner compiles this call for the CPU's features, and only
    /// code inlined into it is compiled that way.
    fn run<B: Lanes>(self, cpu: B::Cpu) -> Self::Output;
}

/// Which kind of block a scan uses, chosen once per CPU (`detect`) and handed along.
#[derive(Debug, Clone, Copy)]
pub struct Scanner(Kind);

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// [`Block`]: SSE2 on x86_64, a plain loop elsewhere.
    Portable,
    #[cfg(target_arch = "x86_64")]
    Wide(Avx512),
}

impl Scanner {
    /// The widest kind of block this CPU computes masks with.
    #[inline]
    pub fn detect() -> Scanner {
        #[cfg(target_arch = "x86_64")]
        if let Some(cpu) = Avx512::detect() {
            return Scanner(Kind::Wide(cpu));
        }
        Scanner(Kind::Portable)
    }

    /// The kind every CPU has ([`Block`]): the plain path that differential tests hold the
    /// wide one to.
    pub fn portable() -> Scanner {
        Scanner(Kind::Portable)
    }

    /// Whether this scanner uses AVX-512 ([`WideBlock`]).
    pub fn is_wide(&self) -> bool {
        !matches!(self.0, Kind::Portable)
    }

    /// Runs `kernel` with this scanner's kind of block.
    #[inline]
    pub fn run<K: BlockKernel>(self, kernel: K) -> K::Output {
        match self.0 {
            Kind::Portable => kernel.run::<Block>(()),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `run_wide` needs the features an `Avx512` proves the CPU has.
            Kind::Wide(cpu) => unsafe { run_wide(cpu, kernel) },
        }
    }
}

/// `kernel` compiled for AVX-512, so that `WideBlock`'s masks and gathers inline into it.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi2,bmi2")]
fn run_wide<K: BlockKernel>(cpu: Avx512, kernel: K) -> K::Output {
    kernel.run::<WideBlock>(cpu)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Every mask of a block, as a kernel: what each kind of block says about `bytes`.
    struct AllMasks<'a> {
        bytes: &'a [u8],
        keep: u64,
        marks: [u64; 2],
    }

    #[derive(Debug, PartialEq, Eq)]
    struct Seen {
        masks: Vec<u64>,
        bytes: Vec<u8>,
        gathered: Vec<u8>,
        gather: (usize, [u64; 2]),
    }

    impl BlockKernel for AllMasks<'_> {
        type Output = Seen;

        #[inline(always)]
        fn run<B: Lanes>(self, cpu: B::Cpu) -> Seen {
            let block = B::load(cpu, self.bytes);
            let mut masks = vec![block.valid(), block.non_ascii()];
            for byte in [b'"', b'\\', b'{', b'}', b'\n', 0, 0x7f, 0x80, 0xff] {
                masks.push(block.eq(byte));
                masks.push(block.at_most(byte));
            }
            masks.push(block.eq_either_case(b'{'));
            masks.push(block.eq_either_case(b'}'));
            let mut gathered = b"held".to_vec();
            let gather = block.gather(self.keep, self.marks, &mut gathered);
            Seen {
                masks,
                bytes: block.bytes()[..block.len()].to_vec(),
                gathered,
                gather,
            }
        }
    }

    /// The same masks, byte by byte, the obvious way.
    fn reference(bytes: &[u8], keep: u64, marks: [u64; 2]) -> Seen {
        let bytes = &bytes[..bytes.len().min(BLOCK)];
        let mask = |test: &dyn Fn(u8) -> bool| {
            bytes
                .iter()
                .enumerate()
                .fold(0u64, |m, (i, &b)| m | u64::from(test(b)) << i)
        };
        let mut masks = vec![mask(&|_| true), mask(&|b| b >= 0x80)];
        for byte in [b'"', b'\\', b'{', b'}', b'\n', 0, 0x7f, 0x80, 0xff] {
            masks.push(mask(&|b| b == byte));
            masks.push(mask(&|b| b <= byte));
        }
        masks.push(mask(&|b| b == b'{' || b == b'['));
        masks.push(mask(&|b| b == b'}' || b == b']'));
        let mut gathered = b"held".to_vec();
        let mut packed = [0u64; 2];
        let mut n = 0;
        for (i, &b) in bytes.iter().enumerate() {
            if keep >> i & 1 == 1 {
                gathered.push(b);
                for (p, m) in packed.iter_mut().zip(marks) {
                    *p |= (m >> i & 1) << n;
                }
                n += 1;
            }
        }
        Seen {
            masks,
            bytes: bytes.to_vec(),
            gathered,
            gather: (n, packed),
        }
    }

    proptest! {
        /// Every kind of block this CPU has computes what a byte-by-byte look computes, for
        /// full and short blocks and any bytes (the wide kind only where the CPU has AVX-512).
        #[test]
        fn every_kind_of_block_agrees_with_a_byte_by_byte_look(
            bytes in proptest::collection::vec(
                prop_oneof![any::<u8>(), proptest::sample::select(b"\"\\{}[] \n0".to_vec())],
                0..80,
            ),
            keep in any::<u64>(),
            marks in any::<[u64; 2]>(),
        ) {
            let expected = reference(&bytes, keep, marks);
            let kernel = || AllMasks { bytes: &bytes, keep, marks };
            prop_assert_eq!(Scanner::portable().run(kernel()), reference(&bytes, keep, marks));
            prop_assert_eq!(Scanner::detect().run(kernel()), expected);
        }
    }

    #[test]
    fn the_portable_scanner_is_not_wide() {
        assert!(!Scanner::portable().is_wide());
        #[cfg(target_arch = "x86_64")]
        assert_eq!(Scanner::detect().is_wide(), Avx512::detect().is_some());
    }
}
