//! Wider vector instructions where the CPU has them, with the same results.
//!
//! The default x86-64 target stops at SSE2: four lanes, and no instruction for a vector
//! absolute value or a 32-bit multiply. [`wide!`](crate::wide) compiles a function a second
//! time for AVX2 and picks that copy at run time on CPUs that have it. Rust never fuses or
//! reorders floating-point operations on its own, and integer arithmetic is exact, so both
//! copies give the same bits: a render farm mixing old and new machines makes the same frames.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

static BASELINE_ONLY: AtomicBool = AtomicBool::new(false);

/// Whether the AVX2 copies run: the CPU has AVX2, `NITRATE_SIMD` is not `baseline` (for
/// comparing the two), and [`baseline_only`] has not been called with `true`.
#[inline]
pub fn has_avx2() -> bool {
    static USABLE: OnceLock<bool> = OnceLock::new();
    let usable = *USABLE.get_or_init(|| {
        let wanted = std::env::var("NITRATE_SIMD").map_or(true, |v| v != "baseline");
        #[cfg(target_arch = "x86_64")]
        let present = std::arch::is_x86_feature_detected!("avx2");
        #[cfg(not(target_arch = "x86_64"))]
        let present = false;
        wanted && present
    });
    usable && !BASELINE_ONLY.load(Ordering::Relaxed)
}

/// Run the baseline copies only (`true`) or the widest the CPU has (`false`): tests compare
/// the two.
pub fn baseline_only(on: bool) {
    BASELINE_ONLY.store(on, Ordering::Relaxed);
}

/// Defines a function whose body is compiled twice, for the baseline target and for AVX2,
/// and runs the AVX2 copy where [`has_avx2`] says so. For hot leaf loops: the body is inlined
/// into both copies, and what it calls is inlined where the compiler chooses to. The
/// arguments must be plain identifiers.
#[macro_export]
macro_rules! wide {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        // Hot loops take their rows as separate slices.
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                if $crate::simd::has_avx2() {
                    // SAFETY: the CPU has AVX2.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}
