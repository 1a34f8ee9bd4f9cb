//! Reads: one entry, every entry, pending ids, merged journal objects, status.

use super::*;

/// A RocksDB key and its value.
pub(crate) type KeyValue = (Box<[u8]>, Box<[u8]>);

impl ErasureStore {
    /// One id's entry, `None` when not listed.
    ///
    /// # Errors
    /// Invalid id, read failure, a dangling batch reference.
    pub fn get(&self, raw: &str) -> Result<Option<EntryInfo>, StoreError> {
        let c = normalize(self.subject_type, raw).map_err(StoreError::InvalidId)?;
        let Some(v) = self.db.get(entry_key(&c)).map_err(|e| self.io("read", e))? else {
            return Ok(None);
        };
        let seq = self.seq_of(&v)?;
        let record = self.batch_record(seq)?;
        let journaled = self
            .db
            .get(pending_key(seq))
            .map_err(|e| self.io("read", e))?
            .is_none();
        Ok(Some(EntryInfo {
            subject: c,
            added_at: record.added_at,
            reference: record.reference,
            origin: record.origin,
            journaled,
        }))
    }

    pub(super) fn seq_of(&self, v: &[u8]) -> Result<u64, StoreError> {
        let b: [u8; 8] = v
            .try_into()
            .map_err(|_| self.corrupt("an entry has a malformed batch reference"))?;
        Ok(u64::from_be_bytes(b))
    }

    pub(super) fn batch_record(&self, seq: u64) -> Result<BatchRecord, StoreError> {
        let raw = self
            .db
            .get(batch_key(seq))
            .map_err(|e| self.io("read", e))?
            .ok_or_else(|| self.corrupt(format!("batch record {seq} is missing")))?;
        serde_json::from_slice(&raw)
            .map_err(|e| self.corrupt(format!("batch record {seq} is not valid: {e}")))
    }

    /// An iterator over every key with `prefix`, in key order, on a consistent snapshot.
    pub(crate) fn scan(
        &self,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<KeyValue, StoreError>> + '_ {
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(upper_bound(prefix));
        ro.fill_cache(false);
        ro.set_readahead_size(2 << 20);
        let plen = prefix.len();
        self.db
            .iterator_opt(IteratorMode::From(prefix, Direction::Forward), ro)
            .map(move |r| {
                r.map(|(k, v)| (k[plen..].into(), v))
                    .map_err(|e| StoreError::Io {
                        path: self.path.clone(),
                        op: "scan",
                        message: e.to_string(),
                    })
            })
    }

    /// Calls `f` with every entry, in canonical-id byte order.
    ///
    /// # Errors
    /// Read failure or a corrupt record; whatever `f` returns.
    pub fn for_each_entry(
        &self,
        mut f: impl FnMut(EntryInfo) -> Result<(), StoreError>,
    ) -> Result<u64, StoreError> {
        let mut records: std::collections::HashMap<u64, BatchRecord> =
            std::collections::HashMap::new();
        // Batches still pending (few: each is one record).
        let mut pending = HashSet::new();
        for item in self.scan(P_PENDING) {
            pending.insert(self.seq_of(&item?.0)?);
        }
        let mut n = 0;
        for item in self.scan(P_ENTRY) {
            let (k, v) = item?;
            let seq = self.seq_of(&v)?;
            if let std::collections::hash_map::Entry::Vacant(e) = records.entry(seq) {
                e.insert(self.batch_record(seq)?);
            }
            let record = &records[&seq];
            let subject = String::from_utf8(k.to_vec())
                .map_err(|_| self.corrupt("an entry key is not UTF-8"))?;
            let journaled = !pending.contains(&seq);
            f(EntryInfo {
                subject,
                added_at: record.added_at,
                reference: record.reference.clone(),
                origin: record.origin.clone(),
                journaled,
            })?;
            n += 1;
        }
        Ok(n)
    }

    /// Calls `f` with every entry in the order of the list's type: bigint
    /// ids numerically (`-5`, `0`, `7`, `10`), uuid and text ids in byte
    /// order (their canonical form's order), each named subject's ids
    /// together after the unnamed ones, names in byte order. A bigint list
    /// is sorted in memory (24 bytes per entry, plus its subject names).
    ///
    /// # Errors
    /// Read failure or a corrupt record; whatever `f` returns.
    pub fn for_each_entry_ordered(
        &self,
        mut f: impl FnMut(EntryInfo) -> Result<(), StoreError>,
    ) -> Result<u64, StoreError> {
        if self.subject_type != SubjectType::Bigint {
            // Byte order of the canonical ids is already the type's order.
            return self.for_each_entry(f);
        }
        let mut names: Vec<String> = Vec::new();
        let mut name_ix: std::collections::HashMap<String, u32> = Default::default();
        // (name index + 1, or 0 for no name; id; batch sequence)
        let mut rows: Vec<(u32, i64, u64)> = Vec::new();
        for item in self.scan(P_ENTRY) {
            let (k, v) = item?;
            let key =
                std::str::from_utf8(&k).map_err(|_| self.corrupt("an entry key is not UTF-8"))?;
            let (name, id) = crate::erasure::subject::split_subject(key);
            let id: i64 = id
                .parse()
                .map_err(|_| self.corrupt(format!("entry {key:?} is not a bigint id")))?;
            let n = match name {
                None => 0,
                Some(n) => match name_ix.get(n) {
                    Some(i) => *i,
                    None => {
                        names.push(n.to_string());
                        let i = names.len() as u32;
                        name_ix.insert(n.to_string(), i);
                        i
                    }
                },
            };
            rows.push((n, id, self.seq_of(&v)?));
        }
        // Names are met in byte order (the keys are), so indexes already
        // sort as the names do.
        rows.sort_unstable();
        let mut pending = HashSet::new();
        for item in self.scan(P_PENDING) {
            pending.insert(self.seq_of(&item?.0)?);
        }
        let mut records: std::collections::HashMap<u64, BatchRecord> = Default::default();
        for (n, id, seq) in &rows {
            if let std::collections::hash_map::Entry::Vacant(e) = records.entry(*seq) {
                e.insert(self.batch_record(*seq)?);
            }
            let record = &records[seq];
            let name = (*n > 0).then(|| names[*n as usize - 1].as_str());
            f(EntryInfo {
                subject: crate::erasure::subject::qualify(name, &id.to_string()),
                added_at: record.added_at,
                reference: record.reference.clone(),
                origin: record.origin.clone(),
                journaled: !pending.contains(seq),
            })?;
        }
        Ok(rows.len() as u64)
    }

    /// Up to `limit` pending ids, oldest batch first.
    ///
    /// # Errors
    /// Read failure or a corrupt record.
    pub fn pending_chunk(&self, limit: usize) -> Result<PendingChunk, StoreError> {
        let mut chunk = PendingChunk::default();
        for item in self.scan(P_PENDING) {
            let (k, v) = item?;
            let seq = self.seq_of(&k)?;
            let text = std::str::from_utf8(&v)
                .map_err(|_| self.corrupt("a pending record is not UTF-8"))?;
            let ids: Vec<String> = text.split('\n').map(str::to_string).collect();
            // Whole batches only; a batch larger than the limit goes alone.
            if !chunk.is_empty() && chunk.ids + ids.len() > limit {
                break;
            }
            chunk.ids += ids.len();
            chunk.groups.push((self.batch_record(seq)?, ids));
            chunk.keys.push(pending_key(seq));
        }
        Ok(chunk)
    }

    /// Names of the journal objects this list has merged or written.
    ///
    /// # Errors
    /// Read failure.
    pub fn merged_objects(&self) -> Result<HashSet<String>, StoreError> {
        self.scan(P_JOURNAL)
            .map(|r| r.map(|(k, _)| String::from_utf8_lossy(&k).into_owned()))
            .collect()
    }

    /// The summary shown by `GET /v1/status`.
    ///
    /// # Errors
    /// Read failure.
    pub fn status(&self) -> Result<StoreStatus, StoreError> {
        let st = *self.lock_state();
        let last_sync = self
            .db
            .get(K_LAST_SYNC)
            .map_err(|e| self.io("read", e))?
            .and_then(|v| DateTime::parse_from_rfc3339(&String::from_utf8_lossy(&v)).ok())
            .map(|t| t.with_timezone(&Utc));
        Ok(StoreStatus {
            path: self.path.clone(),
            subject_type: self.subject_type,
            count: st.count,
            digest: hex::encode(st.digest),
            pending: st.pending + self.pending_removals()?.keys.len() as u64,
            last_sync,
        })
    }

    /// Recomputes count and digest from the entries and compares them with
    /// the stored state (a full scan: for `verify`-style checks and tests).
    ///
    /// # Errors
    /// `Corrupt` when they differ.
    pub fn verify_state(&self) -> Result<ListState, StoreError> {
        let mut digest = [0u8; 32];
        let mut count = 0u64;
        for item in self.scan(P_ENTRY) {
            let (k, _) = item?;
            let s =
                std::str::from_utf8(&k).map_err(|_| self.corrupt("an entry key is not UTF-8"))?;
            xor_into(&mut digest, &digest_term(s));
            count += 1;
        }
        let want = self.state();
        let got = ListState {
            count,
            digest: hex::encode(digest),
        };
        if got != want {
            return Err(self.corrupt(format!(
                "the entries give count {} digest {}, but the state record says count {} digest {}",
                got.count, got.digest, want.count, want.digest
            )));
        }
        Ok(got)
    }

    /// Catches a secondary up with the writer's latest synced write.
    ///
    /// # Errors
    /// Read failure.
    pub fn catch_up(&self) -> Result<(), StoreError> {
        if self.read_only {
            self.db
                .try_catch_up_with_primary()
                .map_err(|e| self.io("catch up", e))?;
            *self.lock_state() = super::open::read_state(&self.db, &self.path)?;
        }
        Ok(())
    }

    /// Calls `f` with every canonical id on one consistent view of the
    /// store, and returns the count and digest of that same view (so a set
    /// built while the daemon keeps adding still matches its state).
    ///
    /// # Errors
    /// Read failure, or `f`'s error.
    pub fn scan_ids(
        &self,
        mut f: impl FnMut(&[u8]) -> Result<(), StoreError>,
    ) -> Result<ListState, StoreError> {
        // A secondary's view only moves on `catch_up`; a primary needs a snapshot.
        let snap = (!self.read_only).then(|| self.db.snapshot());
        let state = match &snap {
            Some(s) => super::open::read_state_with(&self.path, |k| s.get(k))?,
            None => super::open::read_state(&self.db, &self.path)?,
        };
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(upper_bound(P_ENTRY));
        ro.fill_cache(false);
        ro.set_readahead_size(2 << 20);
        if let Some(s) = &snap {
            ro.set_snapshot(s);
        }
        // A raw iterator lends each key in place: no allocation per entry.
        let plen = P_ENTRY.len();
        let mut it = self.db.raw_iterator_opt(ro);
        it.seek(P_ENTRY);
        while let Some(k) = it.key() {
            f(&k[plen..])?;
            it.next();
        }
        it.status().map_err(|e| self.io("scan", e))?;
        Ok(state.list_state())
    }
}
