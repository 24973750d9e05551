//! The accuracy predictor: gradient-boosted regression trees over architecture features, boosted
//! from a ridge-regression base instead of the constant mean.
//!
//! smartcore's `XGRegressor` (second-order boosting with L2-regularised leaves, seeded row
//! subsampling) rather than the `gbdt` crate: smartcore is maintained, pure Rust, and brought no
//! new feature into a crate the workspace already builds.
//!
//! Why the linear base: a search fits on a few dozen noisy points, most of them proposals
//! crowded near the best predicted region, and is judged on random held-out candidates spread
//! over the whole space. Trees alone predict a constant outside the region they saw; accuracy
//! rises roughly linearly in the logs of MACs and parameters, which a ridge fit on the
//! whole-model figures extrapolates. On the MNIST CNN search of session 3 (16 random + 24
//! proposed training points, 30 held-out), trees alone ranked the held-out set at Spearman
//! 0.69 (0.73 mean over 40 resampled training sets), ridge + 20 boosted stumps on its residuals
//! at 0.80 (0.78). The trees are kept small so they correct the base where the data says so
//! (an interaction of kernel size and pooling, say) without undoing its trend.

use super::SearchError;
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linear::ridge_regression::{RidgeRegression, RidgeRegressionParameters};
use smartcore::xgboost::{XGRegressor, XGRegressorParameters};

type Trees = XGRegressor<f64, f64, DenseMatrix<f64>, Vec<f64>>;
type Ridge = RidgeRegression<f64, f64, DenseMatrix<f64>, Vec<f64>>;

/// The predictor's hyper-parameters; `default()` is what searches use. Exposed so they can be
/// studied offline on a saved search state (`cargo run --example predictor_study`).
#[derive(Clone, Debug, PartialEq)]
pub struct PredictorParams {
    /// Ridge penalty on standardised features.
    pub ridge_alpha: f64,
    /// Boosted trees on the base's residuals (0: the base alone).
    pub n_trees: usize,
    pub max_depth: u16,
    pub learning_rate: f64,
    pub min_child_weight: usize,
}

impl Default for PredictorParams {
    fn default() -> Self {
        // Stumps, shrunk: with a few dozen points deeper trees fitted noise (session 3's
        // comparison above: 50 depth-2 trees ranked worse than 20 stumps).
        PredictorParams {
            ridge_alpha: 10.0,
            n_trees: 20,
            max_depth: 1,
            learning_rate: 0.05,
            min_child_weight: 5,
        }
    }
}

/// A fitted predictor of validation accuracy.
pub struct Predictor {
    base: LinearBase,
    trees: Option<Trees>,
    n_features: usize,
}

/// `y_mean + ridge(standardised columns)`; without a ridge (fewer rows than columns) the mean.
struct LinearBase {
    columns: Vec<usize>,
    mean: Vec<f64>,
    /// 1/sd per column; 0 for a constant column (it carries no information).
    inv_sd: Vec<f64>,
    y_mean: f64,
    ridge: Option<Ridge>,
}

impl LinearBase {
    fn fit(
        x: &[Vec<f64>],
        y: &[f64],
        columns: &[usize],
        alpha: f64,
    ) -> Result<LinearBase, SearchError> {
        let n = x.len() as f64;
        let mean: Vec<f64> = columns
            .iter()
            .map(|&j| x.iter().map(|r| r[j]).sum::<f64>() / n)
            .collect();
        let inv_sd: Vec<f64> = columns
            .iter()
            .zip(&mean)
            .map(|(&j, m)| {
                let var = x.iter().map(|r| (r[j] - m).powi(2)).sum::<f64>() / n;
                if var > 1e-18 {
                    1.0 / var.sqrt()
                } else {
                    0.0
                }
            })
            .collect();
        let y_mean = y.iter().sum::<f64>() / n;
        let mut base = LinearBase {
            columns: columns.to_vec(),
            mean,
            inv_sd,
            y_mean,
            ridge: None,
        };
        // smartcore's ridge refuses n <= p; its own normalisation refuses constant columns and
        // its un-normalised form has no intercept: hence the centring and scaling here.
        if x.len() > columns.len() && !columns.is_empty() {
            let centred: Vec<f64> = y.iter().map(|v| v - y_mean).collect();
            let params = RidgeRegressionParameters::default()
                .with_alpha(alpha)
                .with_normalize(false);
            base.ridge = Some(
                Ridge::fit(&base.standardise(x)?, &centred, params)
                    .map_err(|e| SearchError::Predictor(e.to_string()))?,
            );
        }
        Ok(base)
    }

    fn standardise(&self, x: &[Vec<f64>]) -> Result<DenseMatrix<f64>, SearchError> {
        let z: Vec<Vec<f64>> = x
            .iter()
            .map(|r| {
                self.columns
                    .iter()
                    .enumerate()
                    .map(|(i, &j)| (r[j] - self.mean[i]) * self.inv_sd[i])
                    .collect()
            })
            .collect();
        matrix(&z)
    }

    fn predict(&self, x: &[Vec<f64>]) -> Result<Vec<f64>, SearchError> {
        match &self.ridge {
            None => Ok(vec![self.y_mean; x.len()]),
            Some(r) => Ok(r
                .predict(&self.standardise(x)?)
                .map_err(|e| SearchError::Predictor(e.to_string()))?
                .into_iter()
                .map(|v| v + self.y_mean)
                .collect()),
        }
    }
}

fn matrix(x: &[Vec<f64>]) -> Result<DenseMatrix<f64>, SearchError> {
    DenseMatrix::from_2d_vec(&x.to_vec()).map_err(|e| SearchError::Predictor(e.to_string()))
}

impl Predictor {
    /// Fits on feature rows `x` (all the same length) and accuracies `y`; the ridge base uses
    /// the feature columns `linear` (whole-model figures: see `Space::linear_columns`), the
    /// trees all of them. Deterministic in `seed`.
    pub fn fit(
        x: &[Vec<f64>],
        y: &[f64],
        linear: &[usize],
        seed: u64,
    ) -> Result<Predictor, SearchError> {
        Predictor::fit_with(x, y, linear, seed, &PredictorParams::default())
    }

    /// [`Predictor::fit`] with other hyper-parameters.
    pub fn fit_with(
        x: &[Vec<f64>],
        y: &[f64],
        linear: &[usize],
        seed: u64,
        hp: &PredictorParams,
    ) -> Result<Predictor, SearchError> {
        if x.len() != y.len() || x.len() < 2 {
            return Err(SearchError::Predictor(format!(
                "needs at least two (features, accuracy) pairs, got {} rows and {} targets",
                x.len(),
                y.len()
            )));
        }
        let n_features = x[0].len();
        if x.iter().any(|r| r.len() != n_features) {
            return Err(SearchError::Predictor(
                "feature rows of different lengths".into(),
            ));
        }
        if let Some(j) = linear.iter().find(|&&j| j >= n_features) {
            return Err(SearchError::Predictor(format!(
                "linear column {j} of {n_features} features"
            )));
        }
        let base = LinearBase::fit(x, y, linear, hp.ridge_alpha)?;
        let residual: Vec<f64> = y.iter().zip(base.predict(x)?).map(|(a, b)| a - b).collect();
        let trees = if hp.n_trees == 0 {
            None
        } else {
            let params = XGRegressorParameters::default()
                .with_n_estimators(hp.n_trees)
                .with_max_depth(hp.max_depth)
                .with_learning_rate(hp.learning_rate)
                .with_min_child_weight(hp.min_child_weight)
                .with_lambda(1.0)
                .with_subsample(0.7)
                .with_base_score(0.0)
                .with_seed(seed);
            Some(
                Trees::fit(&matrix(x)?, &residual, params)
                    .map_err(|e| SearchError::Predictor(e.to_string()))?,
            )
        };
        Ok(Predictor {
            base,
            trees,
            n_features,
        })
    }

    /// Predicted accuracy of each row.
    pub fn predict(&self, x: &[Vec<f64>]) -> Result<Vec<f64>, SearchError> {
        if x.is_empty() {
            return Ok(vec![]);
        }
        if x.iter().any(|r| r.len() != self.n_features) {
            return Err(SearchError::Predictor(format!(
                "rows must have the {} features the predictor was fitted on",
                self.n_features
            )));
        }
        let trees = match &self.trees {
            Some(t) => t
                .predict(&matrix(x)?)
                .map_err(|e| SearchError::Predictor(e.to_string()))?,
            None => vec![0.0; x.len()],
        };
        Ok(self
            .base
            .predict(x)?
            .into_iter()
            .zip(trees)
            .map(|(a, b)| a + b)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::stats::spearman;

    /// Accuracy rising with width, saturating; features: ln(width) (the whole-model figure the
    /// base sees) and an irrelevant one.
    fn acc(w: f64) -> f64 {
        0.9 - 0.2 / w.sqrt()
    }
    fn row(w: f64, z: f64) -> Vec<f64> {
        vec![w.ln(), z]
    }

    #[test]
    fn learns_a_monotone_target_and_ranks_unseen_points() {
        let x: Vec<Vec<f64>> = (1..=40)
            .map(|i| row(i as f64, (i * 7 % 5) as f64))
            .collect();
        let y: Vec<f64> = (1..=40).map(|i| acc(i as f64)).collect();
        let p = Predictor::fit(&x, &y, &[0], 1).unwrap();
        let widths: Vec<f64> = (1..40).map(|i| i as f64 + 0.5).collect();
        let test: Vec<Vec<f64>> = widths.iter().map(|&w| row(w, 2.0)).collect();
        let truth: Vec<f64> = widths.iter().map(|&w| acc(w)).collect();
        let pred = p.predict(&test).unwrap();
        let rho = spearman(&pred, &truth).unwrap();
        assert!(rho > 0.95, "{rho}: {pred:?}");
        let mae = pred
            .iter()
            .zip(&truth)
            .map(|(a, b)| (a - b).abs())
            .sum::<f64>()
            / pred.len() as f64;
        // The target spans 0.70..0.87.
        assert!(mae < 0.02, "{mae}: {pred:?}");
        let again = Predictor::fit(&x, &y, &[0], 1)
            .unwrap()
            .predict(&test)
            .unwrap();
        assert_eq!(pred, again, "seeded: the same fit again");
        let base_only = PredictorParams {
            n_trees: 0,
            ..PredictorParams::default()
        };
        let ridge = Predictor::fit_with(&x, &y, &[0], 1, &base_only)
            .unwrap()
            .predict(&test)
            .unwrap();
        assert!(spearman(&ridge, &truth).unwrap() > 0.95, "{ridge:?}");
        assert_ne!(ridge, pred, "the trees correct the base");
        assert!(p.predict(&[vec![1.0]]).is_err());
        assert!(Predictor::fit(&x[..1], &y[..1], &[0], 1).is_err());
        assert!(Predictor::fit(&x, &y, &[2], 1).is_err(), "no column 2");
    }

    #[test]
    fn the_linear_base_ranks_beyond_the_training_range() {
        // Fitted on narrow models only, asked about wider ones: trees alone would predict one
        // constant for all of them (no ranking at all); the base carries the trend.
        let x: Vec<Vec<f64>> = (1..=20).map(|i| row(i as f64, (i % 3) as f64)).collect();
        let y: Vec<f64> = (1..=20).map(|i| acc(i as f64)).collect();
        let widths: Vec<f64> = (24..=60).step_by(4).map(|i| i as f64).collect();
        let test: Vec<Vec<f64>> = widths.iter().map(|&w| row(w, 1.0)).collect();
        let truth: Vec<f64> = widths.iter().map(|&w| acc(w)).collect();
        let with_base = Predictor::fit(&x, &y, &[0], 3)
            .unwrap()
            .predict(&test)
            .unwrap();
        assert!(
            spearman(&with_base, &truth).unwrap() > 0.99,
            "{with_base:?}"
        );
        let trees_only = Predictor::fit(&x, &y, &[], 3)
            .unwrap()
            .predict(&test)
            .unwrap();
        assert!(
            trees_only.windows(2).all(|w| w[0] == w[1]),
            "trees are flat outside the data: {trees_only:?}"
        );
    }

    #[test]
    fn constant_columns_and_few_rows_fall_back_gracefully() {
        // A constant column (every candidate the same depth) and fewer rows than base columns.
        let x: Vec<Vec<f64>> = (1..=12).map(|i| vec![3.0, (i as f64).ln()]).collect();
        let y: Vec<f64> = (1..=12).map(|i| acc(i as f64)).collect();
        let p = Predictor::fit(&x, &y, &[0, 1], 1).unwrap();
        let pred = p
            .predict(&[vec![3.0, 2.0f64.ln()], vec![3.0, 10.0f64.ln()]])
            .unwrap();
        assert!(
            pred.iter().all(|v| v.is_finite()) && pred[0] < pred[1],
            "{pred:?}"
        );
        let few = Predictor::fit(&x[..2], &y[..2], &[0, 1], 1).unwrap();
        let mean = (y[0] + y[1]) / 2.0;
        let p2 = few.predict(&[vec![3.0, 0.5]]).unwrap();
        assert!((p2[0] - mean).abs() < 0.05, "{p2:?} vs the mean {mean}");
    }
}
