//! An in-memory driver that runs both sides of a PSI job in one thread.
//!
//! Used by tests (with a hook that can tamper with, drop or replay frames in flight) and as the
//! reference for how a transport drives [`PsiSession`]: deliver incoming frames, push local
//! items while the session wants them, send whatever comes out, stop at `is_done` or an error.

use crate::ecdh::{PsiConfig, PsiOutput, PsiSession};
use crate::error::PsiError;
use std::collections::VecDeque;

/// One party's input.
#[derive(Debug, Clone, Copy)]
pub struct PartyInput<'a> {
    /// Items in input order.
    pub items: &'a [Vec<u8>],
    /// Values aligned with `items` (value holder of `IntersectionSum` only).
    pub values: Option<&'a [u32]>,
}

/// What the network does to a frame in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Deliver as is (possibly after the hook modified it).
    Deliver,
    /// Lose it.
    Drop,
    /// Deliver it twice.
    Duplicate,
}

/// Outcome of one party.
pub type PartyResult = Result<PsiOutput, PsiError>;

/// Runs a job between two parties with a perfect network.
pub fn run_pair(
    a: PsiConfig,
    a_input: PartyInput<'_>,
    b: PsiConfig,
    b_input: PartyInput<'_>,
) -> (PartyResult, PartyResult) {
    run_pair_with(a, a_input, b, b_input, |_, _, _| Delivery::Deliver)
}

/// Runs a job; `network(sender, index, frame)` sees every frame (`sender` 0 or 1, `index`
/// counting that sender's frames from 0) and may modify, drop or duplicate it.
pub fn run_pair_with(
    a: PsiConfig,
    a_input: PartyInput<'_>,
    b: PsiConfig,
    b_input: PartyInput<'_>,
    mut network: impl FnMut(usize, usize, &mut Vec<u8>) -> Delivery,
) -> (PartyResult, PartyResult) {
    let inputs = [a_input, b_input];
    let mut sessions = Vec::with_capacity(2);
    let mut queues: [VecDeque<Vec<u8>>; 2] = [VecDeque::new(), VecDeque::new()];
    let mut results: [Option<PartyResult>; 2] = [None, None];
    for (i, config) in [a, b].into_iter().enumerate() {
        match PsiSession::new(config) {
            Ok((session, hello)) => {
                sessions.push(Some(session));
                queues[1 - i].push_back(hello);
            }
            Err(e) => {
                sessions.push(None);
                results[i] = Some(Err(e));
            }
        }
    }
    let mut sent = [0usize; 2];
    let mut cursor = [0usize; 2];
    let mut send = |from: usize, frames: Vec<Vec<u8>>, queues: &mut [VecDeque<Vec<u8>>; 2]| {
        for mut frame in frames {
            let index = sent[from];
            sent[from] += 1;
            match network(from, index, &mut frame) {
                Delivery::Deliver => queues[1 - from].push_back(frame),
                Delivery::Drop => {}
                Delivery::Duplicate => {
                    queues[1 - from].push_back(frame.clone());
                    queues[1 - from].push_back(frame);
                }
            }
        }
    };
    // Hellos were queued directly; route them through the hook too.
    for i in 0..2 {
        if let Some(hello) = queues[1 - i].pop_front() {
            send(i, vec![hello], &mut queues);
        }
    }
    loop {
        let mut progress = false;
        for i in 0..2 {
            let Some(session) = sessions[i].as_mut() else {
                continue;
            };
            if results[i].is_some() {
                queues[i].clear();
                continue;
            }
            while let Some(frame) = queues[i].pop_front() {
                progress = true;
                match session.handle_frame(&frame) {
                    Ok(out) => send(i, out, &mut queues),
                    Err(e) => {
                        if let Some(abort) = session.take_abort_frame() {
                            send(i, vec![abort], &mut queues);
                        }
                        results[i] = Some(Err(e));
                        break;
                    }
                }
                if session.is_done() {
                    break;
                }
            }
            if results[i].is_none() && session.wants_items() {
                progress = true;
                let input = inputs[i];
                let n = session.batch_size().min(session.items_remaining() as usize);
                let end = (cursor[i] + n).min(input.items.len());
                let items = &input.items[cursor[i]..end];
                let pushed = match input.values.map(|v| v.get(cursor[i]..end)) {
                    Some(Some(values)) => session.push_valued_items(items, values),
                    Some(None) => Err(PsiError::Usage("fewer values than items")),
                    None => session.push_items(items),
                };
                cursor[i] = end;
                match pushed {
                    Ok(out) => send(i, out, &mut queues),
                    Err(e) => {
                        if let Some(abort) = session.take_abort_frame() {
                            send(i, vec![abort], &mut queues);
                        }
                        results[i] = Some(Err(e));
                    }
                }
            }
            if results[i].is_none() && session.is_done() {
                results[i] = session.output().cloned().map(Ok);
            }
        }
        if !progress {
            break;
        }
    }
    let finish = |r: Option<PartyResult>| {
        r.unwrap_or(Err(PsiError::Unexpected {
            got: "end of traffic",
            state: "unfinished",
        }))
    };
    let [ra, rb] = results;
    (finish(ra), finish(rb))
}
