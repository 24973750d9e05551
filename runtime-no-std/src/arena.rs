//! Views of the static activation arena.
//!
//! Firmware keeps all activations in one `[u8; N]` buffer (byte-typed so it can also hold
//! other element types and be placed with a linker attribute); kernels want `i8`.

/// Reinterpret bytes as `i8`.
#[inline(always)]
pub fn as_i8(bytes: &[u8]) -> &[i8] {
    // SAFETY: u8 and i8 have the same size (1) and alignment (1) and every bit pattern is
    // valid for both, so the pointer and length describe a valid [i8]. The returned borrow
    // has the input's lifetime, so the aliasing rules are exactly those of `bytes`.
    unsafe { core::slice::from_raw_parts(bytes.as_ptr().cast::<i8>(), bytes.len()) }
}

/// Reinterpret bytes as `i8`, mutably.
#[inline(always)]
pub fn as_i8_mut(bytes: &mut [u8]) -> &mut [i8] {
    // SAFETY: as in `as_i8`; additionally the unique borrow of `bytes` moves into the result,
    // so no other reference can observe the memory while the `&mut [i8]` lives, and any i8
    // written is a valid u8 afterwards.
    unsafe { core::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast::<i8>(), bytes.len()) }
}

/// Copies the common prefix of `src` into `dst`. Unlike `copy_from_slice` it has no panic path
/// on a length mismatch (the generated code passes equal lengths; this keeps that a
/// correctness matter rather than a reachable panic).
#[inline]
pub fn copy_s8(src: &[i8], dst: &mut [i8]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_share_memory_and_reinterpret_bits() {
        let mut arena = [0u8, 1, 127, 128, 255];
        assert_eq!(as_i8(&arena), &[0, 1, 127, -128, -1]);
        let view = as_i8_mut(&mut arena);
        view[0] = -2;
        view[4] = 5;
        assert_eq!(arena, [254, 1, 127, 128, 5]);
    }

    #[test]
    fn copy_takes_the_common_prefix() {
        let mut dst = [0i8; 3];
        copy_s8(&[1, 2], &mut dst);
        assert_eq!(dst, [1, 2, 0]);
        copy_s8(&[4, 5, 6, 7], &mut dst);
        assert_eq!(dst, [4, 5, 6]);
    }

    #[test]
    fn sub_slices_work() {
        let mut arena = [0u8; 8];
        as_i8_mut(&mut arena[4..]).fill(-1);
        assert_eq!(arena, [0, 0, 0, 0, 255, 255, 255, 255]);
        assert_eq!(as_i8(&arena[..0]).len(), 0);
    }
}
