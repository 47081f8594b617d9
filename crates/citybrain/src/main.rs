//! The `citybrain` binary (skeleton; the foundation issue fills it in).

fn main() {
    println!("citybrain {}", env!("CARGO_PKG_VERSION"));
}
