use super::*;
use std::io::Write;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn csv_err(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "bad.csv", text.as_bytes());
    let spec = DataSpec::Csv {
        path: p,
        label_column: None,
        train_rows: None,
    };
    load(&spec, 1).unwrap_err().to_string()
}

#[test]
fn embedded_digits_are_complete() {
    let s = load(&DataSpec::Digits, 7).unwrap();
    let n = s.train.len() + s.val.len() + s.test.len();
    assert_eq!(n, 1797);
    assert_eq!(s.train.sample_shape, vec![64]);
    assert_eq!(s.train.n_classes(), 10);
    assert_eq!(s.test.len(), 1797 - 1258 - 180);
    assert!(s.train.features.iter().all(|&v| (0.0..=16.0).contains(&v)));
}

#[test]
fn splits_are_seeded_and_disjoint() {
    let a = load(&DataSpec::Digits, 3).unwrap();
    let b = load(&DataSpec::Digits, 3).unwrap();
    let c = load(&DataSpec::Digits, 4).unwrap();
    assert_eq!(a.test, b.test);
    assert_ne!(a.test.labels, c.test.labels);
    let all = load(&DataSpec::Digits, 3).unwrap();
    // every sample lands in exactly one split: compare multisets of rows
    let mut rows: Vec<Vec<u32>> = [&all.train, &all.val, &all.test]
        .iter()
        .flat_map(|d| (0..d.len()).map(|i| d.sample(i).iter().map(|v| v.to_bits()).collect()))
        .collect();
    rows.sort();
    assert_eq!(rows.len(), 1797);
}

#[test]
fn csv_train_rows_keep_the_standard_split() {
    let dir = tempfile::tempdir().unwrap();
    let text: String = (0..50).map(|i| format!("{i},{}\n", i % 3)).collect();
    let p = write(dir.path(), "std.csv", text.as_bytes());
    let spec: DataSpec = format!("csv:{}:train-rows=40", p.display())
        .parse()
        .unwrap();
    let s = load(&spec, 2).unwrap();
    // The last 10 rows are the test set, in file order; validation comes out of the first 40.
    assert_eq!(s.test.len(), 10);
    assert_eq!(s.train.len() + s.val.len(), 40);
    let firsts: Vec<f32> = (0..10).map(|i| s.test.sample(i)[0]).collect();
    assert_eq!(firsts, (40..50).map(|i| i as f32).collect::<Vec<_>>());
    assert!((0..s.train.len()).all(|i| s.train.sample(i)[0] < 40.0));
    let too_many: DataSpec = format!("csv:{}:train-rows=50", p.display())
        .parse()
        .unwrap();
    let err = load(&too_many, 2).unwrap_err().to_string();
    assert!(
        err.contains("std.csv") && err.contains("no test rows"),
        "{err}"
    );
}

#[test]
fn spec_parsing() {
    assert_eq!("digits".parse::<DataSpec>().unwrap(), DataSpec::Digits);
    assert_eq!(
        "csv:a/b.csv:label=species".parse::<DataSpec>().unwrap(),
        DataSpec::Csv {
            path: "a/b.csv".into(),
            label_column: Some("species".into()),
            train_rows: None,
        }
    );
    assert_eq!(
        "csv:c:/d.csv:train-rows=7494:label=y"
            .parse::<DataSpec>()
            .unwrap(),
        DataSpec::Csv {
            path: "c:/d.csv".into(),
            label_column: Some("y".into()),
            train_rows: Some(7494),
        }
    );
    assert!("csv:d.csv:train-rows=x".parse::<DataSpec>().is_err());
    assert_eq!(
        "mnist:/x".parse::<DataSpec>().unwrap(),
        DataSpec::mnist("/x")
    );
    assert_eq!(
        "fashion-mnist:/d:x:train-sample=10000"
            .parse::<DataSpec>()
            .unwrap(),
        DataSpec::Idx {
            name: "fashion-mnist".into(),
            dir: "/d:x".into(),
            train_sample: Some(10000),
            dev_test: None,
        }
    );
    assert_eq!(
        "mnist:/d:dev-test=3000:train-sample=10000"
            .parse::<DataSpec>()
            .unwrap(),
        DataSpec::Idx {
            name: "mnist".into(),
            dir: "/d".into(),
            train_sample: Some(10000),
            dev_test: Some(3000),
        }
    );
    assert!("mnist:/x:dev-test=0".parse::<DataSpec>().is_err());
    assert!("mnist:/x:train-sample=0".parse::<DataSpec>().is_err());
    assert!("mnist:/x:train-sample=ten".parse::<DataSpec>().is_err());
    assert!("imagenet".parse::<DataSpec>().is_err());
}

#[test]
fn ragged_csv_row_names_file_and_line() {
    let err = csv_err("1,2,0\n3,4,1\n5,1\n");
    assert!(err.contains("bad.csv"), "{err}");
    assert!(err.contains("line 3 has 2 fields, expected 3"), "{err}");
}

#[test]
fn label_out_of_range_is_reported() {
    let err = csv_err("2,2,a,b\n1,2,0\n3,4,5\n");
    assert!(
        err.contains("line 3: label 5 is out of range for 2 classes"),
        "{err}"
    );
    let err = csv_err("1,2,0\n3,4,-1\n");
    assert!(err.contains("label -1 is out of range"), "{err}");
}

#[test]
fn non_numeric_feature_is_reported() {
    let err = csv_err("1,2,0\n3,x,1\n");
    assert!(
        err.contains("line 2, column 2: \"x\" is not a number"),
        "{err}"
    );
}

#[test]
fn sklearn_header_text_labels_and_named_columns() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "iris.csv",
        b"3,2,setosa,other\n1,2,0\n3,4,1\n5,6,1\n",
    );
    let d = csv::parse_csv_bytes(&std::fs::read(&p).unwrap(), &p, "iris", None).unwrap();
    assert_eq!(d.class_names, vec!["setosa", "other"]);
    assert_eq!(d.labels, vec![0, 1, 1]);
    let p = write(dir.path(), "l.csv", b"1,2,T\n3,4,A\n5,6,T\n");
    let d = csv::parse_csv_bytes(&std::fs::read(&p).unwrap(), &p, "l", None).unwrap();
    assert_eq!(d.class_names, vec!["A", "T"]);
    assert_eq!(d.labels, vec![1, 0, 1]);
    let p = write(dir.path(), "h.csv", b"kind,x,y\n1,0.5,2\n0,1.5,3\n");
    let d = csv::parse_csv_bytes(&std::fs::read(&p).unwrap(), &p, "h", Some("kind")).unwrap();
    assert_eq!(d.labels, vec![1, 0]);
    assert_eq!(d.features, vec![0.5, 2.0, 1.5, 3.0]);
}

#[test]
fn corrupt_gzip_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = gz(b"1,2,0\n3,4,1\n");
    bytes.truncate(bytes.len() / 2);
    let p = write(dir.path(), "cut.csv.gz", &bytes);
    let err = load(
        &DataSpec::Csv {
            path: p,
            label_column: None,
            train_rows: None,
        },
        1,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("cut.csv.gz: corrupt gzip data"), "{err}");
}

fn mnist_dir(images: &[u8], labels: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for prefix in ["train", "t10k"] {
        write(
            dir.path(),
            &format!("{prefix}-images-idx3-ubyte.gz"),
            &gz(images),
        );
        write(
            dir.path(),
            &format!("{prefix}-labels-idx1-ubyte.gz"),
            &gz(labels),
        );
    }
    dir
}

/// Three 2x2 images (pixel values 0, 10, ..., 110 in order), labels 0, 2, 1, as both the
/// training and the test files.
fn three_image_dir() -> tempfile::TempDir {
    let pixels: Vec<u8> = (0..3 * 2 * 2).map(|i| i as u8 * 10).collect();
    mnist_dir(
        &idx::encode(&[3, 2, 2], &pixels),
        &idx::encode(&[3], &[0, 2, 1]),
    )
}

#[test]
fn idx_round_trip() {
    let dir = three_image_dir();
    let spec = DataSpec::mnist(dir.path());
    let s = load(&spec, 1).unwrap();
    assert_eq!(s.test.len(), 3);
    assert_eq!(s.test.sample_shape, vec![2, 2, 1]);
    assert_eq!(s.test.sample(2), &[80.0, 90.0, 100.0, 110.0]);
    assert_eq!(s.test.n_classes(), 3);
}

/// Pixel 0 of every training and validation image, sorted: which of the file's images they are.
fn first_pixels_of_train_and_val(s: &Splits) -> Vec<f32> {
    let mut firsts: Vec<f32> = (0..s.train.len())
        .map(|i| s.train.sample(i)[0])
        .chain((0..s.val.len()).map(|i| s.val.sample(i)[0]))
        .collect();
    firsts.sort_by(f32::total_cmp);
    firsts
}

#[test]
fn idx_train_sample_keeps_the_first_images_and_the_whole_test_set() {
    let dir = three_image_dir();
    let spec = |n| DataSpec::Idx {
        name: "fashion-mnist".into(),
        dir: dir.path().into(),
        train_sample: Some(n),
        dev_test: None,
    };
    let s = load(&spec(2), 1).unwrap();
    assert_eq!(s.train.len() + s.val.len(), 2);
    assert_eq!(s.test.len(), 3);
    // The kept images are the file's first two (pixel 0 is 0 and 40).
    assert_eq!(first_pixels_of_train_and_val(&s), vec![0.0, 40.0]);
    let err = load(&spec(4), 1).unwrap_err().to_string();
    assert!(
        err.contains("train-sample=4") && err.contains(&dir.path().display().to_string()),
        "{err}"
    );
}

#[test]
fn idx_dev_test_holds_out_the_last_training_images_and_never_reads_the_test_file() {
    let dir = three_image_dir();
    // The official test set is not needed: remove it.
    std::fs::remove_file(dir.path().join("t10k-images-idx3-ubyte.gz")).unwrap();
    let spec = |n| DataSpec::Idx {
        name: "mnist".into(),
        dir: dir.path().into(),
        train_sample: None,
        dev_test: Some(n),
    };
    let s = load(&spec(1), 1).unwrap();
    assert_eq!(s.test.len(), 1);
    assert_eq!(s.test.sample(0), &[80.0, 90.0, 100.0, 110.0]);
    assert_eq!(s.test.labels, vec![1]);
    assert_eq!(first_pixels_of_train_and_val(&s), vec![0.0, 40.0]);
    let err = load(&spec(3), 1).unwrap_err().to_string();
    assert!(
        err.contains("dev-test=3 leaves no training images")
            && err.contains(&dir.path().display().to_string()),
        "{err}"
    );
}

#[test]
fn corrupt_idx_header_and_truncation_are_reported() {
    let labels = idx::encode(&[2], &[0, 1]);
    let mut bad_magic = idx::encode(&[2, 2, 2], &[0; 8]);
    bad_magic[2] = 9;
    let dir = mnist_dir(&bad_magic, &labels);
    let spec = DataSpec::mnist(dir.path());
    let err = load(&spec, 1).unwrap_err().to_string();
    assert!(
        err.contains("train-images-idx3-ubyte.gz: corrupt IDX header: magic 0x00000903"),
        "{err}"
    );

    let dir = mnist_dir(&idx::encode(&[2, 2, 2], &[0; 5]), &labels);
    let spec = DataSpec::mnist(dir.path());
    let err = load(&spec, 1).unwrap_err().to_string();
    assert!(
        err.contains("header says [2, 2, 2] = 8 bytes of data but the file has 5"),
        "{err}"
    );
}

#[test]
fn missing_file_is_named() {
    let spec = DataSpec::mnist("/nonexistent/dir");
    let err = load(&spec, 1).unwrap_err().to_string();
    assert!(
        err.starts_with("/nonexistent/dir/train-images-idx3-ubyte.gz: "),
        "{err}"
    );
}

#[test]
fn standardization_is_fitted_on_train() {
    let d = Dataset {
        name: "t".into(),
        sample_shape: vec![2],
        features: vec![1.0, 5.0, 3.0, 5.0],
        labels: vec![0, 1],
        class_names: vec!["0".into(), "1".into()],
    };
    let p = standardize(&d);
    let x = p.apply(&[1.0, 5.0]);
    assert!((x[0] + 1.0).abs() < 1e-6, "{x:?}");
    assert_eq!(x[1], 0.0, "constant feature maps to 0");
}
