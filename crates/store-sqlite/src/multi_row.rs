//! Multi-row statements: the rows of one write go in as few statements as possible (one
//! statement per 32 rows for a batch), so the per-statement cost of SQLite (binding, the VDBE
//! program's prologue, the reset) is paid once per chunk instead of once per row.

use crate::engine::backend;
use rusqlite::{CachedStatement, Connection};
use store::StoreResult;

/// Rows per statement, largest first: `n` rows go in chunks of these sizes (7 rows: 4 + 3),
/// so at most seven distinct statements per kind of row stay prepared. Three is there for
/// single writes: an entity of three attributes (a common size, and the benchmark's) records
/// three instances, which took two statements (2 + 1), each paying SQLite's per-statement
/// cost again on the writer.
pub(crate) const CHUNKS: [usize; 7] = [32, 16, 8, 4, 3, 2, 1];

/// The statements of one kind of multi-row insert: `head`, then the row placeholders
/// `row` repeated and separated by commas, then `tail` (e.g. an `ON CONFLICT` clause).
///
/// `head` must be `INSERT OR FAIL INTO ...`. A multi-row statement that may abort half-way
/// makes SQLite copy every page it touches into a statement journal first, so that it can
/// undo its own earlier rows. Every write job already runs inside a savepoint, or a run the
/// writer rolls back and re-runs when one of its jobs fails (`engine.rs`), so that undo is
/// redundant. With `OR FAIL` a failing row stops the statement without the journal, and the
/// job's error undoes the rest (profiled: the journal was about 5% of the writer's time in
/// batches).
pub(crate) struct MultiRow {
    sql: [String; CHUNKS.len()],
    params: usize,
}

impl MultiRow {
    /// `row` uses anonymous `?` placeholders, one per bound value.
    pub(crate) fn new(head: &str, row: &str, tail: &str) -> Self {
        debug_assert!(head.starts_with("INSERT OR FAIL INTO "), "{head}");
        Self {
            sql: CHUNKS.map(|n| format!("{head} {} {tail}", vec![row; n].join(", "))),
            params: row.matches('?').count(),
        }
    }

    /// Inserts `rows`; `bind(stmt, first, row)` binds one row's values from position `first`.
    pub(crate) fn run<T>(
        &self,
        conn: &Connection,
        rows: &[T],
        bind: impl FnMut(&mut CachedStatement<'_>, usize, &T) -> rusqlite::Result<()>,
    ) -> StoreResult<()> {
        self.run_then(conn, rows, bind, |_, _| Ok(()))
    }

    /// [`MultiRow::run`], telling `then` after each statement which of `rows` it carried (so
    /// it can read the statement's `changes()` and `last_insert_rowid()`).
    pub(crate) fn run_then<T>(
        &self,
        conn: &Connection,
        rows: &[T],
        mut bind: impl FnMut(&mut CachedStatement<'_>, usize, &T) -> rusqlite::Result<()>,
        mut then: impl FnMut(&Connection, std::ops::Range<usize>) -> StoreResult<()>,
    ) -> StoreResult<()> {
        let mut start = 0;
        let mut statements = Statements::default();
        for (size, chunk) in chunks(rows) {
            let stmt = statements.get(conn, size, &self.sql[size])?;
            for (n, row) in chunk.iter().enumerate() {
                bind(stmt, 1 + n * self.params, row).map_err(backend)?;
            }
            stmt.raw_execute().map_err(backend)?;
            then(conn, start..start + chunk.len())?;
            start += chunk.len();
        }
        Ok(())
    }
}

/// The statements of one multi-row run, one per chunk size, each taken from the
/// connection's cache once and used for every chunk of its size. Taking a statement from
/// rusqlite's cache copies and hashes its text and putting it back hashes it again and clears
/// every binding; with a statement per 32 rows that was about a tenth of the writer's
/// instructions in batch upserts (callgrind). Executing a statement resets it, and every
/// chunk binds all of its parameters, so a reused statement carries nothing over.
#[derive(Default)]
pub(crate) struct Statements<'conn> {
    by_size: [Option<CachedStatement<'conn>>; CHUNKS.len()],
}

impl<'conn> Statements<'conn> {
    /// The statement for chunks of size index `size`, whose text is `sql`.
    pub(crate) fn get(
        &mut self,
        conn: &'conn Connection,
        size: usize,
        sql: &str,
    ) -> StoreResult<&mut CachedStatement<'conn>> {
        match &mut self.by_size[size] {
            Some(stmt) => Ok(stmt),
            slot @ None => Ok(slot.insert(conn.prepare_cached(sql).map_err(backend)?)),
        }
    }
}

/// `rows` in consecutive chunks of the sizes in [`CHUNKS`], largest first, each with the
/// index of its size in [`CHUNKS`] (which statement of a kind carries it). The chunks cover
/// every row, since the smallest size is 1.
pub(crate) fn chunks<T>(mut rows: &[T]) -> impl Iterator<Item = (usize, &[T])> {
    let mut size = 0;
    std::iter::from_fn(move || {
        while size < CHUNKS.len() && rows.len() < CHUNKS[size] {
            size += 1;
        }
        if size == CHUNKS.len() {
            return None;
        }
        let (chunk, rest) = rows.split_at(CHUNKS[size]);
        rows = rest;
        Some((size, chunk))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_every_row_largest_first() {
        let rows: Vec<u32> = (0..45).collect();
        let got: Vec<(usize, usize, u32)> = chunks(&rows)
            .map(|(size, chunk)| (CHUNKS[size], chunk.len(), chunk[0]))
            .collect();
        assert_eq!(got, [(32, 32, 0), (8, 8, 32), (4, 4, 40), (1, 1, 44)]);
        assert_eq!(chunks::<u32>(&[]).count(), 0);
        let many: Vec<u32> = (0..70).collect();
        let sizes: Vec<usize> = chunks(&many).map(|(_, c)| c.len()).collect();
        assert_eq!(sizes, [32, 32, 4, 2]);
        for (n, want) in [
            (3, vec![3]),
            (5, vec![4, 1]),
            (7, vec![4, 3]),
            (15, vec![8, 4, 3]),
        ] {
            let rows: Vec<u32> = (0..n).collect();
            let sizes: Vec<usize> = chunks(&rows).map(|(_, c)| c.len()).collect();
            assert_eq!(sizes, want, "{n} rows");
        }
    }
}
