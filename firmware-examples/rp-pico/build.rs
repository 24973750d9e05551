#[path = "../imu-pipeline/board_build.rs"]
mod board_build;

fn main() {
    board_build::main();
}
