//! Feeds arbitrary frames to live sessions (both roles, after a genuine hello): any input
//! must end in an error or a valid transition, never a panic, and a failed session must not
//! release an output.
#![no_main]
use libfuzzer_sys::fuzz_target;
use psi::{JobManifest, PartySpec, PsiConfig, PsiMode, PsiSession};

fn config(party: &str, mode: PsiMode) -> PsiConfig {
    PsiConfig {
        manifest: JobManifest {
            job_id: "fuzz".into(),
            parties: [
                PartySpec { id: "a".into(), max_set_size: 4 },
                PartySpec { id: "b".into(), max_set_size: 4 },
            ],
            receiver: "a".into(),
            mode,
            min_release_size: 0,
        },
        local_party: party.into(),
        session_id: [1; 16],
        set_size: 2,
        seed: [2; 32],
        batch_size: 2,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let mode = [PsiMode::Intersection, PsiMode::IntersectionBoth, PsiMode::Cardinality, PsiMode::IntersectionSum]
        [usize::from(selector % 4)];
    let Ok((mut a, hello_a)) = PsiSession::new(config("a", mode)) else { return };
    let Ok((mut b, hello_b)) = PsiSession::new(config("b", mode)) else { return };
    let (target, peer_hello) = if selector & 0x80 == 0 { (&mut a, hello_b) } else { (&mut b, hello_a) };
    if selector & 0x40 != 0 {
        let _ = target.handle_frame(&peer_hello);
    }
    for frame in rest.split(|&b| b == 0xA5).take(8) {
        if target.handle_frame(frame).is_err() {
            assert!(target.output().is_none());
            break;
        }
    }
});
