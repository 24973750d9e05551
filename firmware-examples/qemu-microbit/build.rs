#[path = "../fw-common/build_support.rs"]
mod build_support;

fn main() {
    build_support::main();
}
