//! Audit-log decoder: anything accepted verifies and re-encodes identically.
#![no_main]
use libfuzzer_sys::fuzz_target;
use psi::audit::AuditLog;

fuzz_target!(|data: &[u8]| {
    if let Ok(log) = AuditLog::decode(data) {
        assert!(AuditLog::verify(log.entries()).is_ok());
        assert_eq!(log.encode(), data);
    }
});
