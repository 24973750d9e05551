//! Connection masks. Serialized as `{"len": n, "bits": "<hex>"}` (LSB-first within each byte),
//! which keeps a 266k-weight mask at 66 kB of JSON instead of 1.3 MB of `true,false,…`.

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mask(Vec<bool>);

impl Mask {
    pub fn full(len: usize) -> Self {
        Mask(vec![true; len])
    }
    pub fn from_bools(bits: Vec<bool>) -> Self {
        Mask(bits)
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn get(&self, i: usize) -> bool {
        self.0[i]
    }
    pub fn set(&mut self, i: usize, on: bool) {
        self.0[i] = on;
    }
    pub fn as_slice(&self) -> &[bool] {
        &self.0
    }
    pub fn count_ones(&self) -> usize {
        self.0.iter().filter(|&&b| b).count()
    }
    pub fn density(&self) -> f64 {
        if self.0.is_empty() {
            0.0
        } else {
            self.count_ones() as f64 / self.0.len() as f64
        }
    }
}

#[derive(Serialize, Deserialize)]
struct MaskRepr {
    len: usize,
    bits: String,
}

impl Serialize for Mask {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut bits = String::with_capacity(self.0.len().div_ceil(8) * 2);
        for chunk in self.0.chunks(8) {
            let byte = chunk
                .iter()
                .enumerate()
                .fold(0u8, |acc, (i, &b)| acc | ((b as u8) << i));
            bits.push_str(&format!("{byte:02x}"));
        }
        MaskRepr {
            len: self.0.len(),
            bits,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Mask {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let repr = MaskRepr::deserialize(d)?;
        let want = repr.len.div_ceil(8) * 2;
        if repr.bits.len() != want || !repr.bits.is_ascii() {
            return Err(de::Error::custom(format!(
                "mask of {} bits needs {} hex digits, found {}",
                repr.len,
                want,
                repr.bits.len()
            )));
        }
        let mut out = Vec::with_capacity(repr.len);
        for pair in repr.bits.as_bytes().chunks(2) {
            let text = std::str::from_utf8(pair).map_err(de::Error::custom)?;
            let byte = u8::from_str_radix(text, 16).map_err(|_| {
                de::Error::custom(format!("mask has a non-hex digit pair {text:?}"))
            })?;
            for i in 0..8 {
                if out.len() < repr.len {
                    out.push(byte >> i & 1 == 1);
                }
            }
        }
        Ok(Mask(out))
    }
}
