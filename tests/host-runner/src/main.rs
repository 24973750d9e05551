//! Host side of the bit-exactness check: the same generated model crate and `bonsai-rt` the
//! firmware runs, compiled for the host. Reads a BVEC test-vector file (see
//! `compiler/src/vectors.rs`) and prints `OUT <index> <hex>` per vector, as the firmware does.

use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: host-runner VECTORS.bin");
        return ExitCode::from(2);
    };
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::from(2);
        }
    };
    let word = |i: usize| u32::from_le_bytes(bytes[4 * i..4 * i + 4].try_into().unwrap()) as usize;
    if bytes.len() < 16 || &bytes[..4] != b"BVEC" || word(1) != 1 {
        eprintln!("{path}: not a BVEC version 1 file");
        return ExitCode::from(2);
    }
    let (n, len) = (word(2), word(3));
    if len != bonsai_model::INPUT_LEN || bytes.len() != 16 + n * len {
        eprintln!(
            "{path}: {n} vectors of {len} values do not fit a model of {} inputs",
            bonsai_model::INPUT_LEN
        );
        return ExitCode::from(3);
    }
    let mut arena = [0u8; bonsai_model::ARENA_BYTES];
    let mut output = [0i8; bonsai_model::OUTPUT_LEN];
    for (i, chunk) in bytes[16..].chunks_exact(len).enumerate() {
        let mut input = [0i8; bonsai_model::INPUT_LEN];
        for (d, &s) in input.iter_mut().zip(chunk) {
            *d = s as i8;
        }
        bonsai_model::infer(&input, &mut output, &mut arena);
        let hex: String = output.iter().map(|&v| format!("{:02x}", v as u8)).collect();
        println!("OUT {i} {hex}");
    }
    println!("DONE {n}");
    ExitCode::SUCCESS
}
