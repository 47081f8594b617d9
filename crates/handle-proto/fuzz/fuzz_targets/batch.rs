#![no_main]
//! The genericbatch text format: parse, print, parse again gives the same commands.
use handle_proto::batch::{parse_batch, print_batch};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(cmds) = parse_batch(text, 0, |_| Some(vec![1, 2, 3])) {
        let printed = print_batch(&cmds);
        let again = parse_batch(&printed, 0, |_| None).expect("printed batch parses");
        assert_eq!(again.len(), cmds.len());
    }
});
