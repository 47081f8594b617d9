//! OPRF message decoders, and evaluation of arbitrary decoded queries.
#![no_main]
use libfuzzer_sys::fuzz_target;
use psi::oprf::{OprfServer, PointBatch, PublishedSet};

fuzz_target!(|data: &[u8]| {
    if let Ok(set) = PublishedSet::decode(data) {
        assert_eq!(set.encode(), data);
    }
    if let Ok(batch) = PointBatch::decode(data) {
        assert_eq!(batch.encode(), data);
        let server = OprfServer::new(b"fuzz", [0; 32], 64);
        let _ = server.evaluate(&batch);
    }
});
