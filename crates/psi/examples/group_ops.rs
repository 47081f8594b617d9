//! Per-operation cost of the ristretto255 pipeline on this machine (single thread), to see
//! where ECDH-PSI time goes. `cargo run --release -p psi --example group_ops`.

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use psi::group::{ItemHasher, MaskKey, TagHasher};
use std::time::Instant;

fn cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    (f.get(10).copied().unwrap_or(0.0) + f.get(11).copied().unwrap_or(0.0)) / 100.0
}

fn time<T>(name: &str, n: usize, f: impl FnOnce() -> T) -> T {
    let (c0, w0) = (cpu(), Instant::now());
    let out = f();
    let (c, w) = (cpu() - c0, w0.elapsed().as_secs_f64());
    println!(
        "{name:<40} {:>8.2} µs/op cpu  {:>8.2} µs/op wall",
        c * 1e6 / n as f64,
        w * 1e6 / n as f64
    );
    out
}

fn main() {
    let n = 1 << 15;
    let items: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("user{i:012}").into_bytes())
        .collect();
    let hasher = ItemHasher::new(b"bench");
    let key = MaskKey::from_wide_bytes([9; 64]);
    let scalar = Scalar::from_bytes_mod_order_wide(&[5; 64]);
    let points: Vec<RistrettoPoint> = time("hash-to-group (blake3 xof + 2x elligator)", n, || {
        items.iter().map(|x| hasher.hash(x)).collect()
    });
    let _: Vec<RistrettoPoint> = time("variable-base scalar mul", n, || {
        points.iter().map(|p| p * scalar).collect()
    });
    let enc: Vec<[u8; 32]> = time("mul + batched double-and-compress", n, || {
        key.mul_compress(&points)
    });
    {
        // Option (b) of docs/bench-psi.md: the x-only Montgomery ladder (X25519-style).
        use curve25519_dalek::montgomery::MontgomeryPoint;
        let us: Vec<MontgomeryPoint> = (0..n as u64)
            .map(|i| MontgomeryPoint::mul_base(&Scalar::from(i + 7)))
            .collect();
        let _: Vec<MontgomeryPoint> =
            time("x-only ladder (MontgomeryPoint::mul_clamped)", n, || {
                us.iter().map(|u| u.mul_clamped([0x55; 32])).collect()
            });
    }
    let _: Vec<[u8; 32]> = time("compress (one by one)", n, || {
        points.iter().map(|p| p.compress().to_bytes()).collect()
    });
    let dec: Vec<RistrettoPoint> = time("decompress", n, || {
        enc.iter()
            .map(|e| CompressedRistretto(*e).decompress().unwrap_or_default())
            .collect()
    });
    let _ = time("batched double-and-compress alone", n, || {
        RistrettoPoint::double_and_compress_batch(&dec)
    });
    let tags = TagHasher::new(b"bench", 11);
    let _: Vec<u128> = time("comparison tag (blake3)", n, || {
        enc.iter().map(|e| tags.tag(e)).collect()
    });
    let _ = time(
        "full first round (group::hash_and_mask, all threads)",
        n,
        || psi::group::hash_and_mask(&hasher, &key, &items),
    );
    let _ = time(
        "full second round (group::remask_to_tags, all threads)",
        n,
        || psi::group::remask_to_tags(&key, &tags, &enc),
    );

    // The X25519 pipeline that ECDH-PSI uses (protocol version 2).
    println!("x25519 backend: {}", psi::x25519::backend());
    let xh = psi::x25519::PointHasher::new(b"bench");
    let xk = psi::x25519::MaskKey::from_bytes([9; 32]);
    let us: Vec<[u8; 32]> = time("x25519 hash-to-u (blake3)", n, || {
        items.iter().map(|x| xh.hash(x)).collect()
    });
    let xs = time("x25519 mask, one thread (fast backend)", n, || xk.mask(&us));
    let small = &us[..n / 16];
    let _ = time("x25519 mask, one thread (portable dalek)", n / 16, || {
        xk.mask_portable(small)
    });
    let _ = time("x25519 full first round (all threads)", n, || {
        psi::x25519::hash_and_mask(&xh, &xk, &items)
    });
    let _ = time("x25519 full second round (all threads)", n, || {
        psi::x25519::remask_to_tags(&xk, &tags, &xs)
    });
}
