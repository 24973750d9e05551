//! Classification head: index of the largest logit.

/// Index of the first maximum of `values`; 0 for an empty slice.
///
/// Works directly on quantized logits: the int8 → real map is monotonic (scale > 0), so the
/// argmax is the same in both domains and no dequantization is needed.
pub fn argmax_s8(values: &[i8]) -> usize {
    let mut best_index = 0;
    let mut best = i8::MIN;
    for (i, &v) in values.iter().enumerate() {
        // Strictly greater keeps the first of equal maxima (and index 0 if all are i8::MIN).
        if v > best {
            best = v;
            best_index = i;
        }
    }
    best_index
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_maximum() {
        assert_eq!(argmax_s8(&[3, -1, 7, 2]), 2);
        assert_eq!(argmax_s8(&[-3, -1, -7]), 1);
        assert_eq!(argmax_s8(&[5]), 0);
    }

    #[test]
    fn ties_pick_first() {
        assert_eq!(argmax_s8(&[1, 9, 4, 9]), 1);
        assert_eq!(argmax_s8(&[-128, -128, -128]), 0);
        assert_eq!(argmax_s8(&[-128, 127, 127]), 1);
    }

    #[test]
    fn empty_is_zero() {
        assert_eq!(argmax_s8(&[]), 0);
    }
}
