//! `citybrain admin handle`: home a prefix, import and export batch files, as users run it.

use std::process::Command;

fn citybrain() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_citybrain"));
    for (key, _) in std::env::vars() {
        if key.starts_with("CITYBRAIN_") {
            command.env_remove(key);
        }
    }
    command
}

fn run(data: &str, args: &[&str]) -> (i32, String, String) {
    let output = citybrain()
        .args(["admin", "--data-dir", data, "handle"])
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

const SECRET: &str = "s3cret-never-printed";

#[test]
fn home_prefix_import_export_round_trip_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let secret = secret.to_str().unwrap();

    // Usage errors: neither key option, then an unknown prefix on export.
    let (code, _, err) = run(data, &["home-prefix", "21.T998"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = run(data, &["export", "21.T998"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown prefix 21.T998"), "{err}");
    let (code, _, err) = run(
        data,
        &["home-prefix", "21.T998", "--secret-file", "/nonexistent/s"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("/nonexistent/s"), "{err}");

    // Home the prefix with a secret key.
    let (code, out, err) = run(data, &["home-prefix", "21.T998", "--secret-file", secret]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("300:21.T998/ADMIN") && out.contains("HS_SECKEY"),
        "{out}"
    );
    assert!(!out.contains(SECRET) && !err.contains(SECRET));

    // Export to stdout leaves the secret out; the admin handle is there.
    let (code, out, err) = run(data, &["export", "21.T998"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("CREATE 0.NA/21.T998\n"), "{out}");
    assert!(out.contains("CREATE 21.T998/ADMIN\n"), "{out}");
    assert!(
        out.contains("100 HS_ADMIN 86400 1110 ADMIN 300:111111111111:21.T998/ADMIN"),
        "{out}"
    );
    assert!(!out.contains("HS_SECKEY") && !out.contains(SECRET), "{out}");
    assert!(err.contains("1 HS_SECKEY value(s) left out"), "{err}");

    // A prefix for a handle that is not homed is refused before anything is written.
    let foreign = dir.path().join("foreign.txt");
    std::fs::write(
        &foreign,
        "CREATE 21.T998/ok\n1 URL 86400 1110 UTF8 https://example.org/ok\n\n\
         CREATE 21.T997/x\n1 URL 86400 1110 UTF8 https://example.org/x\n\n",
    )
    .unwrap();
    let (code, _, err) = run(data, &["import", foreign.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown prefix 21.T997"), "{err}");
    let (_, out, _) = run(data, &["export", "21.T998"]);
    assert!(!out.contains("21.T998/ok"), "nothing written: {out}");

    // Import a small batch.
    let batch = dir.path().join("batch.txt");
    std::fs::write(
        &batch,
        "AUTHENTICATE SECKEY:300:21.T998/ADMIN\nignored\n\
         CREATE 21.T998/obj-1\n\
         100 HS_ADMIN 86400 1110 ADMIN 300:111111111111:21.T998/ADMIN\n\
         1 URL 86400 1110 UTF8 https://example.org/obj-1\n\n\
         CREATE 21.T998/obj-2\n\
         100 HS_ADMIN 86400 1110 ADMIN 300:111111111111:21.T998/ADMIN\n\
         1 URL 86400 1110 UTF8 https://example.org/obj-2\n\
         2 EMAIL 3600 1110 UTF8 ops@example.org\n\n\
         ADD 21.T998/obj-1\n\
         2 DESC 86400 1110 UTF8 first object\n\n\
         REMOVE 2:21.T998/obj-2\n",
    )
    .unwrap();
    let (code, out, err) = run(data, &["import", batch.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("5 commands, 4 changes"), "{out}");

    // Export with secrets to a file; import it into a fresh data directory; export again.
    let exported = dir.path().join("export.txt");
    let (code, _, err) = run(
        data,
        &[
            "export",
            "21.T998",
            "--out",
            exported.to_str().unwrap(),
            "--include-secrets",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let first = std::fs::read_to_string(&exported).unwrap();
    assert!(
        first.contains("1 URL 86400 1110 UTF8 https://example.org/obj-1"),
        "{first}"
    );
    assert!(
        first.contains("2 DESC 86400 1110 UTF8 first object"),
        "{first}"
    );
    assert!(!first.contains("EMAIL"), "removed value exported: {first}");
    assert!(
        first.contains(&format!("HS_SECKEY 86400 1100 UTF8 {SECRET}")),
        "{first}"
    );

    let fresh = dir.path().join("fresh");
    let fresh = fresh.to_str().unwrap();
    let (code, out, err) = run(fresh, &["import", exported.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let again = dir.path().join("again.txt");
    let (code, _, err) = run(
        fresh,
        &[
            "export",
            "21.T998",
            "--out",
            again.to_str().unwrap(),
            "--include-secrets",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(first, std::fs::read_to_string(&again).unwrap());

    // Importing the same handles again fails: CREATE does not overwrite.
    let (code, _, err) = run(fresh, &["import", exported.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains("command 1 failed"), "{err}");

    // A malformed value line is reported with its line number; nothing is written.
    let bad = dir.path().join("bad.txt");
    std::fs::write(
        &bad,
        "CREATE 21.T998/obj-3\n1 URL 86400 1110 UTF8 https://example.org/3\n2 URL notanumber 1110 UTF8 x\n\n",
    )
    .unwrap();
    let (code, _, err) = run(data, &["import", bad.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("line 3"), "{err}");
    let (_, out, _) = run(data, &["export", "21.T998"]);
    assert!(!out.contains("obj-3"), "{out}");

    // Writes are in the identity audit log.
    let output = citybrain()
        .args(["admin", "--data-dir", data, "audit", "--json"])
        .output()
        .unwrap();
    let audit = String::from_utf8_lossy(&output.stdout);
    for action in ["handle.prefix.home", "handle.import", "handle.export"] {
        assert!(audit.contains(action), "{action} missing: {audit}");
    }
    assert!(!audit.contains(SECRET));
}

#[test]
fn home_prefix_with_an_ed25519_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]).verifying_key();
    let hex_file = dir.path().join("key.hex");
    std::fs::write(&hex_file, format!("{}\n", hex::encode(key.as_bytes()))).unwrap();
    let (code, out, err) = run(
        data,
        &[
            "home-prefix",
            "21.T996",
            "--pubkey",
            hex_file.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("HS_PUBKEY"), "{out}");
    let (_, out, _) = run(data, &["export", "21.T996"]);
    assert!(out.contains("300 HS_PUBKEY"), "{out}");

    let garbage = dir.path().join("garbage");
    std::fs::write(&garbage, "not a key\n").unwrap();
    let (code, _, err) = run(
        data,
        &[
            "home-prefix",
            "21.T995",
            "--pubkey",
            garbage.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not an Ed25519 public key"), "{err}");
}
