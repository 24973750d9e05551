//! CSV datasets: one sample a line, numeric features, the label in the last column (or a named one).
//! Accepted headers: none; a row of column names; or scikit-learn's
//! `n_samples,n_features,class_name,…` line, which also fixes the class names.
//!
//! Parsed by hand rather than with the `csv` crate: the files are plain comma-separated numbers
//! (no quoting), and the errors must name the line and column in the user's terms.

use super::{read_maybe_gz, DataError, Dataset};
use std::path::Path;

enum Header {
    None,
    Columns(Vec<String>),
    Sklearn(Vec<String>),
}

fn is_number(s: &str) -> bool {
    s.trim().parse::<f64>().is_ok()
}

/// `rest` is the number of non-empty lines after the first; `next_width` the field count of the
/// second line. scikit-learn's header is recognised only when its counts agree with the file, so a
/// data row such as `1,2,T` (two features, a text label) is not mistaken for one.
fn detect_header(first: &[&str], rest: usize, next_width: Option<usize>) -> Header {
    let uint = |s: &str| s.trim().parse::<usize>().ok();
    if let (Some(n_samples), Some(n_features)) =
        (uint(first[0]), first.get(1).and_then(|f| uint(f)))
    {
        if first.len() >= 3
            && n_samples == rest
            && next_width == Some(n_features + 1)
            && first[2..]
                .iter()
                .all(|f| !f.trim().is_empty() && !is_number(f))
        {
            return Header::Sklearn(first[2..].iter().map(|s| s.trim().to_string()).collect());
        }
    }
    // A row of names: every field but possibly the label is non-numeric.
    let non_numeric = first.iter().filter(|f| !is_number(f)).count();
    if non_numeric >= first.len().saturating_sub(1) && non_numeric > 1 {
        return Header::Columns(first.iter().map(|s| s.trim().to_string()).collect());
    }
    Header::None
}

pub fn parse_csv_bytes(
    raw: &[u8],
    path: &Path,
    name: &str,
    label_column: Option<&str>,
) -> Result<Dataset, DataError> {
    let fail = |p: String| DataError::file(path, p);
    let bytes = read_maybe_gz(raw, path)?;
    let text = std::str::from_utf8(&bytes).map_err(|e| fail(format!("not UTF-8 text: {e}")))?;
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty())
        .collect();
    let Some(&(first_no, first)) = lines.first() else {
        return Err(fail("empty file: no samples".into()));
    };
    let first_fields: Vec<&str> = first.split(',').collect();
    let next_width = lines.get(1).map(|(_, l)| l.split(',').count());
    let header = detect_header(&first_fields, lines.len() - 1, next_width);
    let mut rows: Vec<(usize, Vec<&str>)> = Vec::new();
    if matches!(header, Header::None) {
        rows.push((first_no, first_fields));
    }
    rows.extend(lines[1..].iter().map(|&(n, l)| (n, l.split(',').collect())));
    let Some((_, row0)) = rows.first() else {
        return Err(fail("no samples after the header".into()));
    };
    let width = row0.len();
    if width < 2 {
        return Err(fail(format!(
            "line {first_no}: need at least one feature and a label"
        )));
    }
    let label_idx = match (label_column, &header) {
        (None, _) => width - 1,
        (Some(col), Header::Columns(names)) => match names.iter().position(|n| n == col) {
            Some(i) => i,
            None => col.parse::<usize>().map_err(|_| {
                fail(format!(
                    "no column named {col:?} (columns: {})",
                    names.join(", ")
                ))
            })?,
        },
        (Some(col), _) => col.parse::<usize>().map_err(|_| {
            fail(format!(
                "label column {col:?}: the file has no header, give a column number"
            ))
        })?,
    };
    if label_idx >= width {
        return Err(fail(format!(
            "label column {label_idx} is out of range: rows have {width} fields"
        )));
    }

    let mut features = Vec::with_capacity(rows.len() * (width - 1));
    let mut raw_labels = Vec::with_capacity(rows.len());
    for (line_no, fields) in &rows {
        if fields.len() != width {
            return Err(fail(format!(
                "line {line_no} has {} fields, expected {width} (ragged row)",
                fields.len()
            )));
        }
        for (c, f) in fields.iter().enumerate() {
            if c == label_idx {
                raw_labels.push((*line_no, f.trim()));
                continue;
            }
            let v: f32 = f.trim().parse().map_err(|_| {
                fail(format!(
                    "line {line_no}, column {}: {f:?} is not a number",
                    c + 1
                ))
            })?;
            if !v.is_finite() {
                return Err(fail(format!(
                    "line {line_no}, column {}: {f:?} is not finite",
                    c + 1
                )));
            }
            features.push(v);
        }
    }

    let (labels, class_names) = resolve_labels(&raw_labels, &header).map_err(fail)?;
    Ok(Dataset {
        name: name.into(),
        sample_shape: vec![width - 1],
        features,
        labels,
        class_names,
    })
}

/// Integer labels index the header's class names (or 0..=max); text labels become sorted classes.
fn resolve_labels(
    raw: &[(usize, &str)],
    header: &Header,
) -> Result<(Vec<u32>, Vec<String>), String> {
    let all_int = raw.iter().all(|(_, l)| l.parse::<i64>().is_ok());
    if !all_int {
        if let Header::Sklearn(_) = header {
            let (n, l) = raw.iter().find(|(_, l)| l.parse::<i64>().is_err()).unwrap();
            return Err(format!("line {n}: label {l:?} is not a class index"));
        }
        let mut names: Vec<String> = raw.iter().map(|(_, l)| l.to_string()).collect();
        names.sort();
        names.dedup();
        let labels = raw
            .iter()
            .map(|(_, l)| names.iter().position(|n| n == l).unwrap() as u32)
            .collect();
        return Ok((labels, names));
    }
    let ints: Vec<(usize, i64)> = raw.iter().map(|(n, l)| (*n, l.parse().unwrap())).collect();
    let class_names = match header {
        Header::Sklearn(names) => names.clone(),
        _ => {
            let max = ints.iter().map(|&(_, v)| v).max().unwrap_or(0).max(0);
            (0..=max).map(|c| c.to_string()).collect()
        }
    };
    let n_classes = class_names.len() as i64;
    if let Some((n, v)) = ints.iter().find(|&&(_, v)| v < 0 || v >= n_classes) {
        return Err(format!(
            "line {n}: label {v} is out of range for {n_classes} classes (0..{})",
            n_classes - 1
        ));
    }
    Ok((ints.iter().map(|&(_, v)| v as u32).collect(), class_names))
}
