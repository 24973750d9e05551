//! Seed architectures as user-editable TOML files (`models/seeds/*.toml`), parsed into the IR.
//!
//! ```toml
//! name = "lenet-5"
//! input = [28, 28, 1]          # optional: omitted = the dataset's own sample shape
//! [[layer]]
//! type = "conv"                # conv | dense | maxpool | avgpool | flatten | relu
//! filters = 20
//! kernel = 5                   # or [kh, kw]
//! padding = "valid"            # valid | same | n | [top, left, bottom, right]
//! [[layer]]
//! type = "dense"
//! units = "classes"            # a number, or "classes" (the dataset's class count)
//! ```
//!
//! A seed's `input` may re-shape the dataset's samples (a flat 64-feature CSV as `[8, 8, 1]`) but
//! must hold the same number of values. Weights are He-uniform from a seeded RNG, biases zero.

use crate::ir::{Activation, Conv2d, Dense, Model, Op, Pool, Preprocess, TensorId};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("{file}: {problem}")]
    Invalid { file: String, problem: String },
}

fn err(file: &str, problem: impl Into<String>) -> SeedError {
    SeedError::Invalid {
        file: file.to_string(),
        problem: problem.into(),
    }
}

/// A parsed seed file (before it meets a dataset).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SeedSpec {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub input: Option<Vec<usize>>,
    #[serde(rename = "layer")]
    pub layers: Vec<LayerSpec>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum LayerSpec {
    Dense {
        units: Units,
        #[serde(default)]
        activation: ActSpec,
    },
    Conv {
        filters: usize,
        kernel: Pair,
        #[serde(default)]
        stride: Option<Pair>,
        #[serde(default)]
        padding: PaddingSpec,
        /// One filter per input channel (groups = in_channels; `filters` must be a multiple).
        #[serde(default)]
        depthwise: bool,
        #[serde(default)]
        activation: ActSpec,
    },
    MaxPool {
        size: Pair,
        #[serde(default)]
        stride: Option<Pair>,
    },
    AvgPool {
        size: Pair,
        #[serde(default)]
        stride: Option<Pair>,
    },
    Flatten,
    Relu,
}

impl SeedSpec {
    /// Applies `f` to every hidden width (Dense units given as a number, conv filters); the
    /// class-count layer is left alone. SCANN A starts from a narrowed seed this way.
    pub fn scale_widths(&mut self, f: &dyn Fn(usize) -> usize) {
        for l in &mut self.layers {
            match l {
                LayerSpec::Dense {
                    units: Units::N(n), ..
                } => *n = f(*n),
                LayerSpec::Conv {
                    filters,
                    depthwise: false,
                    ..
                } => *filters = f(*filters),
                _ => {}
            }
        }
    }
}

impl LayerSpec {
    fn kind(&self) -> &'static str {
        match self {
            LayerSpec::Dense { .. } => "dense",
            LayerSpec::Conv { .. } => "conv",
            LayerSpec::MaxPool { .. } => "maxpool",
            LayerSpec::AvgPool { .. } => "avgpool",
            LayerSpec::Flatten => "flatten",
            LayerSpec::Relu => "relu",
        }
    }
}

/// A layer width: a number or `"classes"`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Units {
    N(usize),
    Named(String),
}

/// `5` or `[5, 3]`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Pair {
    Same(usize),
    Two([usize; 2]),
}

impl Pair {
    fn get(self) -> [usize; 2] {
        match self {
            Pair::Same(k) => [k, k],
            Pair::Two(p) => p,
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq, Default)]
#[serde(untagged)]
pub enum PaddingSpec {
    #[default]
    #[serde(skip)]
    Valid,
    Named(String),
    Same(usize),
    Explicit([usize; 4]),
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ActSpec {
    #[default]
    None,
    Relu,
    Relu6,
}

impl From<ActSpec> for Activation {
    fn from(a: ActSpec) -> Activation {
        match a {
            ActSpec::None => Activation::None,
            ActSpec::Relu => Activation::Relu,
            ActSpec::Relu6 => Activation::Relu6,
        }
    }
}

/// What the seed needs to know about the dataset.
#[derive(Clone, Debug)]
pub struct DataShape {
    pub sample_shape: Vec<usize>,
    pub class_names: Vec<String>,
    pub preprocess: Preprocess,
}

/// Parses seed text; `file` names the source in errors.
pub fn parse(text: &str, file: &str) -> Result<SeedSpec, SeedError> {
    let spec: SeedSpec = toml::from_str(text).map_err(|e| err(file, e.to_string()))?;
    if spec.layers.is_empty() {
        return Err(err(file, "no [[layer]] entries"));
    }
    Ok(spec)
}

/// Reads and parses a seed file.
pub fn read(path: &Path) -> Result<SeedSpec, SeedError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| err(&file, e.to_string()))?;
    parse(&text, &file)
}

/// Reads a seed file and builds its model for `data`, initialised from `seed`.
pub fn load(path: &Path, data: &DataShape, seed: u64) -> Result<Model, SeedError> {
    build(&read(path)?, &path.display().to_string(), data, seed)
}

fn resolve_padding(
    p: &PaddingSpec,
    in_hw: [usize; 2],
    k: [usize; 2],
    s: [usize; 2],
) -> Result<[usize; 4], String> {
    match p {
        PaddingSpec::Valid => Ok([0; 4]),
        PaddingSpec::Named(n) if n == "valid" => Ok([0; 4]),
        PaddingSpec::Named(n) if n == "same" => {
            // TensorFlow's rule: output = ceil(in / stride), the extra row/column at the end.
            let mut pad = [0; 4];
            for a in 0..2 {
                let out = in_hw[a].div_ceil(s[a]);
                let total = ((out - 1) * s[a] + k[a]).saturating_sub(in_hw[a]);
                pad[a] = total / 2;
                pad[a + 2] = total - total / 2;
            }
            Ok(pad)
        }
        PaddingSpec::Named(n) => Err(format!(
            "unknown padding {n:?}: use \"valid\", \"same\", a number or [top, left, bottom, right]"
        )),
        PaddingSpec::Same(n) => Ok([*n; 4]),
        PaddingSpec::Explicit(p) => Ok(*p),
    }
}

/// He-uniform: Var(w) = 2 / fan_in keeps ReLU activations at a steady scale.
fn he_uniform(rng: &mut ChaCha8Rng, n: usize, fan_in: usize) -> Vec<f32> {
    let bound = (6.0 / fan_in.max(1) as f64).sqrt() as f32;
    (0..n).map(|_| rng.random_range(-bound..bound)).collect()
}

/// Builds the IR for `spec` on a dataset of shape `data`.
pub fn build(spec: &SeedSpec, file: &str, data: &DataShape, seed: u64) -> Result<Model, SeedError> {
    let n_data: usize = data.sample_shape.iter().product();
    let input = spec
        .input
        .clone()
        .unwrap_or_else(|| data.sample_shape.clone());
    let n_in: usize = input.iter().product();
    if n_in != n_data || input.is_empty() {
        return Err(err(
            file,
            format!(
                "the seed's input {input:?} holds {n_in} values but the dataset's samples {:?} hold {n_data}",
                data.sample_shape
            ),
        ));
    }
    let classes = data.class_names.len();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut m = Model::with_input(
        &spec.name,
        input.clone(),
        data.preprocess.clone(),
        data.class_names.clone(),
    );
    let mut x: TensorId = m.inputs[0];
    let mut shape = input;
    let mut counts = std::collections::HashMap::<&str, usize>::new();
    for (li, layer) in spec.layers.iter().enumerate() {
        let at = |p: String| err(file, format!("layer {} ({}): {p}", li + 1, layer.kind()));
        // Max and average pools share the "pool" prefix, so they share a counter: names stay
        // unique.
        let prefix = match layer {
            LayerSpec::Dense { .. } => "fc",
            LayerSpec::Conv { .. } => "conv",
            LayerSpec::MaxPool { .. } | LayerSpec::AvgPool { .. } => "pool",
            LayerSpec::Flatten => "flatten",
            LayerSpec::Relu => "relu",
        };
        let c = counts.entry(prefix).or_default();
        *c += 1;
        let name = format!("{prefix}{c}");
        let image = |shape: &[usize]| -> Result<[usize; 3], SeedError> {
            match *shape {
                [h, w, c] => Ok([h, w, c]),
                _ => Err(at(format!(
                    "needs an [H, W, C] input, got {shape:?} (set `input = [H, W, C]` in the seed)"
                ))),
            }
        };
        let (op, out_shape) = match layer {
            LayerSpec::Dense { units, activation } => {
                if shape.len() != 1 {
                    return Err(at(format!(
                        "needs a flat input, got {shape:?}: add a `type = \"flatten\"` layer before it"
                    )));
                }
                let width = match units {
                    Units::N(0) => return Err(at("units must be at least 1".into())),
                    Units::N(n) => *n,
                    Units::Named(s) if s == "classes" => classes,
                    Units::Named(s) => {
                        return Err(at(format!("units {s:?}: use a number or \"classes\"")))
                    }
                };
                let fan_in = shape[0];
                let d = Dense::new(
                    fan_in,
                    width,
                    he_uniform(&mut rng, width * fan_in, fan_in),
                    vec![0.0; width],
                    (*activation).into(),
                );
                (Op::Dense(d), vec![width])
            }
            LayerSpec::Conv {
                filters,
                kernel,
                stride,
                padding,
                depthwise,
                activation,
            } => {
                let [h, w, cin] = image(&shape)?;
                let k = kernel.get();
                let s = stride.map(Pair::get).unwrap_or([1, 1]);
                if k.contains(&0) || s.contains(&0) || *filters == 0 {
                    return Err(at(format!(
                        "kernel {k:?}, stride {s:?} and filters {filters} must be positive"
                    )));
                }
                let groups = if *depthwise { cin } else { 1 };
                if filters % groups != 0 {
                    return Err(at(format!(
                        "a depthwise conv needs filters a multiple of its {cin} input channels, got {filters}"
                    )));
                }
                let pad = resolve_padding(padding, [h, w], k, s).map_err(at)?;
                let fan_in = k[0] * k[1] * (cin / groups);
                let conv = Conv2d::new(
                    cin,
                    *filters,
                    k,
                    s,
                    pad,
                    groups,
                    he_uniform(&mut rng, filters * fan_in, fan_in),
                    vec![0.0; *filters],
                    (*activation).into(),
                );
                let out = conv.output_shape(h, w).ok_or_else(|| {
                    at(format!(
                        "kernel {}x{} (stride {s:?}, padding {pad:?}) does not fit a {h}x{w}x{cin} input",
                        k[0], k[1]
                    ))
                })?;
                (Op::Conv2d(conv), out)
            }
            LayerSpec::MaxPool { size, stride } | LayerSpec::AvgPool { size, stride } => {
                let hwc = image(&shape)?;
                let k = size.get();
                let pool = Pool {
                    kernel: k,
                    stride: stride.map(Pair::get).unwrap_or(k),
                    padding: [0; 4],
                };
                let out = pool.output_shape(&hwc).ok_or_else(|| {
                    at(format!(
                        "window {k:?} (stride {:?}) does not fit a {hwc:?} input",
                        pool.stride
                    ))
                })?;
                let op = if matches!(layer, LayerSpec::MaxPool { .. }) {
                    Op::MaxPool(pool)
                } else {
                    Op::AvgPool(pool)
                };
                (op, out)
            }
            LayerSpec::Flatten => {
                image(&shape)?;
                (Op::Flatten, vec![shape.iter().product()])
            }
            LayerSpec::Relu => (Op::Relu, shape.clone()),
        };
        x = m.add_node(name, op, vec![x], out_shape.clone());
        shape = out_shape;
    }
    if shape != [classes] {
        return Err(err(
            file,
            format!(
                "the last layer outputs {shape:?} but the dataset has {classes} classes (use `units = \"classes\"`)"
            ),
        ));
    }
    m.outputs.push(x);
    m.validate()
        .map_err(|e| err(file, format!("builds an invalid model: {e}")))?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mnist_shape() -> DataShape {
        DataShape {
            sample_shape: vec![28, 28, 1],
            class_names: (0..10).map(|i| i.to_string()).collect(),
            preprocess: Preprocess::identity(),
        }
    }

    fn seeds_dir() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/seeds")
    }

    fn problem(e: SeedError) -> String {
        e.to_string()
    }

    #[test]
    fn lenet5_file_builds_caffe_shapes() {
        let m = load(&seeds_dir().join("lenet-5.toml"), &mnist_shape(), 1).unwrap();
        let shapes: Vec<Vec<usize>> = m
            .nodes
            .iter()
            .map(|n| m.tensor(n.output).shape.clone())
            .collect();
        assert_eq!(
            shapes,
            vec![
                vec![24, 24, 20],
                vec![12, 12, 20],
                vec![8, 8, 50],
                vec![4, 4, 50],
                vec![800],
                vec![500],
                vec![10]
            ]
        );
        // Caffe's LeNet: 431,080 parameters.
        assert_eq!(m.stats().params_total, 431_080);
    }

    #[test]
    fn lenet_300_100_reads_images_flat_and_is_he_initialised() {
        let data = DataShape {
            sample_shape: vec![784],
            ..mnist_shape()
        };
        let m = load(&seeds_dir().join("lenet-300-100.toml"), &data, 7).unwrap();
        assert_eq!(m.stats().params_total, 266_610);
        let Op::Dense(d) = &m.nodes[0].op else {
            panic!("first layer is dense")
        };
        let bound = (6.0f32 / 784.0).sqrt();
        assert!(d.weight.iter().all(|w| w.abs() <= bound));
        let var = d.weight.iter().map(|w| w * w).sum::<f32>() / d.weight.len() as f32;
        assert!((var - 2.0 / 784.0).abs() < 0.1 * 2.0 / 784.0, "var {var}");
        // the same seed gives the same weights
        let again = load(&seeds_dir().join("lenet-300-100.toml"), &data, 7).unwrap();
        assert_eq!(m, again);
    }

    #[test]
    fn tabular_mlp_takes_sizes_from_the_dataset() {
        for (n, classes) in [(13, 3), (30, 2)] {
            let data = DataShape {
                sample_shape: vec![n],
                class_names: (0..classes).map(|i| i.to_string()).collect(),
                preprocess: Preprocess::identity(),
            };
            let m = load(&seeds_dir().join("tabular-mlp.toml"), &data, 1).unwrap();
            assert_eq!(m.input_len(), n);
            assert_eq!(m.output_len(), classes);
        }
    }

    #[test]
    fn errors_name_the_file_and_the_problem() {
        let data = mnist_shape();
        let cases = [
            ("name='x'\n[[layer]]\ntype='lstm'\nunits=3", "lstm"),
            (
                "name='x'\ninput=[100]\n[[layer]]\ntype='dense'\nunits='classes'",
                "784",
            ),
            (
                "name='x'\n[[layer]]\ntype='conv'\nfilters=4\nkernel=30\n[[layer]]\ntype='flatten'\n[[layer]]\ntype='dense'\nunits='classes'",
                "does not fit",
            ),
            (
                "name='x'\n[[layer]]\ntype='dense'\nunits='classes'",
                "flatten",
            ),
            (
                "name='x'\n[[layer]]\ntype='flatten'\n[[layer]]\ntype='dense'\nunits=7",
                "10 classes",
            ),
            ("name='x'\n[[layer]]\ntype='flatten'\nunits=3", "units"),
            (
                "name='x'\n[[layer]]\ntype='conv'\nfilters=4\nkernel=3\npadding='full'\n",
                "padding",
            ),
        ];
        for (text, needle) in cases {
            let r =
                parse(text, "seeds/bad.toml").and_then(|s| build(&s, "seeds/bad.toml", &data, 1));
            let msg = problem(r.expect_err(text));
            assert!(msg.starts_with("seeds/bad.toml: "), "{msg}");
            assert!(msg.contains(needle), "{text:?}: {msg}");
        }
        let data64 = DataShape {
            sample_shape: vec![64],
            ..mnist_shape()
        };
        let msg = problem(load(&seeds_dir().join("lenet-5.toml"), &data64, 1).unwrap_err());
        assert!(msg.contains("lenet-5.toml") && msg.contains("64"), "{msg}");
        let msg = problem(read(Path::new("/nonexistent/seed.toml")).unwrap_err());
        assert!(msg.starts_with("/nonexistent/seed.toml: "), "{msg}");
    }

    #[test]
    fn same_padding_keeps_the_size() {
        let text = "name='x'\ninput=[8,8,1]\n[[layer]]\ntype='conv'\nfilters=3\nkernel=3\npadding='same'\nactivation='relu'\n[[layer]]\ntype='flatten'\n[[layer]]\ntype='dense'\nunits='classes'";
        let data = DataShape {
            sample_shape: vec![64],
            ..mnist_shape()
        };
        let m = build(&parse(text, "x").unwrap(), "x", &data, 1).unwrap();
        assert_eq!(m.tensor(m.nodes[0].output).shape, vec![8, 8, 3]);
    }
}
