//! Fixed, seeded splits. The test split is looked at only for final figures; every decision
//! (early stopping, pruning schedules, search) uses validation.

use super::Dataset;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

#[derive(Clone, Debug)]
pub struct Splits {
    pub train: Dataset,
    pub val: Dataset,
    pub test: Dataset,
}

fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    idx
}

/// Train / validation / test by fractions of one shuffled set.
pub fn split_by_fractions(d: &Dataset, train: f64, val: f64, seed: u64) -> Splits {
    let idx = shuffled(d.len(), seed);
    let n_train = (d.len() as f64 * train).round() as usize;
    let n_val = (d.len() as f64 * val).round() as usize;
    Splits {
        train: d.subset(&idx[..n_train]),
        val: d.subset(&idx[n_train..n_train + n_val]),
        test: d.subset(&idx[n_train + n_val..]),
    }
}

impl Splits {
    /// Keeps an official test set; validation is a seeded fraction of train.
    pub fn with_test(train: &Dataset, test: Dataset, val: f64, seed: u64) -> Splits {
        let idx = shuffled(train.len(), seed);
        let n_val = (train.len() as f64 * val).round() as usize;
        let mut test = test;
        if test.class_names.len() < train.class_names.len() {
            test.class_names = train.class_names.clone();
        }
        Splits {
            train: train.subset(&idx[n_val..]),
            val: train.subset(&idx[..n_val]),
            test,
        }
    }
}
