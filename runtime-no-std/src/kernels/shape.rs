//! Geometry of a 2-D sliding-window layer (convolution, depthwise convolution, pooling).
//!
//! Tensors are single images in HWC order (TFLite's NHWC with N = 1): element `(y, x, c)` of an
//! `h × w × c` tensor is at index `(y · w + x) · c + c`. The window of output position
//! `(oy, ox)` starts at input row `oy · stride_h − pad_top` and column `ox · stride_w − pad_left`
//! and spans `kernel_h × kernel_w` positions; positions outside the input are *padding*. Only the
//! top and left padding are parameters: the bottom and right padding follow from `out_h` and
//! `out_w` (any window position past the input is padding, so every `out_h`/`out_w` is valid).
//! For TFLite's `SAME` padding, `pad_top = ⌊pad_total_h / 2⌋` with
//! `pad_total_h = max((out_h − 1)·stride_h + kernel_h − in_h, 0)`, and likewise for the width.

/// The shape of a sliding-window layer; see the [module docs](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape2d {
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Input channels.
    pub in_c: usize,
    /// Output height.
    pub out_h: usize,
    /// Output width.
    pub out_w: usize,
    /// Output channels (`in_c` for pooling, `in_c · multiplier` for depthwise convolution).
    pub out_c: usize,
    /// Window height.
    pub kernel_h: usize,
    /// Window width.
    pub kernel_w: usize,
    /// Vertical step between output rows (≥ 1 in real layers; 0 repeats the first window).
    pub stride_h: usize,
    /// Horizontal step between output columns.
    pub stride_w: usize,
    /// Padding rows above the input.
    pub pad_top: usize,
    /// Padding columns left of the input.
    pub pad_left: usize,
}

/// Sizes derived from a [`Shape2d`], all checked against overflow once per call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dims {
    /// `in_h · in_w · in_c`.
    pub input_len: usize,
    /// `out_h · out_w · out_c`.
    pub output_len: usize,
    /// Elements of one input row: `in_w · in_c`.
    pub in_row: usize,
}

/// The part of one window that lies inside the input: rows `y0..y1` and columns `x0..x1` of the
/// window (window coordinates, `0..kernel`), and the input position of the window's `(0, 0)`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clip {
    pub y0: usize,
    pub y1: usize,
    pub x0: usize,
    pub x1: usize,
    /// Input row of window row 0 (negative inside the top padding).
    pub iy: isize,
    /// Input column of window column 0.
    pub ix: isize,
}

impl Clip {
    /// The whole window is inside the input.
    #[inline]
    pub fn is_interior(&self, s: &Shape2d) -> bool {
        self.y0 == 0 && self.x0 == 0 && self.y1 == s.kernel_h && self.x1 == s.kernel_w
    }

    /// Number of window positions inside the input.
    #[inline]
    pub fn count(&self) -> usize {
        (self.y1 - self.y0) * (self.x1 - self.x0)
    }

    /// Index of input element `(iy + wy, ix + wx, 0)`; only for `wy`, `wx` inside the clip.
    #[inline]
    pub fn input_index(&self, s: &Shape2d, wy: usize, wx: usize) -> usize {
        let y = (self.iy + wy as isize) as usize;
        let x = (self.ix + wx as isize) as usize;
        (y * s.in_w + x) * s.in_c
    }
}

impl Shape2d {
    /// Checks that every size and every window coordinate fits the index types; `None` if not
    /// (the kernels then do nothing).
    pub(crate) fn dims(&self) -> Option<Dims> {
        let in_row = self.in_w.checked_mul(self.in_c)?;
        let input_len = self.in_h.checked_mul(in_row)?;
        let output_len = self
            .out_h
            .checked_mul(self.out_w)?
            .checked_mul(self.out_c)?;
        self.kernel_h
            .checked_mul(self.kernel_w)?
            .checked_mul(self.in_c)?;
        // The farthest window corner, in isize: every later coordinate computation then fits.
        let far =
            |out: usize, stride: usize, kernel: usize, pad: usize, inp: usize| -> Option<()> {
                let last = out
                    .saturating_sub(1)
                    .checked_mul(stride)?
                    .checked_add(kernel)?;
                isize::try_from(last.checked_add(pad)?.checked_add(inp)?).ok()?;
                Some(())
            };
        far(
            self.out_h,
            self.stride_h,
            self.kernel_h,
            self.pad_top,
            self.in_h,
        )?;
        far(
            self.out_w,
            self.stride_w,
            self.kernel_w,
            self.pad_left,
            self.in_w,
        )?;
        Some(Dims {
            input_len,
            output_len,
            in_row,
        })
    }

    /// The clipped window of output position `(oy, ox)`. Only call after [`dims`](Self::dims)
    /// succeeded (which rules out overflow here).
    #[inline]
    pub(crate) fn clip(&self, oy: usize, ox: usize) -> Clip {
        let iy = (oy * self.stride_h) as isize - self.pad_top as isize;
        let ix = (ox * self.stride_w) as isize - self.pad_left as isize;
        let range = |start: isize, kernel: usize, size: usize| -> (usize, usize) {
            // Window positions k with 0 <= start + k < size.
            // max/min rather than `clamp`, whose bounds assertion would be a panic path.
            let lo = (-start).max(0).min(kernel as isize) as usize;
            let hi = (size as isize - start)
                .min(kernel as isize)
                .max(lo as isize) as usize;
            (lo, hi)
        };
        let (y0, y1) = range(iy, self.kernel_h, self.in_h);
        let (x0, x1) = range(ix, self.kernel_w, self.in_w);
        Clip {
            y0,
            y1,
            x0,
            x1,
            iy,
            ix,
        }
    }
}
